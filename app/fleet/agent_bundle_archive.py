"""The agent bundle on the workstation, checked before a byte of it goes to a device.

``install-agent`` takes the agent's one-folder PyInstaller bundle (``python -m
installers.build agent`` makes ``dist/edgeloop-agent/`` and ``dist/edgeloop-agent.tar.gz``),
either as that ``.tar.gz`` or as the folder, which is archived on the fly. The archive is
read through to its end (a truncated or corrupt download fails here with a message that says
so, not half-unpacked on a device), its members must stay inside the bundle (no absolute
names, no ``..``, no device files, no links out), and it must hold the program
``edgeloop-agent``, whose ELF header tells which CPU it was built for.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from app.core.errors import InvalidInput
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.fleet.agent_unit import PROGRAM

# ELF e_machine values of the CPUs devices run, and what ``uname -m`` says for each.
ELF_MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64"}
UNAME_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64",
                  "arm64": "aarch64", "armv7l": "arm", "armv6l": "arm", "i686": "x86",
                  "i386": "x86"}
BYTES = {"unit": "bytes"}  # progress metrics: done and total count bytes
# Each unpacked file takes at least one filesystem block beyond its bytes.
BLOCK = 4096
_CHUNK = 1 << 20
_REBUILD = ("rebuild it with `python -m installers.build agent`, or copy it again from where "
            "it was built")


class BundleInvalid(InvalidInput):
    """The agent bundle given to ``install-agent`` is not one it can install."""


@dataclass(frozen=True)
class BundleArchive:
    """A checked ``.tar.gz`` of the agent bundle, ready to upload."""

    path: Path
    sha256: str
    size: int
    unpacked_bytes: int
    files: int
    strip_components: int  # 1 when the bundle sits in a top folder of its own
    machine: str | None  # the CPU the program was built for, None when not an ELF we know
    temporary: bool  # archived on the fly: the caller deletes it after the upload

    def discard(self) -> None:
        if self.temporary:
            self.path.unlink(missing_ok=True)


def open_bundle(path: Path, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> BundleArchive:
    """A checked archive of the bundle at ``path`` (a ``.tar.gz`` or the bundle folder)."""
    path = Path(path)
    if path.is_dir():
        return _archive_folder(path, progress, cancel or CancelToken())
    if not path.is_file():
        raise BundleInvalid(f"--bundle {path}: no such file or folder; build the agent bundle "
                            "with `python -m installers.build agent` (it writes "
                            "build/installers/dist/edgeloop-agent.tar.gz)")
    if not path.name.endswith((".tar.gz", ".tgz")):
        raise BundleInvalid(f"--bundle {path}: give the bundle folder or its .tar.gz archive")
    return _check_archive(path, progress, cancel or CancelToken())


class _HashingReader:
    """A file read front to back whose sha256 is taken on the way: the archive is checked
    and hashed in one read instead of two (it is 140 MB)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.digest.update(chunk)
        return chunk

    def tell(self) -> int:
        return self.raw.tell()


def _check_archive(path: Path, progress: ProgressFn, cancel: CancelToken) -> BundleArchive:
    """Read the whole archive once (which also checks gzip's CRC and length at its end),
    taking its sha256 on the way."""
    size = path.stat().st_size
    names: list[PurePosixPath] = []
    programs: set[PurePosixPath] = set()  # regular files named like the program
    unpacked = files = 0
    elf_head: bytes | None = None
    try:
        with open(path, "rb") as file:
            raw = _HashingReader(file)
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz, \
                    tarfile.open(fileobj=gz, mode="r|") as tar:
                for member in tar:
                    cancel.check()
                    name = _member_name(path, member)
                    names.append(name)
                    unpacked += _blocks(member.size) if member.isfile() else BLOCK
                    files += member.isfile()
                    if member.isfile():
                        data = tar.extractfile(member)
                        head = data.read(20) if data else b""
                        if name.name == PROGRAM and len(name.parts) <= 2:
                            programs.add(name)
                            elf_head = head
                        while data and data.read(_CHUNK):
                            cancel.check()
                    progress(Progress("checking the bundle", raw.tell(), size, name.name, BYTES))
                while gz.read(_CHUNK):  # trailing padding, then gzip's CRC and length check
                    cancel.check()
            while raw.read(_CHUNK):  # anything after gzip's end is part of the file too
                cancel.check()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BundleInvalid(
            f"--bundle {path} is not a complete .tar.gz archive ({exc}); it may be truncated "
            f"or corrupt: {_REBUILD}") from exc
    strip = _layout(path, names, programs)
    return BundleArchive(path, raw.digest.hexdigest(), size, unpacked, files, strip,
                         _elf_machine(elf_head), temporary=False)


