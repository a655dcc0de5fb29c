"""Retention: delete by device or by age, collect unused blobs, keep frozen data, audit it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.core.captures import record_blob
from app.core.errors import PermissionDenied
from app.core.models import (
    AuditEvent, Capture, CaptureReason, DatasetSample, DatasetVersion, Dataset, Device, Role, Split,
)
from app.core.project import Project
from app.core.retention import (
    collect_orphan_files, purge_captures_older_than, purge_device_captures,
)
from app.core.users import actor_named, add_user
from tests.conftest import ADMIN


def _add_captures(project: Project, uid: str, n: int, age_days: float) -> list[str]:
    shas = []
    with project.db.write() as s:
        device = s.scalar(select(Device).where(Device.uid == uid)) or Device(uid=uid)
        s.add(device)
        s.flush()
        for i in range(n):
            data = f"{uid}-{age_days}-{i}".encode()
            sha = project.blobs.put_bytes(data)
            record_blob(s, sha, len(data), "image/png")
            s.add(Capture(device_id=device.id, device_capture_id=f"{age_days}-{i}", blob_sha256=sha,
                          captured_at=project.clock() - timedelta(days=age_days),
                          reason=CaptureReason.RANDOM_SAMPLE))
            shas.append(sha)
    return shas


def test_purge_device_deletes_its_captures_and_blobs_only(project: Project) -> None:
    gone = _add_captures(project, "cam-1", 4, 1)
    kept = _add_captures(project, "cam-2", 3, 1)
    admin = actor_named(project.db, ADMIN)
    result = purge_device_captures(project.db, project.blobs, project.audit, admin, "cam-1",
                                   blob_grace_seconds=0)
    assert (result.captures_deleted, result.blobs_deleted) == (4, 4)
    assert not any(project.blobs.exists(sha) for sha in gone)
    assert all(project.blobs.exists(sha) for sha in kept)
    with project.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Capture)) == 3
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "captures_deleted"))
        assert event.after["deleted"] == 4 and event.after["device"] == "cam-1"
        assert project.audit.verify(s).ok


def test_purge_by_age_keeps_recent_and_frozen_captures(project: Project) -> None:
    old = _add_captures(project, "cam-1", 5, 40)
    recent = _add_captures(project, "cam-1", 2, 2)
    with project.db.write() as s:
        frozen_capture = s.scalar(select(Capture).where(Capture.blob_sha256 == old[0]))
        version = DatasetVersion(dataset=Dataset(name="d"), number=1)
        s.add(version)
        s.flush()
        s.add(DatasetSample(version_id=version.id, capture_id=frozen_capture.id,
                            blob_sha256=old[0], split=Split.TRAIN))
    admin = actor_named(project.db, ADMIN)
    result = purge_captures_older_than(project.db, project.blobs, project.audit, admin, 30,
                                       clock=project.clock, blob_grace_seconds=0)
    assert result.captures_deleted == 4 and result.captures_kept_in_datasets == 1
    assert project.blobs.exists(old[0]) and all(project.blobs.exists(s) for s in recent)
    assert not any(project.blobs.exists(sha) for sha in old[1:])


def test_recently_reput_blob_file_survives_until_a_later_collection(project: Project) -> None:
    [sha] = _add_captures(project, "cam-1", 1, 1)
    admin = actor_named(project.db, ADMIN)
    result = purge_device_captures(project.db, project.blobs, project.audit, admin, "cam-1")
    assert result.blobs_deleted == 1
    assert project.blobs.exists(sha)  # inside the grace period: a pull may be re-using it
    assert collect_orphan_files(project.db, project.blobs, blob_grace_seconds=0) == 1
    assert not project.blobs.exists(sha)


def test_annotator_may_not_purge_and_nothing_is_deleted(project: Project) -> None:
    _add_captures(project, "cam-1", 2, 1)
    admin = actor_named(project.db, ADMIN)
    ann = add_user(project.db, project.audit, admin, "ann", Role.ANNOTATOR)
    with pytest.raises(PermissionDenied, match="delete data"):
        purge_device_captures(project.db, project.blobs, project.audit, ann, "cam-1")
    with project.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Capture)) == 2
