"""Pull: exactly once under connection cuts at random points, quarantine of bad captures,
resume, progress and cancel."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from app.core.models import QuarantinedCapture
from app.core.progress import Cancelled, CancelToken, Progress
from app.fleet.errors import FleetError
from app.fleet.pull import DevicePuller, PullSettings
from tests.fleet.pull_device import PullDevice, jpeg, pull_device
from tests.support.cutting_proxy import CutPlan, CuttingProxy

SMALL_BATCHES = PullSettings(batch=25, timeout=20)


@pytest.fixture
def device(tmp_path: Path):  # type: ignore[no-untyped-def]
    with pull_device(tmp_path) as built:
        yield built


def check_nothing_lost(device: PullDevice, added: set[str]) -> None:
    in_db = device.db_ids()
    assert len(in_db) == len(set(in_db)), "a capture was imported twice"
    assert set(in_db) <= added
    # Nothing leaves the device before it is committed: every capture is in one place or both.
    assert added == set(in_db) | device.spool_ids(), "a capture was deleted before its commit"
    blobs = device.project.blobs
    with device.project.db.read() as session:
        from app.core.models import Capture

        assert all(blobs.exists(sha) for sha in session.scalars(select(Capture.blob_sha256)))


def test_pull_cut_at_100_random_points_imports_everything_exactly_once(device: PullDevice) -> None:
    rng = random.Random(5)
    added = set(device.add(60))
    proxy = CuttingProxy((device.endpoint.host, device.endpoint.port))
    device.point_at(proxy.port)
    cuts = 0
    try:
        for attempt in range(100):
            added |= set(device.add(3, start_seed=1000 + attempt * 3))
            pending = len(device.spool_ids())
            # Anywhere from the SSH handshake to past the last ack: ~1 KB a capture, and
            # the handshake, status and tar framing on top.
            proxy.plan = CutPlan(down_limit=rng.randint(0, 6000 + pending * 1800),
                                 up_limit=rng.choice([None, rng.randint(0, 8000)]))
            try:
                DevicePuller(device.ctx, device.admin, SMALL_BATCHES).pull(device.uid)
            except FleetError:
                pass  # a cut connection: the next attempt goes on
            cuts += proxy.plan.cut.is_set()
            check_nothing_lost(device, added)
        proxy.plan = CutPlan()
        result = DevicePuller(device.ctx, device.admin, SMALL_BATCHES).pull(device.uid)
        assert result.error is None
    finally:
        proxy.close()
    check_nothing_lost(device, added)
    assert sorted(device.db_ids()) == sorted(added)
    assert device.spool_ids() == set()
    assert cuts >= 60, f"only {cuts} of 100 attempts were cut; the plan misses the transfer"


def test_bad_captures_are_quarantined_kept_on_the_device_and_the_rest_imported(
        device: PullDevice) -> None:
    good = device.add(3)
    files = device.good_files(10)
    bad_json = device.write_raw(10, {"ID.jpg": files["ID.jpg"], "ID.json": b"{not json"})
    files = device.good_files(11)
    record = json.loads(files["ID.json"])
    wrong_hash = device.write_raw(11, {"ID.jpg": files["ID.jpg"], "ID.json": json.dumps(
        dict(record, id="000000000011", file="000000000011.jpg", sha256="0" * 64)).encode()})
    files = device.good_files(12)
    record = json.loads(files["ID.json"])
    traversal = device.write_raw(12, {"ID.jpg": files["ID.jpg"], "ID.json": json.dumps(
        dict(record, id="000000000012", file="../../etc/passwd")).encode()})
    garbage = b"this is not an image at all" * 10
    files = device.good_files(13)
    record = json.loads(files["ID.json"])
    import hashlib

    undecodable = device.write_raw(13, {"ID.jpg": garbage, "ID.json": json.dumps(
        dict(record, id="000000000013", file="000000000013.jpg", size=len(garbage),
             sha256=hashlib.sha256(garbage).hexdigest())).encode()})
    later = device.add(2, start_seed=50)

    result = DevicePuller(device.ctx, device.admin).pull(device.uid)
    assert result.imported == 5 and result.quarantined == 4
    assert sorted(device.db_ids()) == sorted(good + later)
    with device.project.db.read() as session:
        reasons = {q.device_capture_id: (q.reason, q.held_on_device)
                   for q in session.scalars(select(QuarantinedCapture))}
    assert "JSON" in reasons[bad_json][0]
    assert "sha256" in reasons[wrong_hash][0]
    assert "../../etc/passwd" in reasons[traversal][0]
    assert "decode" in reasons[undecodable][0]
    assert all(held for _, held in reasons.values())
    # Not imported, not deleted: the device keeps them in its quarantine folder.
    assert device.held_ids() == {bad_json, wrong_hash, traversal, undecodable}
    assert device.spool_ids() == set()
    assert not (device.home.root.parent / "etc").exists()
    again = DevicePuller(device.ctx, device.admin).pull(device.uid)
    assert again.imported == 0 and again.quarantined == 0


def test_progress_is_reported_and_cancel_stops_between_batches(device: PullDevice) -> None:
    device.add(60)
    seen: list[Progress] = []
    cancel = CancelToken()

    def on_progress(step: Progress) -> None:
        seen.append(step)
        if len(seen) == 1:
            cancel.cancel()

    with pytest.raises(Cancelled):
        DevicePuller(device.ctx, device.admin, PullSettings(batch=20), on_progress,
                     cancel).pull(device.uid)
    assert len(device.db_ids()) == 20 and seen[0].done == 20
    resumed = DevicePuller(device.ctx, device.admin, PullSettings(batch=20)).pull(device.uid)
    assert resumed.imported == 40 and len(device.db_ids()) == 60


def test_a_device_that_is_off_is_a_clear_error(device: PullDevice) -> None:
    device.point_at(1)  # nothing listens on port 1
    with pytest.raises(FleetError) as failed:
        DevicePuller(device.ctx, device.admin).pull(device.uid)
    assert device.uid in str(failed.value) and "127.0.0.1:1" in str(failed.value)


def test_jpeg_helper_makes_decodable_images() -> None:
    import cv2
    import numpy as np

    assert cv2.imdecode(np.frombuffer(jpeg(1), np.uint8), cv2.IMREAD_COLOR) is not None
