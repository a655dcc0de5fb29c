"""Installers of EdgeLoop: the PyInstaller bundles of the workstation app and of the device
agent (``python -m installers.build``), and the offline bundle (a wheelhouse)."""
