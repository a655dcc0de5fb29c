"""The SFTP server of a simulated device: the device home is the whole visible file system.

asyncssh's ``SFTPServer(chan, chroot=home)`` maps every client path into the home lexically
(``../`` and absolute paths stay inside), but its own documentation warns that symlinks
already inside the chroot which point outside of it are followed. A device home holds files
other processes wrote (the agent, the simulator, a test), so this server also resolves every
mapped path (symlinks followed) and refuses any that lands outside the home.

What it does not close: a race where something on the device swaps a checked directory for a
symlink between the check and the open. Nothing the SFTP client can do creates such a link
(asyncssh rewrites links it creates to stay inside), so only local processes could.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh


class HomeConfinedSFTPServer(asyncssh.SFTPServer):
    """SFTP confined to one folder: paths, ``..``, absolute paths and symlinks stay inside."""

    def __init__(self, chan: asyncssh.SSHServerChannel, home: Path) -> None:
        super().__init__(chan, chroot=os.fsencode(os.path.realpath(home)))
        self._root = os.fsencode(os.path.realpath(home))

    def map_path(self, path: bytes) -> bytes:
        """The local path for a client path; refused if it resolves outside the home.

        The unresolved (lexically mapped) path is returned, so operations on a link itself
        (lstat, readlink, remove) keep their meaning for links that stay inside the home.
        """
        local = super().map_path(path)
        resolved = os.path.realpath(local)
        if resolved != self._root and not resolved.startswith(self._root + b"/"):
            raise asyncssh.SFTPPermissionDenied("Permission denied: outside the device home")
        return local
