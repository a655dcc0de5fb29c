"""The capture spool: image + JSON sidecar pairs under a disk quota, oldest evicted first.

A capture is ``<id>.jpg`` (or .png) and ``<id>.json``; ids are zero-padded sequence numbers,
so names sort in capture order and the workstation's cursor is simply the last id it
committed. The image is written first and the sidecar last, each atomically: a capture
whose sidecar exists is complete. When a new capture would exceed the quota the oldest go,
and ``evicted`` counts them in state/spool.json, so nothing disappears unreported. Only the
workstation's acknowledgement (``ack``) deletes captures otherwise.

``ack`` and ``hold`` normally run in another process (``edgeloop-agent ctl ack`` or
``ctl pull`` over SSH) while the agent loop adds captures, so every operation holds a file
lock on state/spool.lock and re-reads state/spool.json; the ack cursor and the hold counter
in it tell the loop which entries are gone.

``hold`` moves captures the workstation refused into a quarantine folder outside the
quota (the newest ``QUARANTINE_KEEP``), image first and sidecar last: there, as in the
spool, a capture is complete once its sidecar is in place.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.fleet.agent.errors import SpoolBusy
from app.fleet.agent.fsutil import fsync_dir, read_json, write_atomic, write_json_atomic

ID_WIDTH = 12
SIDECAR = ".json"
QUARANTINE_KEEP = 500


def capture_id(seq: int) -> str:
    return f"{seq:0{ID_WIDTH}d}"


def _seq_of(cid: str, what: str) -> int:
    try:
        return int(cid)
    except ValueError:
        raise ValueError(f"{what}: {cid!r} is not a capture id") from None


def captures_in(folder: Path) -> dict[int, list[Path]]:
    """The files of each capture in ``folder`` by sequence number, in id order, from one
    directory listing (hidden temp files and names that are not ``<number>.<ext>`` left out)."""
    groups: dict[int, list[Path]] = {}
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except FileNotFoundError:
        return {}
    for name in names:
        stem, dot, _ = name.partition(".")
        if dot and stem.isascii() and stem.isdigit():
            groups.setdefault(int(stem), []).append(Path(folder) / name)
    return dict(sorted(groups.items()))


def is_sidecar(path: Path) -> bool:
    """Whether ``path`` is a capture's sidecar, ``<id>.json`` (not ``<id>.x.json``)."""
    return path.suffix == SIDECAR and "." not in path.stem


def held_captures(folder: Path) -> int:
    """How many complete captures (with a sidecar) a quarantine folder holds."""
    return sum(1 for files in captures_in(folder).values() if any(map(is_sidecar, files)))


@dataclass(frozen=True)
class SpoolStats:
    """What the spool holds and what it lost."""

    captures: int
    bytes: int
    quota_bytes: int
    evicted: int
    acked: int
    next_seq: int


