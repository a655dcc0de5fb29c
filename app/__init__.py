"""EdgeLoop: the on-prem machine-learning loop for fleets of edge devices.

Layers (enforced by import-linter, see pyproject.toml): ``app.core`` holds the project
database and the ML services, ``app.fleet`` the device protocol, ``app.fleet.agent`` the
program that runs on a device, ``app.annotate`` and ``app.ui`` the Qt application.
"""

__version__ = "0.1.0"

from app.offline import block_telemetry

block_telemetry()
