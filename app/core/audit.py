"""The append-only, hash-chained audit trail: append, verify, export.

Each event carries the sha256 of the one before it, over a canonical JSON of its content, so
an edited, deleted or reordered event breaks the chain where it happened and ``verify`` can
name it. Appenders lock the single head row, so the chain stays linear with many writers.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.models import AuditEvent, AuditHead, utcnow

GENESIS_HASH = "0" * 64
HEAD_ID = 1
EXPORT_COLUMNS = (
    "seq", "at", "actor", "action", "object_type", "object_id", "before", "after",
    "prev_hash", "hash",
)

Clock = Callable[[], datetime]


def _normalize(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a summary reads back as from either database (JSON types only)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))


def event_hash(
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> str:
    """The chain hash of an event: sha256 over its content and the previous hash."""
    payload = {
        "prev": prev_hash,
        "at": at.isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "before": before,
        "after": after,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _hash_of(event: AuditEvent) -> str:
    return event_hash(
        event.prev_hash, event.at, event.actor, event.action, event.object_type,
        event.object_id, event.before, event.after,
    )


def _describe(event: AuditEvent) -> str:
    return (
        f"event #{event.seq} ({event.action} {event.object_type} {event.object_id} "
        f"by {event.actor} at {event.at.isoformat(timespec='seconds')})"
    )


@dataclass(frozen=True)
class AuditProblem:
    """One break in the chain: which event, what kind (edited, deleted, reordered), and how."""

    seq: int | None
    kind: str
    message: str


@dataclass(frozen=True)
class AuditReport:
    """The outcome of :meth:`AuditTrail.verify`."""

    events: int
    problems: tuple[AuditProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditTrail:
    """Appends and checks audit events. The clock is injected so tests control time."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock

    def append(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str | int,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> AuditEvent:
        """Add an event in the caller's write transaction; it commits or rolls back with it."""
        head = session.execute(
            select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update()
        ).scalar_one()
        # Hash exactly what both databases read back: UTC, microsecond precision.
        at = self.clock().astimezone(timezone.utc)
        before, after = _normalize(before), _normalize(after)
        event = AuditEvent(
            seq=head.seq + 1,
            at=at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            before=before,
            after=after,
            prev_hash=head.hash,
        )
        event.hash = _hash_of(event)
        session.add(event)
        head.seq, head.hash, head.count = event.seq, event.hash, head.count + 1
        session.flush()
        return event

    def verify(self, session: Session) -> AuditReport:
        """Walk the chain in order; report every edited, deleted or reordered event."""
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        by_hash = {event.hash: event for event in events}
        problems: list[AuditProblem] = []
        previous: AuditEvent | None = None
        for event in events:
            expected_prev = previous.hash if previous else GENESIS_HASH
            if _hash_of(event) != event.hash:
                problems.append(AuditProblem(
                    event.seq, "edited",
                    f"{_describe(event)} was edited: its content no longer matches its hash",
                ))
            if event.prev_hash != expected_prev:
                problems.append(self._link_problem(event, previous, by_hash))
            previous = event
        problems.extend(self._head_problems(session, events))
        return AuditReport(events=len(events), problems=tuple(problems))

    @staticmethod
    def _link_problem(
        event: AuditEvent, previous: AuditEvent | None, by_hash: dict[str, AuditEvent]
    ) -> AuditProblem:
        after_what = f"event #{previous.seq}" if previous else "the start of the trail"
        chained_to = by_hash.get(event.prev_hash)
        if chained_to is not None or (event.prev_hash == GENESIS_HASH and previous is not None):
            written_after = f"event #{chained_to.seq}" if chained_to else "the start of the trail"
            return AuditProblem(
                event.seq, "reordered",
                f"{_describe(event)} is out of order: it was written after {written_after} "
                f"but now follows {after_what}",
            )
        if previous is not None and previous.seq == event.seq - 1:
            return AuditProblem(
                previous.seq, "edited",
                f"{_describe(previous)} was rewritten: event #{event.seq} was chained to "
                "a different version of it",
            )
        return AuditProblem(
            event.seq, "deleted",
            f"one or more events were deleted between {after_what} and {_describe(event)}",
        )

    @staticmethod
    def _head_problems(session: Session, events: list[AuditEvent]) -> list[AuditProblem]:
        head = session.get(AuditHead, HEAD_ID)
        if head is None:
            return [AuditProblem(None, "deleted", "the audit head record is missing")]
        last = events[-1] if events else None
        if (last.hash if last else GENESIS_HASH) == head.hash and len(events) == head.count:
            return []
        if last is None or head.seq > last.seq:
            after = f"event #{last.seq}" if last else "the start of the trail"
            return [AuditProblem(
                head.seq, "deleted",
                f"the newest events after {after} were deleted: the trail's head names "
                f"event #{head.seq} and {head.count} events in all, {len(events)} remain",
            )]
        if len(events) != head.count:
            return [AuditProblem(
                None, "deleted",
                f"the trail holds {len(events)} events but {head.count} were written",
            )]
        return [AuditProblem(
            last.seq, "edited",
            f"{_describe(last)} does not match the trail's head: the newest event was replaced",
        )]

    def events(
        self,
        session: Session,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> Iterator[AuditEvent]:
        """Events in chain order, optionally within ``[since, until)`` and filtered."""
        query = select(AuditEvent).order_by(AuditEvent.seq)
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        if until is not None:
            query = query.where(AuditEvent.at < until)
        if actor is not None:
            query = query.where(AuditEvent.actor == actor)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        yield from session.scalars(query.execution_options(yield_per=1000))


def event_record(event: AuditEvent) -> dict[str, Any]:
    """An event as plain JSON-ready values (the export row)."""
    return {
        "seq": event.seq,
        "at": event.at.isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before": event.before,
        "after": event.after,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def write_csv(events: Iterator[AuditEvent], out: IO[str]) -> int:
    """Write events as CSV (summaries as JSON text); return how many rows."""
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    count = 0
    for event in events:
        row = event_record(event)
        row["before"] = json.dumps(row["before"], sort_keys=True) if row["before"] else ""
        row["after"] = json.dumps(row["after"], sort_keys=True) if row["after"] else ""
        writer.writerow(row)
        count += 1
    return count


def write_json(events: Iterator[AuditEvent], out: IO[str]) -> int:
    """Write events as a JSON array; return how many."""
    records = [event_record(event) for event in events]
    json.dump(records, out, indent=2, ensure_ascii=False)
    out.write("\n")
    return len(records)