class Spool:
    """One device's capture spool, safe across threads and processes."""

    def __init__(self, folder: Path, state_file: Path, quota_bytes: int,
                 lock_timeout: float | None = None) -> None:
        self.folder = Path(folder)
        # None: wait as long as it takes (the agent's loop); control commands give up and say so.
        self.lock_timeout = lock_timeout
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_file = Path(state_file)
        self.lock_file = self.state_file.with_suffix(".lock")
        self.quota_bytes = int(quota_bytes)
        self._thread_lock = threading.Lock()
        with self._locked() as state:
            self._drop_incomplete()
            self._entries = self._scan()
            self._bytes = sum(size for _, size in self._entries.values())
            # Holds made before this instance existed are already absent from the scan.
            self._holds_seen = int(state.get("holds", 0))
            highest = max(self._entries, default=-1)
            state["next_seq"] = max(int(state.get("next_seq", 0)), highest + 1)

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Hold both locks; yield the shared state, saved again when the block ends."""
        with self._thread_lock:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.lock_file, "a") as lock:
                self._acquire(lock)
                try:
                    state = dict(read_json(self.state_file, default={}) or {})
                    before = dict(state)
                    yield state
                    if state != before:
                        write_json_atomic(self.state_file, state)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _acquire(self, lock: IO[str]) -> None:
        if self.lock_timeout is None:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SpoolBusy(f"the spool lock {self.lock_file} was held for "
                                    f"{self.lock_timeout:.0f} s by another process; is the "
                                    "agent stuck? try again, or restart the agent") from None
                time.sleep(0.05)

    def _drop_incomplete(self) -> None:
        """Images without a sidecar are captures cut off by a crash: remove them."""
        for path in self.folder.iterdir():
            if path.name.startswith("."):
                path.unlink(missing_ok=True)  # temp files of interrupted atomic writes
            elif path.suffix != SIDECAR and not path.with_suffix(SIDECAR).exists():
                path.unlink(missing_ok=True)

    def _scan(self) -> dict[int, tuple[list[Path], int]]:
        # One listing for the whole folder: a glob per capture is quadratic in a full spool.
        entries: dict[int, tuple[list[Path], int]] = {}
        for seq, files in captures_in(self.folder).items():
            if any(map(is_sidecar, files)):
                entries[seq] = (files, sum(_size(p) for p in files))
        return entries

    def _forget_acked(self, state: dict[str, Any]) -> None:
        """Drop index entries that an ack or a hold (perhaps from another process) removed."""
        acked_up_to = int(state.get("acked_up_to", -1))
        for seq in [s for s in self._entries if s <= acked_up_to]:
            files, size = self._entries.pop(seq)
            # Only spool paths are indexed, so this never touches a capture in quarantine.
            for path in files:
                path.unlink(missing_ok=True)
            self._bytes -= size
        self._forget_held(state)

    def _forget_held(self, state: dict[str, Any]) -> None:
        """After a hold, entries whose sidecar left the spool are gone: drop them unseen
        (their files now live in quarantine and are not the index's to delete)."""
        holds = int(state.get("holds", 0))
        if holds == self._holds_seen:
            return
        self._holds_seen = holds
        for seq in [s for s, (files, _) in self._entries.items()
                    if not any(is_sidecar(p) and p.exists() for p in files)]:
            self._bytes -= self._entries.pop(seq)[1]

    @staticmethod
    def _remove(files: list[Path]) -> None:
        # Sidecar first: a capture interrupted halfway through removal is simply incomplete.
        for path in sorted(files, key=lambda p: p.suffix == SIDECAR, reverse=True):
            path.unlink(missing_ok=True)

    def add(self, image_bytes: bytes, extension: str, sidecar: dict[str, Any]) -> str:
        """Store one capture; return its id. Evicts the oldest captures if over quota."""
        size_hint = len(image_bytes) + 1024
        with self._locked() as state:
            self._forget_acked(state)
            seq = int(state.get("next_seq", 0))
            state["next_seq"] = seq + 1
            while self._entries and self._bytes + size_hint > self.quota_bytes:
                oldest = next(iter(self._entries))
                files, size = self._entries.pop(oldest)
                self._remove(files)
                self._bytes -= size
                state["evicted"] = int(state.get("evicted", 0)) + 1
            cid = capture_id(seq)
            image_path = self.folder / f"{cid}.{extension}"
            record = dict(sidecar, id=cid, file=image_path.name, size=len(image_bytes),
                          sha256=hashlib.sha256(image_bytes).hexdigest())
            write_atomic(image_path, image_bytes)
            sidecar_path = self.folder / f"{cid}{SIDECAR}"
            write_atomic(sidecar_path, (json.dumps(record, sort_keys=True) + "\n").encode())
            size = len(image_bytes) + sidecar_path.stat().st_size
            self._entries[seq] = ([image_path, sidecar_path], size)
            self._bytes += size
            return cid

    def ack(self, up_to: str) -> int:
        """Delete captures with id <= ``up_to`` (the workstation committed them); return how many."""
        limit = _seq_of(up_to, "ack")
        with self._locked() as state:
            self._forget_acked(state)
            # Rescan: this instance may be a short-lived ctl process, not the loop.
            doomed = [(seq, files) for seq, (files, _) in self._scan().items() if seq <= limit]
            for _, files in doomed:
                self._remove(files)
            state["acked"] = int(state.get("acked", 0)) + len(doomed)
            state["acked_up_to"] = max(limit, int(state.get("acked_up_to", -1)))
            self._forget_acked(state)
            return len(doomed)

    def hold(self, ids: Iterable[str], folder: Path, keep: int = QUARANTINE_KEEP) -> int:
        """Move the captures ``ids`` out of the spool into ``folder`` (quarantine, outside
        the quota); return how many moved. Ids not in the spool are skipped. Only the newest
        ``keep`` captures stay in ``folder``; older ones are deleted and counted in state
        (``quarantine_dropped``)."""
        seqs = sorted({_seq_of(cid, "hold") for cid in ids})
        folder = Path(folder)
        with self._locked() as state:
            self._forget_acked(state)
            folder.mkdir(parents=True, exist_ok=True)
            present = captures_in(self.folder)  # one listing, however many ids are held
            moved = sum(_move_capture(present.get(seq, []), folder) for seq in seqs)
            if moved:
                state["holds"] = int(state.get("holds", 0)) + 1
                state["held"] = int(state.get("held", 0)) + moved
                fsync_dir(folder)
                fsync_dir(self.folder)
            dropped = _prune_quarantine(folder, keep)
            if dropped:
                state["quarantine_dropped"] = int(state.get("quarantine_dropped", 0)) + dropped
            self._forget_acked(state)
            return moved

    def stats(self) -> SpoolStats:
        with self._locked() as state:
            self._forget_acked(state)
            return SpoolStats(len(self._entries), self._bytes, self.quota_bytes,
                              int(state.get("evicted", 0)), int(state.get("acked", 0)),
                              int(state.get("next_seq", 0)))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _move_capture(files: list[Path], folder: Path) -> bool:
    """Move one capture's files into ``folder``; False if it is not a complete capture."""
    files = sorted(files, key=is_sidecar)
    if not files or not is_sidecar(files[-1]):
        return False  # not in the spool (acked, evicted, or never there)
    # Image first, sidecar last: the capture is complete in quarantine only when whole.
    for path in files:
        os.replace(path, folder / path.name)
    return True


def _prune_quarantine(folder: Path, keep: int) -> int:
    """Delete all but the newest ``keep`` captures in ``folder``; return how many went."""
    captures = list(captures_in(folder).values())
    doomed = captures[:max(len(captures) - keep, 0)]
    for files in doomed:
        Spool._remove(files)
    return len(doomed)
