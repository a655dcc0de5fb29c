"""The blob store: content addressing, dedup, integrity, and no partial blob ever visible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.core.blobs import BlobStore, sha256_bytes
from app.core.errors import BlobCorrupt, BlobNotFound, BlobWriteFailed, InvalidInput


def test_put_read_dedup(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"conveyor frame" * 1000
    sha = store.put_bytes(data)
    assert sha == sha256_bytes(data)
    assert store.read_bytes(sha) == data
    assert store.put_bytes(data) == sha
    assert list(store.iter_hashes()) == [sha]
    assert store.path_of(sha).parent.name == sha[:2]


def test_expected_hash_mismatch_stores_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(BlobCorrupt, match="not the expected"):
        store.put_chunks([b"truncated"], expected_sha256=sha256_bytes(b"truncated image"))
    assert list(store.iter_hashes()) == []
    assert list(store.tmp.iterdir()) == []


def test_verify_finds_a_changed_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    good, bad = store.put_bytes(b"good"), store.put_bytes(b"bad")
    path = store.path_of(bad)
    os.chmod(path, 0o644)
    path.write_bytes(b"bit rot")
    problems = store.verify()
    assert [p.sha256 for p in problems] == [bad]
    assert problems[0].actual == sha256_bytes(b"bit rot")
    assert store.read_bytes(good) == b"good"


def test_missing_blob_and_bad_names_raise_clear_errors(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(BlobNotFound, match="not in the store"):
        store.open("a" * 64)
    for name in ("../../etc/passwd", "A" * 64, "a" * 63):
        with pytest.raises(InvalidInput):
            store.path_of(name)


_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from app.core import blobs
    store = blobs.BlobStore(Path(sys.argv[1]))
    ready = Path(sys.argv[2])
    stage = sys.argv[3]
    def chunks():
        yield b"x" * (1 << 20)
        if stage == "write":
            ready.write_text("writing")
            time.sleep(60)
        yield b"y" * (1 << 20)
    if stage == "rename":
        real_replace = os.replace
        def stalled_replace(src, dst):
            ready.write_text("renaming")
            time.sleep(60)
        blobs.os.replace = stalled_replace
    store.put_chunks(chunks())
    """
)


@pytest.mark.parametrize("stage", ["write", "rename"])
def test_writer_killed_mid_put_leaves_no_visible_blob(tmp_path: Path, stage: str) -> None:
    root, ready = tmp_path / "blobs", tmp_path / "ready"
    BlobStore(root)
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), str(ready), stage])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert child.poll() is None, "writer exited early"
            assert time.monotonic() < deadline, "writer never reached the stage"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    store = BlobStore(root)  # a fresh open, as the next process would do
    assert list(store.iter_hashes()) == []
    whole = b"x" * (1 << 20) + b"y" * (1 << 20)
    assert not store.exists(sha256_bytes(whole))
    assert not store.exists(sha256_bytes(b"x" * (1 << 20)))
    # The dead writer's temp file is young, so it is kept from a concurrent sweep, and
    # removed by a sweep that is told the writer is gone.
    assert store.sweep_temp_files(older_than=0) == 1
    assert list(store.tmp.iterdir()) == []


def test_put_many_stores_each_once_and_leaves_no_temp(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    already = store.put_bytes(b"old")
    items = [b"a" * 10, b"b" * 20, b"a" * 10, b"old", b""]
    hashes = store.put_many(items)
    assert hashes == [sha256_bytes(item) for item in items]
    assert hashes[3] == already
    assert sorted(store.iter_hashes()) == sorted(set(hashes))
    assert all(store.read_bytes(h) == item for h, item in zip(hashes, items))
    assert list(store.tmp.iterdir()) == []
    assert store.verify() == []


def test_put_many_falls_back_to_fsync_without_syncfs(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core import blobs as blobs_module

    monkeypatch.setattr(blobs_module, "sync_filesystem", lambda path: False)
    store = BlobStore(tmp_path / "blobs")
    hashes = store.put_many([b"one", b"two"])
    assert [store.read_bytes(h) for h in hashes] == [b"one", b"two"]


def test_a_batch_left_without_commit_stores_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    with store.batch() as batch:
        sha = batch.add(b"never committed")
        batch._join()  # the writer has staged it...
        assert len(list(store.tmp.iterdir())) == 1
    # ...and leaving the block (an error, a cancel) removes it unpublished.
    assert not store.exists(sha)
    assert list(store.tmp.iterdir()) == []


def test_a_batch_that_cannot_write_says_so_and_stores_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    store.tmp.rmdir()
    store.tmp.write_bytes(b"")  # not a folder any more: every temp file open fails
    with store.batch() as batch:
        batch.add(b"first")
        with pytest.raises(BlobWriteFailed, match="could not write into the blob store"):
            for _ in range(10_000):  # the writer's error surfaces on a later add or at commit
                batch.add(os.urandom(16))
            batch.commit()
    assert sorted(p.name for p in store.root.iterdir()) == ["tmp"]