def _member_name(archive: Path, member: tarfile.TarInfo) -> PurePosixPath:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise BundleInvalid(f"--bundle {archive}: member {member.name!r} would unpack outside "
                            f"the bundle; {_REBUILD}")
    if not (member.isfile() or member.isdir() or member.issym()):
        raise BundleInvalid(f"--bundle {archive}: member {member.name!r} is not a file, folder "
                            f"or link; {_REBUILD}")
    if member.issym():
        target = PurePosixPath(member.linkname)
        depth = len(name.parent.parts)
        if target.is_absolute() or _climbs(target) > depth:
            raise BundleInvalid(f"--bundle {archive}: link {member.name!r} points outside the "
                                f"bundle ({member.linkname}); {_REBUILD}")
    return name


def _climbs(target: PurePosixPath) -> int:
    """How many folders above its own a relative link reaches at most."""
    level = lowest = 0
    for part in target.parts:
        level += -1 if part == ".." else (0 if part == "." else 1)
        lowest = min(lowest, level)
    return -lowest


def _layout(archive: Path, names: list[PurePosixPath], programs: set[PurePosixPath]) -> int:
    """0 when the program ``edgeloop-agent`` is at the top of the archive, 1 when every
    member sits in one top folder holding it (the layout installers/build.py writes)."""
    names = [n for n in names if n.parts and n.parts != (".",)]
    if PurePosixPath(PROGRAM) in programs:
        return 0
    tops = {n.parts[0] for n in names}
    if len(tops) == 1 and PurePosixPath(next(iter(tops)), PROGRAM) in programs:
        return 1
    raise BundleInvalid(f"--bundle {archive} holds no {PROGRAM} program at its top (nor in a "
                        "single top folder): is it the agent bundle? Build it with "
                        "`python -m installers.build agent`")


def _archive_folder(folder: Path, progress: ProgressFn, cancel: CancelToken) -> BundleArchive:
    program = folder / PROGRAM
    if not program.is_file() or not os.access(program, os.X_OK):
        raise BundleInvalid(f"--bundle {folder} has no executable {PROGRAM}: give the folder "
                            "that `python -m installers.build agent` made "
                            "(build/installers/dist/edgeloop-agent) or its .tar.gz")
    entries = sorted(folder.rglob("*"))
    for entry in entries:
        if entry.is_symlink():
            target = os.path.realpath(entry)
            if not Path(target).is_relative_to(folder.resolve()):
                raise BundleInvalid(f"--bundle {folder}: link {entry} points outside the bundle "
                                    f"({target}); {_REBUILD}")
        elif not (entry.is_file() or entry.is_dir()):
            raise BundleInvalid(f"--bundle {folder}: {entry} is not a file, folder or link")
    handle, name = tempfile.mkstemp(prefix="edgeloop-agent-", suffix=".tar.gz")
    os.close(handle)
    archive = Path(name)
    unpacked = files = 0
    try:
        with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
            tar.add(folder, arcname=PROGRAM, recursive=False)
            for done, entry in enumerate(entries, 1):
                cancel.check()
                tar.add(entry, arcname=f"{PROGRAM}/{entry.relative_to(folder).as_posix()}",
                        recursive=False)
                is_file = entry.is_file() and not entry.is_symlink()
                unpacked += _blocks(entry.stat().st_size) if is_file else BLOCK
                files += is_file
                progress(Progress("packing the bundle", done, len(entries), entry.name))
        with open(program, "rb") as fh:
            machine = _elf_machine(fh.read(20))
        return BundleArchive(archive, _sha256(archive, cancel), archive.stat().st_size,
                             unpacked, files, 1, machine, temporary=True)
    except BaseException:
        archive.unlink(missing_ok=True)
        raise


def _blocks(size: int) -> int:
    return (size // BLOCK + 1) * BLOCK


def _elf_machine(head: bytes | None) -> str | None:
    if not head or len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    return ELF_MACHINES.get(int.from_bytes(head[18:20], order))


def _sha256(path: Path, cancel: CancelToken) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            cancel.check()
            digest.update(chunk)
    return digest.hexdigest()
