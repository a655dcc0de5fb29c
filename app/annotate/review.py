"""The review queue as the Review page walks it: filtered, keyset-paged, skip and decide.

:func:`review_page` answers a page of open review items with everything the page shows (the
capture's image, device and time, why it is in the queue, what the edge model and the
observer said and which versions said it), and the cursor of the next page:

    rows, cursor = review_page(project.db, ReviewFilter(device_uid="line-3-cam"))
    more, cursor = review_page(project.db, ReviewFilter(device_uid="line-3-cam"), cursor)

**Order.** Highest priority first, then the oldest item (lowest id): the order of
:func:`app.core.review_queue.open_items`. The priority already holds the kind's rank
(``BASE_PRIORITY``: false negatives 4, false positives 3, disagreements 2, low confidence 1,
spot checks 0) plus a fraction below 1 (a top-class confidence is never 0), so "by kind, then
by priority" and "by priority" are the same order, and the order can be read from the
``ix_review_items_open (resolved_at, priority)`` index instead of sorted.

**Keyset pages.** The next page starts after the last row of the one before, so page 2,000
of a 100,000-item queue costs what page 1 costs, and an item decided meanwhile never shifts
another onto two pages.

**Skipping.** A skipped item stays open (``resolved_at`` empty: nothing is lost) and its
capture's review status becomes ``skipped``; ReviewItem has no state of its own for it, and
needs none. Skipped items go to the *end of the queue*: a page lists every open, not skipped
item first, then the skipped ones in the same order, so a reviewer meets them again after
everything else, and a filter never hides them. Deciding a skipped item resolves it like any
other (the capture becomes ``reviewed``).

**Deciding.** Accepting the edge model's class, the observer's, or picking another all go
through :func:`decide_item`, which is :func:`app.core.review_queue.resolve_item` with source
HUMAN: one path, so a decision made here is the annotation the dataset freeze reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from app.core.audit import AuditTrail
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models import (
    AnnotationSource, Capture, CaptureReason, Device, LabelClass, ModelVersion, Observation,
    ReviewItem, ReviewKind, ReviewStatus, utcnow,
)
from app.core.review_queue import resolve_item
from app.core.roles import Actor, Permission, authorize

Clock = Callable[[], datetime]

PAGE_SIZE = 50

# The observer's prediction the item was judged on: that observer's own observation of the
# capture when it is known (a later observer rewrites the capture's columns), else the
# capture's columns (items made without an observer model, e.g. by an import).
_OBSERVER_CLASS = case((Observation.id.is_not(None), Observation.class_id),
                       else_=Capture.observer_class_id)
_OBSERVER_CONFIDENCE = func.coalesce(Observation.confidence, Capture.observer_confidence)


@dataclass(frozen=True)
class ReviewFilter:
    """Which open review items to show; ``None`` everywhere means all of them.

    ``kind`` is why the item is in the queue (:class:`ReviewKind`); ``capture_reason`` why
    the device kept the frame; ``class_name`` matches an item whose edge model *or* observer
    predicted that class.
    """

    device_uid: str | None = None
    kind: ReviewKind | None = None
    capture_reason: CaptureReason | None = None
    class_name: str | None = None

    def describe(self) -> str:
        """The filter in words, for a status line."""
        parts = []
        if self.device_uid is not None:
            parts.append(f"device {self.device_uid}")
        if self.kind is not None:
            parts.append(self.kind.value.replace("_", " "))
        if self.capture_reason is not None:
            parts.append(f"kept as {self.capture_reason.value.replace('_', ' ')}")
        if self.class_name is not None:
            parts.append(f"class {self.class_name}")
        return ", ".join(parts) or "the whole queue"


@dataclass(frozen=True)
class ReviewCursor:
    """Where the next page starts: just after this item, in queue order (``skipped``: among
    the skipped items at the end; ``priority`` None: at the first of them)."""

    skipped: bool
    priority: float | None
    item_id: int = 0

    @classmethod
    def skipped_start(cls) -> ReviewCursor:
        """The cursor of the skipped items from their first: how a reviewer at the end of
        the queue goes through what was skipped on the way."""
        return cls(skipped=True, priority=None)


@dataclass(frozen=True)
class ReviewRow:
    """One open review item as the Review page shows it, detached from the session.

    Class names are None where a model made no prediction; ``edge_model`` is the version
    the device ran (the capture's sidecar), ``observer_model`` the observer that judged it.
    """

    item_id: int
    capture_id: int
    kind: ReviewKind
    priority: float
    skipped: bool
    blob_sha256: str
    device_uid: str
    device_capture_id: str
    captured_at: datetime
    capture_reason: CaptureReason
    edge_class: str | None
    edge_confidence: float | None
    edge_model: str | None
    observer_class: str | None
    observer_confidence: float | None
    observer_model: str | None

    @property
    def cursor(self) -> ReviewCursor:
        return ReviewCursor(self.skipped, self.priority, self.item_id)


@dataclass(frozen=True)
class QueueCounts:
    """How many open items match a filter (its kind aside), per kind, not skipped; and how
    many of them are skipped (all kinds together)."""

    by_kind: dict[ReviewKind, int]
    skipped: int

    @property
    def waiting(self) -> int:
        return sum(self.by_kind.values())


def review_page(db: Database, review_filter: ReviewFilter = ReviewFilter(),
                after: ReviewCursor | None = None,
                limit: int = PAGE_SIZE) -> tuple[list[ReviewRow], ReviewCursor | None]:
    """A page of open review items in queue order, and the cursor of the next page (None
    when no item is left, so a caller never asks for an empty page)."""
    if limit < 1:
        raise InvalidInput(f"a page holds at least one item, not {limit}")
    with db.read() as session:
        names = _Names.load(session)
        found: list[tuple] = []  # type: ignore[type-arg]
        # The waiting items, then the skipped ones; a cursor among the skipped skips phase 1.
        for skipped in (False, True):
            if after is not None and after.skipped and not skipped:
                continue
            query = _open_items(review_filter, names, skipped)
            if query is None:
                return [], None
            start = after if after is not None and after.skipped == skipped else None
            if start is not None and start.priority is not None:
                # Written out, not as a row value, so that SQLite ranges over the index.
                query = query.where(ReviewItem.priority <= start.priority, or_(
                    ReviewItem.priority < start.priority,
                    and_(ReviewItem.priority == start.priority, ReviewItem.id > start.item_id)))
            wanted = limit + 1 - len(found)  # one more than shown says whether more exist
            found.extend((skipped, *row) for row in session.execute(query.limit(wanted)).all())
            if len(found) > limit:
                break
    more = len(found) > limit
    rows = [names.row(values) for values in found[:limit]]
    return rows, (rows[-1].cursor if more and rows else None)


def queue_counts(db: Database, review_filter: ReviewFilter = ReviewFilter()) -> QueueCounts:
    """The open items matching ``review_filter`` but for its kind, counted per kind."""
    unkinded = ReviewFilter(review_filter.device_uid, None, review_filter.capture_reason,
                            review_filter.class_name)
    with db.read() as session:
        names = _Names.load(session)
        matching = _matching(unkinded, names)
        if matching is None:
            return QueueCounts({kind: 0 for kind in ReviewKind}, 0)
        # By the status column itself, not an expression of it: PostgreSQL would see the
        # expression's two bound parameters as two different expressions.
        counts = session.execute(
            matching.with_only_columns(ReviewItem.kind, Capture.review_status, func.count())
            .group_by(ReviewItem.kind, Capture.review_status)).all()
    by_kind = {kind: 0 for kind in ReviewKind}
    skipped_count = 0
    for kind, status, count in counts:
        if status is ReviewStatus.SKIPPED:
            skipped_count += count
        else:
            by_kind[kind] += count
    return QueueCounts(by_kind, skipped_count)


def decide_item(db: Database, audit: AuditTrail, actor: Actor, capture_id: int,
                class_name: str, *, clock: Clock = utcnow) -> int:
    """A reviewer's answer: label the capture ``class_name`` (source HUMAN; earlier labels
    are superseded, not changed), close its review item, audited; returns the annotation id.
    Deciding again (going back to change an answer) records a new, superseding label."""
    return resolve_item(db, audit, actor, capture_id, class_name,
                        source=AnnotationSource.HUMAN, clock=clock)


def skip_item(db: Database, audit: AuditTrail, actor: Actor, capture_id: int) -> None:
    """Skip the capture's open review item: it stays open, at the end of the queue (see the
    module docstring); the capture's review status says ``skipped``; audited."""
    authorize(db, audit, actor, Permission.REVIEW, f"skip review of capture {capture_id}")
    with db.write() as session:
        capture = session.get(Capture, capture_id)
        if capture is None:
            raise InvalidInput(f"no capture {capture_id} in this project")
        item = session.scalar(select(ReviewItem).where(ReviewItem.capture_id == capture_id))
        if item is None or item.resolved_at is not None:
            raise InvalidInput(f"capture {capture_id} has no open review item (it was reviewed "
                               "already); reload the Review page to see the queue as it is")
        before = capture.review_status.value
        capture.review_status = ReviewStatus.SKIPPED
        audit.append(session, actor=actor.name, action="review.skip", object_type="capture",
                     object_id=str(capture_id), before={"review_status": before},
                     after={"review_status": ReviewStatus.SKIPPED.value,
                            "review_item": item.kind.value})


