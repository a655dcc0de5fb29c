"""``edgeloop-agent ctl receive VERSION``: a release arrives as a tar archive on stdin.

The workstation never names a path on the device, so the archive's members are the only
names it sends, and they come from the network: each must be a plain regular file whose
name the manifest rules allow (no folders, no ``..``, no links or devices). Free disk space
is checked before each member is written, and the release is written to
``inbox/.<VERSION>.partial`` and renamed to ``inbox/<VERSION>`` only when whole; on any
error the partial folder is removed, so the inbox never holds half a release.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from app.fleet.agent.errors import AgentError, ReleaseRejected
from app.fleet.agent.fsutil import fsync_dir
from app.fleet.agent.manifest import check_name

# Room left for the spool, the drift records and the state files while a release lands.
DISK_MARGIN = 16 * 1024 * 1024
_PLAIN_FILE = (tarfile.REGTYPE, tarfile.AREGTYPE)
_KINDS = {
    tarfile.DIRTYPE: "a folder",
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a device",
    tarfile.BLKTYPE: "a device",
    tarfile.FIFOTYPE: "a FIFO",
}


class _FreeSpace(Protocol):
    @property
    def free(self) -> int: ...


# shutil.disk_usage, or a stand-in in tests that fill the disk.
DiskUsage = Callable[[Path], _FreeSpace]


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def _remove(path: Path) -> None:
    """Remove whatever ``path`` is (a link is removed, never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _check_member(member: tarfile.TarInfo, seen: set[str]) -> str:
    """The member's name if it is a plain file the manifest rules allow; else refuse."""
    if member.type not in _PLAIN_FILE:
        kind = _KINDS.get(member.type, f"a member of tar type {member.type!r}")
        raise ReleaseRejected(f"archive member {member.name!r} is {kind}, not a plain file; "
                              "release refused")
    name = check_name(member.name, "archive member")
    if name in seen:
        raise ReleaseRejected(f"archive member {name!r} appears twice; release refused")
    seen.add(name)
    return name


def _check_space(folder: Path, name: str, size: int, disk_usage: DiskUsage, margin: int) -> None:
    free = disk_usage(folder).free
    if size + margin > free:
        raise AgentError(
            f"not enough disk space for {name} ({_mib(size)}): the device has {_mib(free)} "
            f"free and keeps {_mib(margin)} in reserve; nothing installed. "
            "Free space on the device (old captures, old releases) and send it again"
        )


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None  # a regular file always has content, maybe empty
    # O_EXCL: never write through something already there, a link least of all.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
        out.flush()
        os.fsync(out.fileno())


def _unpack(stream: BinaryIO, folder: Path, disk_usage: DiskUsage, margin: int) -> None:
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = _check_member(member, seen)
                _check_space(folder, name, member.size, disk_usage, margin)
                _write_member(tar, member, folder / name)
    except tarfile.TarError as exc:
        raise ReleaseRejected(
            f"the release archive is unreadable ({exc}); nothing installed") from exc
    if not seen:
        raise ReleaseRejected("the release archive holds no files; nothing installed")
    fsync_dir(folder)


def receive_release(stream: BinaryIO, inbox: Path, version: str, *,
                    disk_usage: DiskUsage = shutil.disk_usage,
                    margin: int = DISK_MARGIN) -> Path:
    """Unpack the release archive on ``stream`` into ``inbox/<version>``; return that folder.

    Raises ReleaseRejected for a member that is not a plain, plainly named file and
    AgentError when the disk is too full; either way nothing is left in the inbox."""
    check_name(version, "release version")
    inbox = Path(inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    partial = inbox / f".{version}.partial"
    _remove(partial)  # left by a receive that was killed
    partial.mkdir()
    try:
        _unpack(stream, partial, disk_usage, margin)
        final = inbox / version
        _remove(final)
        os.replace(partial, final)
        fsync_dir(inbox)
    except BaseException:
        _remove(partial)
        raise
    return final
