"""The content-addressed blob store of a project: images, model artifacts, reports.

Blobs live at ``blobs/ab/cdef...`` named by the sha256 of their bytes. A write goes to a
temporary file in ``blobs/tmp/``, is fsynced, then renamed into place, so a reader never sees
a partial blob, whatever instant the writer dies at; leftovers in ``tmp/`` are swept on open.
Writing the same bytes twice stores them once.
"""

from __future__ import annotations

import hashlib
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.core.errors import BlobCorrupt, BlobNotFound, BlobWriteFailed, InvalidInput
from app.core.fsutil import fsync_dir, sha256_file, sync_filesystem

CHUNK = 1 << 20
_HEX = frozenset("0123456789abcdef")
# A temp file younger than this may belong to a writer in another process that is still running.
STALE_TEMP_SECONDS = 3600.0


def sha256_bytes(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_sha256(value: str) -> str:
    """Return ``value`` if it is a lowercase hex sha256, else raise :class:`InvalidInput`."""
    if len(value) != 64 or not _HEX.issuperset(value):
        raise InvalidInput(f"{value!r} is not a sha256 (64 lowercase hex characters)")
    return value


@dataclass(frozen=True)
class IntegrityProblem:
    """A blob whose bytes no longer match its name."""

    sha256: str
    path: Path
    actual: str


class BlobStore:
    """A folder of content-addressed files with atomic writes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.sweep_temp_files(older_than=STALE_TEMP_SECONDS)

    def path_of(self, sha256: str) -> Path:
        """Where the blob named ``sha256`` lives (whether or not it exists)."""
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:]

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its sha256."""
        return self.put_chunks([data])

    def put_file(self, source: Path) -> str:
        """Store a copy of the file at ``source``; return its sha256."""
        with open(source, "rb") as fh:
            return self.put_stream(fh)

    def put_stream(self, stream: BinaryIO) -> str:
        """Store everything readable from ``stream``; return its sha256."""
        return self.put_chunks(iter(lambda: stream.read(CHUNK), b""))

    def put_chunks(self, chunks: Iterable[bytes], expected_sha256: str | None = None) -> str:
        """Store the concatenation of ``chunks`` atomically; return its sha256.

        With ``expected_sha256`` the content is checked before it becomes visible, and a
        mismatch raises :class:`BlobCorrupt` and stores nothing.
        """
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            if expected_sha256 is not None and sha != expected_sha256:
                raise BlobCorrupt(
                    f"content hashes to {sha}, not the expected {expected_sha256}; "
                    "it was not stored (the source is damaged or was cut short)"
                )
            final = self.path_of(sha)
            if final.is_file():
                # Same bytes already stored: dedup. Touch it so a garbage collection running
                # now sees it as recently wanted and leaves it for the row about to refer to it.
                os.utime(final)
                return sha
            final.parent.mkdir(exist_ok=True)
            os.chmod(tmp_name, 0o444)
            os.replace(tmp_name, final)
            fsync_dir(final.parent)
            return sha
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def put_many(self, items: Sequence[bytes]) -> list[str]:
        """Store several blobs with two filesystem flushes in all, not one fsync per blob.

        Returns the sha256 of each item, in order. See :class:`BlobBatch` for the guarantee.
        """
        with self.batch() as batch:
            for data in items:
                batch.add(data)
            return batch.commit()

    def batch(self) -> BlobBatch:
        """A :class:`BlobBatch` writing into this store (use it as a context manager)."""
        return BlobBatch(self)

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob for reading."""
        try:
            return open(self.path_of(sha256), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(f"blob {sha256} is not in the store {self.root}") from exc

    def read_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as fh:
            return fh.read()

    def delete(self, sha256: str) -> bool:
        """Remove a blob; return whether it was there. Callers check it is unreferenced."""
        try:
            self.path_of(sha256).unlink()
            return True
        except FileNotFoundError:
            return False

    def modified_at(self, sha256: str) -> float | None:
        """When the blob was last written or re-put (epoch seconds); None if absent."""
        try:
            return self.path_of(sha256).stat().st_mtime
        except FileNotFoundError:
            return None

    def iter_hashes(self) -> Iterator[str]:
        """Every stored blob's sha256 (in no particular order)."""
        for prefix in self.root.iterdir():
            if prefix.name == "tmp" or not prefix.is_dir() or len(prefix.name) != 2:
                continue
            for entry in prefix.iterdir():
                name = prefix.name + entry.name
                if len(name) == 64 and _HEX.issuperset(name):
                    yield name

    def verify(self) -> list[IntegrityProblem]:
        """Re-hash every blob; return those whose content no longer matches their name."""
        problems = []
        for sha in self.iter_hashes():
            path = self.path_of(sha)
            actual = sha256_file(path)
            if actual != sha:
                problems.append(IntegrityProblem(sha, path, actual))
        return problems

    def sweep_temp_files(self, older_than: float = 0.0) -> int:
        """Delete temp files left by writers that died; return how many went."""
        removed = 0
        cutoff = time.time() - older_than
        for entry in self.tmp.iterdir():
            try:
                if entry.stat().st_mtime <= cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


class BlobBatch:
    """Blobs written to temp files on a background thread as they arrive, made durable and
    visible together by :meth:`commit`.

    A pull hands each verified image over as soon as it is checked, so the file creation
    (the slow part on a journalled disk: about 0.5 ms a file here, all of it in the kernel,
    with the GIL released) overlaps with receiving and checking the next ones. ``commit``
    then flushes the filesystem once, renames every temp file into place, and flushes once
    more, so a blob never becomes visible half-written and the caller may commit rows that
    refer to them. Leaving the ``with`` block without a commit removes the temp files.
    """

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self._hashes: list[str] = []
        self._staged: list[tuple[str, str]] = []
        self._names: set[str] = set()
        self._work: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_all, name="blob-writer", daemon=True)
        self._writer.start()

    def add(self, data: bytes, sha256: str | None = None) -> str:
        """Queue ``data`` (whose sha256 the caller may already know); return its sha256."""
        if self._error is not None:
            raise self._error
        sha = sha256 if sha256 is not None else sha256_bytes(data)
        self._hashes.append(sha)
        if sha not in self._names:
            self._names.add(sha)
            self._work.put((sha, data))
        return sha

    def _write_all(self) -> None:
        while (item := self._work.get()) is not None:
            if self._error is not None:
                continue  # drain: the batch has failed, commit will raise
            sha, data = item
            try:
                self._write_one(sha, data)
            except OSError as exc:
                self._error = BlobWriteFailed(
                    f"could not write into the blob store {self.store.root} "
                    f"({exc.strerror or exc}); nothing of this batch was stored: free space "
                    "or fix the folder's permissions, then try again")
                self._error.__cause__ = exc
            except BaseException as exc:  # noqa: BLE001 - handed to the caller by commit
                self._error = exc

    def _write_one(self, sha: str, data: bytes) -> None:
        final = self.store.path_of(sha)
        if final.is_file():
            os.utime(final)  # dedup; see BlobStore.put_chunks for why it is touched
            return
        # Named by content and writer: cheaper than mkstemp's random names, and O_EXCL
        # still refuses a clash with another writer's file.
        tmp_name = str(self.store.tmp / f"many-{sha}-{os.getpid()}-{threading.get_ident()}")
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._staged.append((sha, tmp_name))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def _join(self) -> None:
        if self._writer.is_alive():
            self._work.put(None)
            self._writer.join()

    def commit(self) -> list[str]:
        """Wait for the writes, make them durable and visible; the sha256 of every item."""
        self._join()
        if self._error is not None:
            raise self._error
        staged, self._staged = self._staged, []
        try:
            if staged and not sync_filesystem(self.store.tmp):
                for _, tmp_name in staged:
                    with open(tmp_name, "rb+") as fh:
                        os.fsync(fh.fileno())
            for sha, tmp_name in staged:
                final = self.store.path_of(sha)
                final.parent.mkdir(exist_ok=True)
                os.chmod(tmp_name, 0o444)
                os.replace(tmp_name, final)
            if staged and not sync_filesystem(self.store.root):
                for folder in {self.store.path_of(sha).parent for sha, _ in staged}:
                    fsync_dir(folder)
        finally:
            _remove_leftovers(staged)
        return list(self._hashes)

    def close(self) -> None:
        """Stop the writer and remove temp files that were never committed."""
        self._join()
        staged, self._staged = self._staged, []
        _remove_leftovers(staged)

    def __enter__(self) -> BlobBatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _remove_leftovers(staged: Sequence[tuple[str, str]]) -> None:
    for _, tmp_name in staged:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
