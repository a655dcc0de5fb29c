"""EdgeLoop sends nothing to the internet: switches that keep libraries from phoning home.

OpenVINO's model converter reports usage telemetry unless the user opted out, and treats a
machine with no consent file as having agreed. When ``openvino_telemetry`` cannot be
imported, OpenVINO falls back to its own no-op stub; ``block_telemetry`` makes it so.
"""

from __future__ import annotations

import sys

TELEMETRY_MODULES = ("openvino_telemetry",)


def block_telemetry() -> None:
    """Make the telemetry packages unimportable in this process (before OpenVINO loads them)."""
    for name in TELEMETRY_MODULES:
        if sys.modules.get(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]
