"""The capture spool and policy: quota eviction counted, acks across processes, crash leftovers."""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path

import pytest

from app.fleet.agent.errors import SpoolBusy
from app.fleet.agent.home import CaptureConfig
from app.fleet.agent.policy import CapturePolicy
from app.fleet.agent.spool import Spool


def _spool(tmp_path: Path, quota: int) -> Spool:
    return Spool(tmp_path / "spool", tmp_path / "state" / "spool.json", quota)


def test_quota_evicts_oldest_and_counts_them(tmp_path: Path) -> None:
    spool = _spool(tmp_path, quota=100_000)
    ids = [spool.add(bytes([i]) * 10_000, "jpg", {"n": i}) for i in range(30)]
    stats = spool.stats()
    assert stats.bytes <= 100_000
    assert stats.evicted == 30 - stats.captures and stats.evicted >= 20
    kept = sorted(p.stem for p in (tmp_path / "spool").glob("*.json"))
    assert kept == ids[-stats.captures:]  # the oldest went, the newest stayed
    # The count survives a restart: nothing vanishes unreported.
    assert _spool(tmp_path, quota=100_000).stats().evicted == stats.evicted


def test_sidecar_carries_the_image_hash(tmp_path: Path) -> None:
    spool = _spool(tmp_path, quota=10**7)
    cid = spool.add(b"jpeg bytes", "jpg", {"prediction": "ok"})
    sidecar = json.loads((tmp_path / "spool" / f"{cid}.json").read_text())
    assert sidecar["sha256"] == hashlib.sha256(b"jpeg bytes").hexdigest()
    assert sidecar["file"] == f"{cid}.jpg" and sidecar["prediction"] == "ok"
    assert (tmp_path / "spool" / sidecar["file"]).read_bytes() == b"jpeg bytes"


def test_ack_from_another_instance_is_seen_by_the_writer(tmp_path: Path) -> None:
    writer = _spool(tmp_path, quota=10**7)
    ids = [writer.add(b"x" * 100, "jpg", {}) for _ in range(10)]
    ctl = _spool(tmp_path, quota=10**7)  # what `edgeloop-agent ctl ack` opens
    assert ctl.ack(ids[5]) == 6
    writer.add(b"y" * 100, "jpg", {})
    stats = writer.stats()
    assert stats.captures == 5 and stats.acked == 6
    assert stats.next_seq == 11  # ids are never reused
    assert sorted(p.stem for p in (tmp_path / "spool").glob("*.json"))[0] == ids[6]


def test_incomplete_captures_from_a_crash_are_dropped(tmp_path: Path) -> None:
    spool = _spool(tmp_path, quota=10**7)
    spool.add(b"ok", "jpg", {})
    (tmp_path / "spool" / "000000000099.jpg").write_bytes(b"image without sidecar")
    (tmp_path / "spool" / ".000000000100.json.tmp").write_bytes(b"{")
    reopened = _spool(tmp_path, quota=10**7)
    assert reopened.stats().captures == 1
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == [
        "000000000000.jpg", "000000000000.json"]
    assert reopened.stats().next_seq == 1


def test_capture_policy_reasons() -> None:
    off = CapturePolicy(CaptureConfig(enabled=False))
    assert all(off.reason(0.01) is None for _ in range(50))
    policy = CapturePolicy(CaptureConfig(low_confidence=0.5, every_nth=10))
    reasons = [policy.reason(0.2 if i == 3 else 0.9) for i in range(1, 31)]
    assert reasons.count("low_confidence") == 1
    assert reasons.count("every_nth") == 3
    sampled = CapturePolicy(CaptureConfig(random_rate=0.2), seed=1)
    hits = sum(sampled.reason(0.99) == "random_sample" for _ in range(5000))
    assert 800 < hits < 1200
    assert CapturePolicy(CaptureConfig()).reason(0.99) is None  # random sampling is opt-in
    # The random sample does not depend on confidence: unsure frames are drawn as often.
    unsure = CapturePolicy(CaptureConfig(random_rate=0.2, low_confidence=0.5), seed=1)
    reasons = [unsure.reason(0.1) for _ in range(5000)]
    assert 800 < reasons.count("random_sample") < 1200
    assert reasons.count("low_confidence") == 5000 - reasons.count("random_sample")


def test_a_control_command_gives_up_on_a_lock_held_too_long(tmp_path: Path) -> None:
    loop = _spool(tmp_path, 10_000)
    with open(loop.lock_file, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a stuck agent, as another open file description
        with pytest.raises(SpoolBusy, match="held for 0 s by another process"):
            Spool(loop.folder, loop.state_file, 10_000, lock_timeout=0.2)
    assert Spool(loop.folder, loop.state_file, 10_000, lock_timeout=0.2).stats().captures == 0
