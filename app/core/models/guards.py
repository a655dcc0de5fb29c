"""ORM guards for records that must never change once written.

A frozen dataset version (and its samples) and every audit event are refused at flush time
with :class:`ImmutableRecord`, before any SQL is sent; so are ORM bulk UPDATE and DELETE
statements on those tables. Raw SQL can still get past this; the audit chain's hashes and
the dataset version's content hash (``verify_version``) are what catch that.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session

from app.core.errors import ImmutableRecord
from app.core.models.audit import AuditEvent
from app.core.models.datasets import DatasetSample, DatasetVersion


def _stored_frozen_at(session: Session, version_id: int | None) -> bool:
    """Whether the version, as committed in the database, is frozen.

    Read from the database rather than from attribute history: history is empty once an
    attribute is expired, and a version frozen in this very flush is not frozen yet.
    """
    if version_id is None:
        return False
    with session.no_autoflush:
        return session.execute(select(DatasetVersion.frozen_at)
                               .where(DatasetVersion.id == version_id)).scalar() is not None


def _stored_version_of(session: Session, sample: DatasetSample) -> int | None:
    """The version a sample belonged to before this flush (its stored row, if any)."""
    if sample.id is None:
        return sample.version_id or (sample.version.id if sample.version is not None else None)
    with session.no_autoflush:
        return session.execute(select(DatasetSample.version_id)
                               .where(DatasetSample.id == sample.id)).scalar()


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_immutable_records(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent):
            raise ImmutableRecord(f"audit event #{obj.seq} cannot change: the trail is append-only")
    for obj in session.deleted:
        if isinstance(obj, DatasetVersion) and _stored_frozen_at(session, obj.id):
            raise ImmutableRecord(f"dataset version {obj.id} is frozen and cannot be deleted")
        if isinstance(obj, DatasetSample) and _stored_frozen_at(
                session, _stored_version_of(session, obj)):
            raise ImmutableRecord(f"dataset version {obj.version_id} is frozen: samples stay")
    for obj in session.dirty:
        if not session.is_modified(obj, include_collections=False):
            continue
        if isinstance(obj, DatasetVersion) and _stored_frozen_at(session, obj.id):
            raise ImmutableRecord(f"dataset version {obj.id} is frozen and cannot change")
        if isinstance(obj, DatasetSample) and (
                _stored_frozen_at(session, _stored_version_of(session, obj))
                or _stored_frozen_at(session, obj.version_id)):
            raise ImmutableRecord(f"dataset version {obj.version_id} is frozen: its samples "
                                  "cannot change")
    for obj in session.new:
        if isinstance(obj, DatasetSample) and _stored_frozen_at(session, _stored_version_of(
                session, obj)):
            raise ImmutableRecord(f"dataset version {obj.version_id} is frozen: no samples "
                                  "can be added")


_GUARDED = (AuditEvent, DatasetVersion, DatasetSample)


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    """ORM bulk UPDATE and DELETE statements skip the flush: refuse them on guarded tables."""
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and issubclass(mapper.class_, _GUARDED):
        raise ImmutableRecord(f"bulk {'update' if state.is_update else 'delete'} of "
                              f"{mapper.class_.__tablename__} refused: audit events and frozen "
                              "dataset versions never change")
