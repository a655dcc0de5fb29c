"""Retention and erasure: delete captures by device or by age, then collect unused blobs.

Captures that a frozen dataset version holds are kept (the version must stay reproducible)
and counted in the result, so nothing disappears and nothing is kept silently. Every purge
is audited with what it removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models import (
    Blob, Capture, DatasetSample, Device, ModelArtifact, utcnow,
)
from app.core.roles import Actor, Permission, authorize

BATCH = 5000
# A blob written or re-put this recently may be about to gain a reference in a transaction
# of another process (a pull that found the bytes already stored); its file is left for a
# later collection rather than risk a row without its file.
BLOB_GRACE_SECONDS = 600.0


@dataclass(frozen=True)
class PurgeResult:
    """What a purge removed and what it kept."""

    captures_deleted: int
    captures_kept_in_datasets: int
    blobs_deleted: int
    bytes_freed: int


def purge_device_captures(
    db: Database,
    blobs: BlobStore,
    audit: AuditTrail,
    actor: Actor,
    device_uid: str,
    *,
    blob_grace_seconds: float = BLOB_GRACE_SECONDS,
) -> PurgeResult:
    """Delete every capture of one device (erasure), except those frozen in datasets."""
    authorize(db, audit, actor, Permission.DELETE_DATA, f"captures of device {device_uid}")
    with db.read() as session:
        device = session.scalar(select(Device).where(Device.uid == device_uid))
        if device is None:
            raise InvalidInput(f"no device {device_uid!r}; `edgeloop devices list` shows them")
        device_id = device.id
    return _purge(
        db, blobs, audit, actor, Capture.device_id == device_id,
        criteria={"device": device_uid}, grace=blob_grace_seconds,
    )


def purge_captures_older_than(
    db: Database,
    blobs: BlobStore,
    audit: AuditTrail,
    actor: Actor,
    days: int,
    *,
    clock: Callable[[], datetime] = utcnow,
    blob_grace_seconds: float = BLOB_GRACE_SECONDS,
) -> PurgeResult:
    """Delete captures taken more than ``days`` days ago, except those frozen in datasets."""
    if days < 0:
        raise InvalidInput(f"--older-than {days}: give a number of days of 0 or more")
    authorize(db, audit, actor, Permission.DELETE_DATA, f"captures older than {days} days")
    cutoff = clock() - timedelta(days=days)
    return _purge(
        db, blobs, audit, actor, Capture.captured_at < cutoff,
        criteria={"older_than_days": days, "cutoff": cutoff.isoformat()},
        grace=blob_grace_seconds,
    )


def _purge(
    db: Database,
    blobs: BlobStore,
    audit: AuditTrail,
    actor: Actor,
    condition: ColumnElement[bool],
    criteria: dict[str, object],
    grace: float,
) -> PurgeResult:
    in_dataset = select(DatasetSample.capture_id)
    deleted = 0
    with db.write() as session:
        kept = session.scalar(
            select(func.count()).select_from(Capture)
            .where(condition, Capture.id.in_(in_dataset))
        ) or 0
        while True:
            ids = list(session.scalars(
                select(Capture.id).where(condition, Capture.id.not_in(in_dataset)).limit(BATCH)
            ))
            if not ids:
                break
            session.execute(delete(Capture).where(Capture.id.in_(ids)))
            deleted += len(ids)
        doomed = _unreferenced_blobs(session)
        freed = sum(size for _, size in doomed)
        if doomed:
            session.execute(delete(Blob).where(Blob.sha256.in_([sha for sha, _ in doomed])))
        audit.append(
            session, actor=actor.name, action="captures_deleted", object_type="captures",
            object_id=",".join(f"{k}={v}" for k, v in criteria.items()),
            after={
                **criteria, "deleted": deleted, "kept_in_datasets": kept,
                "blobs_deleted": len(doomed), "bytes_freed": freed,
            },
        )
    # Files go only after the rows are committed: a crash in between leaves orphan files,
    # which the next collection removes, never a row without its file.
    now = time.time()
    for sha, _ in doomed:
        touched = blobs.modified_at(sha)
        if touched is not None and now - touched >= grace:
            blobs.delete(sha)
    return PurgeResult(deleted, kept, len(doomed), freed)


def _unreferenced_blobs(session: Session) -> list[tuple[str, int]]:
    referenced = (
        select(Capture.blob_sha256)
        .union(select(DatasetSample.blob_sha256), select(ModelArtifact.blob_sha256))
        .subquery()
    )
    rows = session.execute(
        select(Blob.sha256, Blob.size).where(Blob.sha256.not_in(select(referenced.c[0])))
    )
    return [(sha, size) for sha, size in rows]


def collect_orphan_files(
    db: Database, blobs: BlobStore, *, blob_grace_seconds: float = BLOB_GRACE_SECONDS
) -> int:
    """Delete stored files that no blob row names (left by crashes); return how many."""
    now = time.time()
    with db.read() as session:
        known = set(session.scalars(select(Blob.sha256)))
    removed = 0
    for sha in list(blobs.iter_hashes()):
        if sha in known:
            continue
        touched = blobs.modified_at(sha)
        if touched is not None and now - touched >= blob_grace_seconds:
            removed += blobs.delete(sha)
    return removed
