"""Errors of the workstation's side of the device protocol.

Each names the device and says what to do; the CLI and the GUI show the message as it is.

    EdgeLoopError
    └── FleetError
        ├── DeviceUnreachable     no TCP connection, a timeout, a dropped connection
        ├── HostKeyMismatch       the device's host key is not the one enrolled
        ├── DeviceAuthFailed      the device refused the workstation's key
        ├── DeviceCommandFailed   an agent command on the device exited non-zero
        ├── DeviceProtocolError   the device answered something that is not the protocol
        ├── DeviceNotEnrolled     a device that must be enrolled first
        └── InstallFailed         a step of `install-agent` failed (agent_push.py)
            ├── NotEnoughSpace    too little free disk on the device; nothing was written
            └── SudoUnavailable   --sudo given, but `sudo -n` does not work there

    InvalidInput
    └── BundleInvalid             the agent bundle cannot be installed (agent_bundle_archive.py)
"""

from __future__ import annotations

from app.core.errors import EdgeLoopError


class FleetError(EdgeLoopError):
    """A device could not be reached, trusted or commanded."""


class DeviceUnreachable(FleetError):
    """The device did not answer, or the connection dropped."""


class HostKeyMismatch(FleetError):
    """The device presented a host key other than the one confirmed at enrollment."""


class DeviceAuthFailed(FleetError):
    """The device's SSH server refused our key (or password)."""


class DeviceCommandFailed(FleetError):
    """An ``edgeloop-agent`` command on the device failed; the message carries its stderr."""


class DeviceProtocolError(FleetError):
    """The device's answer does not follow docs/device-protocol.md."""


class DeviceNotEnrolled(FleetError):
    """The action needs an enrolled device (with a confirmed host key)."""


def reason(exc: BaseException) -> str:
    """An exception as words for a message: some (socket timeouts) have no text of their own."""
    return str(exc) or type(exc).__name__
