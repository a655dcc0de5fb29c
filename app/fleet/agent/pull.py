"""``edgeloop-agent ctl pull``: new captures to the workstation in one round trip.

The agent streams an uncompressed POSIX (ustar) tar archive of complete captures on stdout,
sidecar ``<id>.json`` first, then the image; then it reads one JSON ack line on stdin:
``{"ack": "<id>" | null, "hold": ["<id>", ...]}``. Held captures move to quarantine, then
every capture up to ``ack`` is deleted (docs/device-protocol.md). Nothing is deleted before
a well-formed ack line arrives, so a connection cut at any instant loses nothing.

The spool is read without its lock, so the loop keeps capturing while an archive streams; a
capture evicted meanwhile simply drops out of the archive. Names come from one listing of
the spool folder and every file is opened without following links: nothing outside the
spool is ever sent.
"""

from __future__ import annotations

import errno
import json
import os
import re
import select
import stat
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.fleet.agent.errors import AgentError, ConfigError
from app.fleet.agent.spool import Spool, captures_in, is_sidecar

DEFAULT_LIMIT = 1000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
ACK_TIMEOUT_S = 60.0
# A full hold list of DEFAULT_LIMIT ids is ~20 KB; anything near this is not an ack line.
MAX_ACK_LINE = 1024 * 1024
_ID = re.compile(r"[0-9]{1,20}")
_BLOCK = tarfile.BLOCKSIZE


@dataclass(frozen=True)
class PullLimits:
    """Which captures one pull sends: ids after ``after``, at most ``limit`` captures and
    about ``max_bytes`` bytes of file content (always at least one capture)."""

    after: str | None = None
    limit: int = DEFAULT_LIMIT
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.after is not None and not _ID.fullmatch(self.after):
            raise ConfigError(f"pull: --after {self.after!r} is not a capture id")
        if self.limit < 1 or self.max_bytes < 1:
            raise ConfigError("pull: --limit and --max-bytes must be at least 1")


@dataclass(frozen=True)
class AckLine:
    """The workstation's answer to an archive: delete up to ``ack``, quarantine ``hold``."""

    ack: str | None = None
    hold: tuple[str, ...] = ()


@dataclass(frozen=True)
class Member:
    """One file of a capture as it goes into the archive."""

    name: str
    data: bytes
    mtime: int


# -- the archive ------------------------------------------------------------------------------
def _read_regular(path: Path) -> tuple[bytes, int] | None:
    """A plain file's bytes and mtime; None if it vanished, is a link or is not a file."""
    try:
        # O_NONBLOCK: a FIFO planted in the spool must not hang the pull (regular files
        # read the same either way).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # evicted or acked since the listing
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None  # a link: never followed out of the spool
        raise
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return fh.read(), int(info.st_mtime)


def _image_name(sidecar: bytes, images: list[str]) -> str | None:
    """The image the sidecar's ``file`` names if that is one of this capture's files in the
    spool, else the first other ``<id>.*`` file (the workstation checks the sidecar)."""
    try:
        named = json.loads(sidecar).get("file")
    except (ValueError, AttributeError, RecursionError):
        named = None  # sent as it is all the same: the workstation reports a bad sidecar
    if isinstance(named, str) and named in images:
        return named
    return images[0] if images else None


def read_capture(files: list[Path]) -> list[Member] | None:
    """The archive members of one capture (sidecar first), or None if it is incomplete or
    vanished while being read."""
    sidecars = [p for p in files if is_sidecar(p)]
    if not sidecars:
        return None
    sidecar_path = sidecars[0]
    sidecar = _read_regular(sidecar_path)
    if sidecar is None:
        return None
    images = sorted(p.name for p in files if not p.name.endswith(".json"))
    image_name = _image_name(sidecar[0], images)
    if image_name is None:
        return None
    image = _read_regular(sidecar_path.with_name(image_name))
    if image is None:
        return None
    return [Member(sidecar_path.name, *sidecar), Member(image_name, *image)]


def ustar_header(name: str, size: int, mtime: int) -> bytes:
    """The 512-byte ustar header of a regular file owned by root, mode 0644.

    Written by hand rather than with ``tarfile``: spool names are short ASCII
    (``<number>.<ext>``), and building headers through ``TarInfo`` cost the device a third of
    a pull's CPU time (0.2 ms a member, measured in bench/transfer.py).
    """
    raw = name.encode("ascii")
    if len(raw) > 100 or not 0 <= size < 8 ** 11 or not 0 <= mtime < 8 ** 11:
        raise AgentError(f"pull: {name!r} ({size} bytes) does not fit a ustar header")
    header = bytearray(_BLOCK)
    header[0:len(raw)] = raw
    header[100:124] = b"0000644\x000000000\x000000000\x00"  # mode, uid, gid
    header[124:136] = b"%011o\x00" % size
    header[136:148] = b"%011o\x00" % mtime
    header[148:156] = b" " * 8  # the checksum counts its own field as spaces
    header[156] = ord("0")  # a regular file
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\x00 " % sum(header)
    return bytes(header)


