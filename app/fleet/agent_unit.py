"""What ``install-agent`` writes on a device besides the bundle: the systemd unit and the
``edgeloop-agent`` launcher on the SSH account's PATH, and the checks on the names and paths
that go into them.

Everything here is text: nothing connects to a device. Values reach a device's shell quoted
with :func:`shlex.quote` and its unit file quoted for systemd (:func:`systemd_quote`), but
they are refused first when they could not mean what the engineer meant (a device id with
``../`` or ``;``, a relative remote path, a line break), so a typo never turns into a path or
a command on the device.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from app.core.errors import InvalidInput

UNIT_NAME = "edgeloop-agent.service"
PROGRAM = "edgeloop-agent"
# The launcher says who wrote it, so a reinstall replaces it and nothing else of that name.
LAUNCHER_MARK = "# edgeloop-install-agent launcher"

_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_SOURCE_KINDS = ("generator", "folder", "video", "camera")
_SYSTEMD_PLAIN = re.compile(r"[A-Za-z0-9_./:@,+=-]+")


def check_device_id(uid: str) -> str:
    """``uid`` if it is a plain device id (letters, digits, ``.``, ``_``, ``-``; no ``..``)."""
    if not _DEVICE_ID.fullmatch(uid) or ".." in uid:
        raise InvalidInput(
            f"device id {uid!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, and no '..' (it names files on the device)")
    return uid


def check_user(user: str, option: str = "--ssh-user") -> str:
    """``user`` if it is a plain POSIX account name."""
    if not _USER.fullmatch(user):
        raise InvalidInput(f"{option} {user!r} is not a plain account name (lower-case letters, "
                           "digits, '_', '-', '.')")
    return user


def check_remote_path(path: str, option: str) -> str:
    """``path`` if it is an absolute POSIX path with no ``..`` and no control characters;
    returned normalised (no trailing or doubled slashes)."""
    if not path.startswith("/") or any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise InvalidInput(f"{option} {path!r} must be an absolute path on the device, on one "
                           "line (e.g. /opt/edgeloop-agent)")
    pure = PurePosixPath(path)
    if ".." in pure.parts or str(pure) == "/":
        raise InvalidInput(f"{option} {path!r} must name a folder below / without '..'")
    return str(pure)


def check_program(command: str, option: str) -> str:
    """``command`` if it names one program (a name on PATH or an absolute path)."""
    if not command or any(c.isspace() or ord(c) < 32 for c in command) or (
            "/" in command and not command.startswith("/")):
        raise InvalidInput(f"{option} {command!r} must be one program: a name on the device's "
                           "PATH or an absolute path, without spaces")
    return command


def check_source(source: str) -> str:
    """``source`` if it is one the agent's ``run --source`` reads (``generator[:SEED]``,
    ``folder:PATH``, ``video:PATH``, ``camera:INDEX``), on one line."""
    kind, _, rest = source.partition(":")
    if kind not in _SOURCE_KINDS or any(ord(c) < 32 for c in source) or (
            kind != "generator" and not rest):
        raise InvalidInput(f"--source {source!r}: use generator[:SEED], folder:PATH, "
                           "video:PATH or camera:INDEX")
    if kind in ("generator", "camera") and rest and not rest.isdigit():
        raise InvalidInput(f"--source {source!r}: {kind}'s value must be a number")
    return source


def systemd_quote(word: str) -> str:
    """One word of an ``ExecStart=`` line as systemd reads it back (not a shell: ``%`` and
    ``$`` are systemd's specifiers and variables, so they are doubled)."""
    if _SYSTEMD_PLAIN.fullmatch(word):
        return word
    escaped = (word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
               .replace("$", "$$"))
    return f'"{escaped}"'


@dataclass(frozen=True)
class AgentService:
    """How the agent is laid out and runs on the device: versions under ``prefix``, its
    home, what it reads, the account it runs as, where its unit and launcher go."""

    prefix: str
    home: str
    source: str
    user: str
    advertise: bool = True
    unit_dir: str = "/etc/systemd/system"
    bin_dir: str = "/usr/local/bin"

    @property
    def executable(self) -> str:
        """The agent through the ``current`` link, so a reinstall needs no unit change."""
        return f"{self.prefix}/current/{PROGRAM}"

    @property
    def unit_path(self) -> str:
        return f"{self.unit_dir}/{UNIT_NAME}"

    @property
    def launcher_path(self) -> str:
        return f"{self.bin_dir}/{PROGRAM}"

    def exec_start(self) -> list[str]:
        words = [self.executable, "--home", self.home, "run", "--source", self.source]
        return words if self.advertise else [*words, "--no-advertise"]

    def unit_text(self, uid: str) -> str:
        """The systemd unit: restarts the agent when it fails, runs it as the SSH account
        (which runs the ``ctl`` commands over SSH, so it must own the home)."""
        return "\n".join([
            "# Written by `edgeloop devices install-agent`; a reinstall rewrites it.",
            "[Unit]",
            f"Description=EdgeLoop device agent ({uid})",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"User={self.user}",
            f"Environment={systemd_quote('EDGELOOP_AGENT_HOME=' + self.home)}",
            "ExecStart=" + " ".join(systemd_quote(w) for w in self.exec_start()),
            "Restart=on-failure",
            "RestartSec=5",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ])

    def launcher_text(self) -> str:
        """``edgeloop-agent`` on the account's PATH: the workstation runs ``edgeloop-agent ctl
        ...`` by name without ``--home`` (docs/device-protocol.md), so the launcher supplies
        this home unless the login environment names another."""
        return "\n".join([
            "#!/bin/sh",
            LAUNCHER_MARK,
            f": \"${{EDGELOOP_AGENT_HOME:={_sh_default(self.home)}}}\"",
            "export EDGELOOP_AGENT_HOME",
            f"exec {shlex.quote(self.executable)} \"$@\"",
            "",
        ])


def _sh_default(value: str) -> str:
    # Inside "${VAR:=...}" within double quotes, only \ " $ ` are special; escape them.
    return re.sub(r'([\\"$`])', r"\\\1", value)
