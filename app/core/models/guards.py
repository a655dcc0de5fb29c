"""ORM guards for records that must never change once written.

A frozen dataset version (and its samples) and every audit event are refused at flush time
with :class:`ImmutableRecord`, before any SQL is sent. Raw SQL can still get past this; the
audit chain's hashes and the dataset version's content hash are what catch that.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app.core.errors import ImmutableRecord
from app.core.models.audit import AuditEvent
from app.core.models.datasets import DatasetSample, DatasetVersion


def _was_frozen(version: DatasetVersion) -> bool:
    history = inspect(version).attrs.frozen_at.history
    committed = history.deleted[0] if history.deleted else history.unchanged
    if isinstance(committed, tuple):
        committed = committed[0] if committed else None
    return committed is not None


def _sample_version_frozen(session: Session, sample: DatasetSample) -> bool:
    version = sample.version or session.get(DatasetVersion, sample.version_id)
    return version is not None and _was_frozen(version)


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_immutable_records(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent):
            raise ImmutableRecord(f"audit event #{obj.seq} cannot change: the trail is append-only")
    for obj in session.deleted:
        if isinstance(obj, DatasetVersion) and _was_frozen(obj):
            raise ImmutableRecord(f"dataset version {obj.id} is frozen and cannot be deleted")
        if isinstance(obj, DatasetSample) and _sample_version_frozen(session, obj):
            raise ImmutableRecord(f"dataset version {obj.version_id} is frozen: samples stay")
    for obj in session.dirty:
        if not session.is_modified(obj, include_collections=False):
            continue
        if isinstance(obj, DatasetVersion) and _was_frozen(obj):
            raise ImmutableRecord(f"dataset version {obj.id} is frozen and cannot change")
        if isinstance(obj, DatasetSample) and _sample_version_frozen(session, obj):
            raise ImmutableRecord(f"dataset version {obj.version_id} is frozen: its samples cannot change")
    for obj in session.new:
        if isinstance(obj, DatasetSample) and _sample_version_frozen(session, obj):
            raise ImmutableRecord(f"dataset version {obj.version_id} is frozen: no samples can be added")