@dataclass(frozen=True)
class _Names:
    """Ids to names of the few devices, classes and model versions, read once per call:
    cheaper than joining them into every row."""

    devices: dict[int, str]
    classes: dict[int, str]
    versions: dict[int, str]

    @classmethod
    def load(cls, session: Session) -> _Names:
        return cls(dict(session.execute(select(Device.id, Device.uid)).all()),
                   dict(session.execute(select(LabelClass.id, LabelClass.name)).all()),
                   dict(session.execute(select(ModelVersion.id, ModelVersion.version)).all()))

    def device_id(self, uid: str) -> int | None:
        return next((i for i, name in self.devices.items() if name == uid), None)

    def class_id(self, name: str) -> int | None:
        return next((i for i, known in self.classes.items() if known == name), None)

    def row(self, values: tuple) -> ReviewRow:  # type: ignore[type-arg]
        (skipped, item_id, capture_id, kind, priority, observer_model_id, sha256, device_id,
         device_capture_id, captured_at, reason, edge_model, edge_class_id, edge_confidence,
         observer_class_id, observer_confidence) = values
        return ReviewRow(
            item_id=item_id, capture_id=capture_id, kind=kind, priority=priority,
            skipped=skipped, blob_sha256=sha256, device_uid=self.devices.get(device_id, "?"),
            device_capture_id=device_capture_id, captured_at=captured_at,
            capture_reason=reason, edge_class=self.classes.get(edge_class_id),
            edge_confidence=edge_confidence, edge_model=edge_model,
            observer_class=self.classes.get(observer_class_id),
            observer_confidence=observer_confidence,
            observer_model=self.versions.get(observer_model_id))


