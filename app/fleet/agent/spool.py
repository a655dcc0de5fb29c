"""The capture spool: image + JSON sidecar pairs under a disk quota, oldest evicted first.

A capture is ``<id>.jpg`` (or .png) and ``<id>.json``; ids are zero-padded sequence numbers,
so names sort in capture order and the workstation's cursor is simply the last id it
committed. The image is written first and the sidecar last, each atomically: a capture
whose sidecar exists is complete. When a new capture would exceed the quota the oldest go,
and ``evicted`` counts them in state/spool.json, so nothing disappears unreported. Only the
workstation's acknowledgement (``ack``) deletes captures otherwise.

``ack`` normally runs in another process (``edgeloop-agent ctl ack`` over SSH) while the
agent loop adds captures, so every operation holds a file lock on state/spool.lock and
re-reads state/spool.json; the ack cursor in it tells the loop which entries are gone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.fleet.agent.fsutil import read_json, write_atomic, write_json_atomic

ID_WIDTH = 12
SIDECAR = ".json"


def capture_id(seq: int) -> str:
    return f"{seq:0{ID_WIDTH}d}"


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

    def __init__(self, folder: Path, state_file: Path, quota_bytes: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_file = Path(state_file)
        self.lock_file = self.state_file.with_suffix(".lock")
        self.quota_bytes = int(quota_bytes)
        self._thread_lock = threading.Lock()
        with self._locked() as state:
            self._drop_incomplete()
            self._entries = self._scan()
            self._bytes = sum(size for _, size in self._entries.values())
            highest = max(self._entries, default=-1)
            state["next_seq"] = max(int(state.get("next_seq", 0)), highest + 1)

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Hold both locks; yield the shared state, saved again when the block ends."""
        with self._thread_lock:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.lock_file, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    state = dict(read_json(self.state_file, default={}) or {})
                    before = dict(state)
                    yield state
                    if state != before:
                        write_json_atomic(self.state_file, state)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _drop_incomplete(self) -> None:
        """Images without a sidecar are captures cut off by a crash: remove them."""
        for path in self.folder.iterdir():
            if path.name.startswith("."):
                path.unlink(missing_ok=True)  # temp files of interrupted atomic writes
            elif path.suffix != SIDECAR and not path.with_suffix(SIDECAR).exists():
                path.unlink(missing_ok=True)

    def _scan(self) -> dict[int, tuple[list[Path], int]]:
        entries: dict[int, tuple[list[Path], int]] = {}
        for sidecar in self.folder.glob(f"*{SIDECAR}"):
            try:
                seq = int(sidecar.stem)
            except ValueError:
                continue
            files = list(self.folder.glob(f"{sidecar.stem}.*"))
            entries[seq] = (files, sum(p.stat().st_size for p in files if p.exists()))
        return dict(sorted(entries.items()))

    def _forget_acked(self, state: dict[str, Any]) -> None:
        """Drop index entries that an ack (perhaps from another process) deleted."""
        acked_up_to = int(state.get("acked_up_to", -1))
        for seq in [s for s in self._entries if s <= acked_up_to]:
            files, size = self._entries.pop(seq)
            for path in files:
                path.unlink(missing_ok=True)
            self._bytes -= size

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
        try:
            limit = int(up_to)
        except ValueError:
            raise ValueError(f"ack: {up_to!r} is not a capture id") from None
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

    def stats(self) -> SpoolStats:
        with self._locked() as state:
            self._forget_acked(state)
            return SpoolStats(len(self._entries), self._bytes, self.quota_bytes,
                              int(state.get("evicted", 0)), int(state.get("acked", 0)),
                              int(state.get("next_seq", 0)))