def write_archive(folder: Path, out: BinaryIO, limits: PullLimits) -> list[str]:
    """Write the tar archive of the captures ``limits`` selects from ``folder`` to ``out``;
    return the ids sent, in order. ``out`` is flushed, not closed.

    The archive ends with the two empty blocks of the end marker and is padded to a whole
    tar record, as ``tarfile`` and GNU tar write it: a reader in stream mode reads records,
    and would otherwise wait for bytes that never come (the ack exchange follows).
    """
    after = int(limits.after) if limits.after is not None else -1
    sent: list[str] = []
    total = written = 0
    for seq, files in captures_in(folder).items():
        if seq <= after:
            continue
        if len(sent) >= limits.limit:
            break
        members = read_capture(files)
        if members is None:
            continue
        size = sum(len(m.data) for m in members)
        if sent and total + size > limits.max_bytes:
            break
        for member in members:
            padding = -len(member.data) % _BLOCK
            out.write(ustar_header(member.name, len(member.data), member.mtime))
            out.write(member.data)
            out.write(bytes(padding))
            written += _BLOCK + len(member.data) + padding
        total += size
        sent.append(Path(members[0].name).stem)
    written += 2 * _BLOCK
    out.write(bytes(2 * _BLOCK + -written % tarfile.RECORDSIZE))
    out.flush()
    return sent


# -- the ack line -----------------------------------------------------------------------------
def read_ack_line(stream: BinaryIO, timeout: float = ACK_TIMEOUT_S) -> bytes:
    """One line from ``stream`` (without waiting past ``timeout`` seconds); b"" at EOF.

    A stream with a file descriptor is read on that descriptor directly, bypassing any
    buffer, so it must not have been read from before (stdin of ``ctl pull`` is not)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream.readline(MAX_ACK_LINE + 1)  # in-memory streams: no waiting to bound
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data and len(data) <= MAX_ACK_LINE:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise AgentError(f"pull: no ack line within {timeout:g} s; nothing deleted")
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise AgentError(f"pull: the ack line's {what} {value!r} is not a capture id; "
                         "nothing deleted")
    return value


def parse_ack_line(line: bytes) -> AckLine:
    """The ack line's meaning; an empty line acknowledges nothing. Raise AgentError if it is
    not ``{"ack": "<id>" | null, "hold": ["<id>", ...]}`` (unknown keys are ignored)."""
    if len(line) > MAX_ACK_LINE:
        raise AgentError(f"pull: the ack line is longer than {MAX_ACK_LINE} bytes; nothing deleted")
    if not line.strip():
        return AckLine()
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise AgentError(f"pull: the ack line is not JSON ({exc}); nothing deleted") from None
    if not isinstance(value, dict):
        raise AgentError("pull: the ack line must be a JSON object; nothing deleted")
    ack = value.get("ack")
    hold = value.get("hold")
    hold = [] if hold is None else hold
    if not isinstance(hold, list):
        raise AgentError("pull: the ack line's hold must be a list of capture ids; nothing deleted")
    return AckLine(None if ack is None else _check_id(ack, "ack"),
                   tuple(_check_id(cid, "held id") for cid in hold))


def apply_ack(spool: Spool, ack: AckLine, quarantine: Path) -> dict[str, int]:
    """Quarantine the held captures, then delete everything up to the ack."""
    held = spool.hold(ack.hold, quarantine) if ack.hold else 0
    acked = spool.ack(ack.ack) if ack.ack is not None else 0
    return {"acked": acked, "held": held}


def pull(spool: Spool, quarantine: Path, out: BinaryIO, ack_in: BinaryIO,
         limits: PullLimits = PullLimits(), ack_timeout: float = ACK_TIMEOUT_S) -> dict[str, int]:
    """The whole exchange: archive on ``out``, ack line from ``ack_in``, applied to ``spool``."""
    write_archive(spool.folder, out, limits)
    ack = parse_ack_line(read_ack_line(ack_in, ack_timeout))
    return apply_ack(spool, ack, quarantine)