def _matching(f: ReviewFilter, names: _Names) -> Select | None:  # type: ignore[type-arg]
    """The open items matching ``f`` joined to their captures and observations; None when a
    named device or class is unknown (nothing can match)."""
    query = (select(ReviewItem.id)
             .join(Capture, Capture.id == ReviewItem.capture_id)
             .outerjoin(Observation, and_(Observation.capture_id == ReviewItem.capture_id,
                                          Observation.model_id == ReviewItem.observer_model_id))
             .where(ReviewItem.resolved_at.is_(None)))
    if f.device_uid is not None:
        device_id = names.device_id(f.device_uid)
        if device_id is None:
            return None
        query = query.where(Capture.device_id == device_id)
    if f.kind is not None:
        query = query.where(ReviewItem.kind == f.kind)
    if f.capture_reason is not None:
        query = query.where(Capture.reason == f.capture_reason)
    if f.class_name is not None:
        class_id = names.class_id(f.class_name)
        if class_id is None:
            return None
        query = query.where(or_(Capture.edge_class_id == class_id, _OBSERVER_CLASS == class_id))
    return query


def _open_items(f: ReviewFilter, names: _Names,
                skipped: bool) -> Select | None:  # type: ignore[type-arg]
    """The page query of the waiting (or the skipped) matching items, in queue order."""
    query = _matching(f, names)
    if query is None:
        return None
    status = (Capture.review_status == ReviewStatus.SKIPPED if skipped
              else Capture.review_status != ReviewStatus.SKIPPED)
    return (query.where(status)
            .add_columns(ReviewItem.capture_id, ReviewItem.kind, ReviewItem.priority,
                         ReviewItem.observer_model_id, Capture.blob_sha256, Capture.device_id,
                         Capture.device_capture_id, Capture.captured_at, Capture.reason,
                         Capture.model_version, Capture.edge_class_id, Capture.edge_confidence,
                         _OBSERVER_CLASS, _OBSERVER_CONFIDENCE)
            .order_by(ReviewItem.priority.desc(), ReviewItem.id))
