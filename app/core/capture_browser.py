"""Browsing captures: a filter, pages newest first, and a total that stays cheap at 1M rows.

This is what the Data page shows, and what a script can call the same way:

    with project.db.read() as session:
        rows, cursor = capture_page(session, CaptureFilter(device_uid="line-3-cam"))
        more, cursor = capture_page(session, CaptureFilter(device_uid="line-3-cam"), cursor)
        total = count_captures(session, CaptureFilter(device_uid="line-3-cam"))

Pages are keyset pages over ``(captured_at, id)`` descending: the next page starts after the
last row of the one before, so page 5,000 costs what page 1 costs (no OFFSET scan), and a
capture pulled while someone scrolls never shifts a row onto two pages.

The class filter is the *edge model's predicted class*: that is what an engineer slices the
fleet's captures by (what did line 3 call a scratch last night?), it is a column of the
capture (indexed, and counted exactly by ``capture_counts``), and it exists for every capture
a device sent, labeled or not. The human label is shown with each row but not filtered on;
the review status filter says whether a label exists ("labeled" is ``reviewed``).

The total is exact and instant when the filter is at most a device and a class (read from
``capture_counts``, which triggers keep exact); otherwise it counts at most
:data:`COUNT_CAP` + 1 matching rows and reports "10,000+" beyond that, so a count never
scans a million rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput
from app.core.models import (
    Annotation, Capture, CaptureCount, CaptureReason, Device, LabelClass, ReviewStatus,
)

PAGE_SIZE = 200
COUNT_CAP = 10_000


@dataclass(frozen=True)
class CaptureFilter:
    """Which captures to show. ``None`` everywhere means every capture.

    ``captured_from`` is inclusive and ``captured_to`` exclusive (aware datetimes);
    ``edge_class`` is a class name as the edge model predicted it; the confidence bounds are
    inclusive and apply to the edge model's confidence (a bound excludes captures without
    one); ``review_status`` "reviewed" means labeled by a person.
    """

    device_uid: str | None = None
    captured_from: datetime | None = None
    captured_to: datetime | None = None
    reason: CaptureReason | None = None
    edge_class: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    review_status: ReviewStatus | None = None

    def __post_init__(self) -> None:
        for name in ("captured_from", "captured_to"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InvalidInput(f"{name} {value!r} has no time zone; give an aware UTC time")
        if (self.captured_from is not None and self.captured_to is not None
                and self.captured_from >= self.captured_to):
            raise InvalidInput(f"the time range is empty: from {self.captured_from:%Y-%m-%d %H:%M}"
                               f" is not before to {self.captured_to:%Y-%m-%d %H:%M}")
        for name in ("min_confidence", "max_confidence"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise InvalidInput(f"{name} must be from 0 to 1, not {value!r}")
        if (self.min_confidence is not None and self.max_confidence is not None
                and self.min_confidence > self.max_confidence):
            raise InvalidInput(f"the confidence range is empty: {self.min_confidence} is above "
                               f"{self.max_confidence}")

    @property
    def only_device_and_class(self) -> bool:
        """True when the filter names nothing but a device and/or a class (exact counts)."""
        return self == CaptureFilter(device_uid=self.device_uid, edge_class=self.edge_class)

    def describe(self) -> str:
        """The filter in words, for a status line ("device line-3-cam, class scratch")."""
        parts = []
        if self.device_uid is not None:
            parts.append(f"device {self.device_uid}")
        if self.captured_from is not None:
            parts.append(f"from {self.captured_from:%Y-%m-%d %H:%M}")
        if self.captured_to is not None:
            parts.append(f"to {self.captured_to:%Y-%m-%d %H:%M}")
        if self.reason is not None:
            parts.append(f"reason {self.reason.value}")
        if self.edge_class is not None:
            parts.append(f"class {self.edge_class}")
        if self.min_confidence is not None or self.max_confidence is not None:
            low = 0.0 if self.min_confidence is None else self.min_confidence
            high = 1.0 if self.max_confidence is None else self.max_confidence
            parts.append(f"confidence {low:.2f}-{high:.2f}")
        if self.review_status is not None:
            parts.append(self.review_status.value)
        return ", ".join(parts) or "all captures"


@dataclass(frozen=True)
class PageCursor:
    """Where the next page starts: just after this capture, in newest-first order."""

    captured_at: datetime
    capture_id: int


@dataclass(frozen=True)
class CaptureRow:
    """One capture as the browser shows it, detached from the session.

    ``edge_class`` and ``observer_class`` are class names (None: no prediction); ``label`` is
    the class of the capture's current annotation (None: not labeled, or boxes only).
    """

    id: int
    device_uid: str
    device_capture_id: str
    captured_at: datetime
    reason: CaptureReason
    blob_sha256: str
    model_version: str | None
    edge_class: str | None
    edge_confidence: float | None
    observer_class: str | None
    observer_confidence: float | None
    review_status: ReviewStatus
    label: str | None

    @property
    def cursor(self) -> PageCursor:
        return PageCursor(self.captured_at, self.id)


@dataclass(frozen=True)
class CaptureTotal:
    """How many captures match: exact, or "at least ``count``" when the count was capped."""

    count: int
    exact: bool

    def __str__(self) -> str:
        return f"{self.count:,}" if self.exact else f"{self.count:,}+"


@dataclass(frozen=True)
class FilterChoices:
    """What the filter's drop-downs offer: device uids and class names, in display order."""

    devices: tuple[str, ...]
    classes: tuple[str, ...]


def filter_choices(session: Session) -> FilterChoices:
    """The devices and (unretired) classes a filter may name."""
    devices = tuple(session.scalars(select(Device.uid).order_by(Device.uid)))
    classes = tuple(session.scalars(
        select(LabelClass.name).where(LabelClass.retired.is_(False))
        .order_by(LabelClass.position, LabelClass.id)))
    return FilterChoices(devices, classes)


def capture_page(session: Session, capture_filter: CaptureFilter = CaptureFilter(),
                 after: PageCursor | None = None,
                 limit: int = PAGE_SIZE) -> tuple[list[CaptureRow], PageCursor | None]:
    """A page of matching captures, newest first, and the cursor of the next page.

    ``after`` is the cursor the previous call returned (None: the first page). The cursor
    returned is None when no capture is left, so a caller never asks for an empty page.
    """
    if limit < 1:
        raise InvalidInput(f"a page holds at least one capture, not {limit}")
    devices = dict(session.execute(select(Device.id, Device.uid)).all())
    classes = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    query = _matching(capture_filter, devices, classes)
    if query is None:
        return [], None
    if after is not None:
        # Written out rather than as a row-value comparison so that both SQLite and
        # PostgreSQL use the captured_at index for the range; the OR only breaks ties.
        query = query.where(Capture.captured_at <= after.captured_at, or_(
            Capture.captured_at < after.captured_at,
            and_(Capture.captured_at == after.captured_at, Capture.id < after.capture_id)))
    found = session.execute(
        query.add_columns(
            Capture.device_id, Capture.device_capture_id, Capture.captured_at, Capture.reason,
            Capture.blob_sha256, Capture.model_version, Capture.edge_class_id,
            Capture.edge_confidence, Capture.observer_class_id, Capture.observer_confidence,
            Capture.review_status)
        .order_by(Capture.captured_at.desc(), Capture.id.desc())
        .limit(limit + 1)  # one more than shown says whether another page exists
    ).all()
    more = len(found) > limit
    found = found[:limit]
    labels = _labels_of(session, [r[0] for r in found], classes)
    # Unpacked by position: reading a Row's fields by name costs more than the query.
    rows = [CaptureRow(
        id=capture_id, device_uid=devices.get(device_id, "?"), device_capture_id=name,
        captured_at=captured_at, reason=reason, blob_sha256=sha256, model_version=model,
        edge_class=classes.get(edge_class_id), edge_confidence=edge_confidence,
        observer_class=classes.get(observer_class_id),
        observer_confidence=observer_confidence, review_status=status,
        label=labels.get(capture_id))
        for (capture_id, device_id, name, captured_at, reason, sha256, model, edge_class_id,
             edge_confidence, observer_class_id, observer_confidence, status) in found]
    return rows, (rows[-1].cursor if more and rows else None)


def count_captures(session: Session, capture_filter: CaptureFilter = CaptureFilter(),
                   cap: int = COUNT_CAP) -> CaptureTotal:
    """How many captures match: exact from ``capture_counts`` for a device/class filter,
    otherwise counted up to ``cap`` (beyond it the total says "cap+")."""
    devices = dict(session.execute(select(Device.uid, Device.id)).all())
    classes = dict(session.execute(select(LabelClass.name, LabelClass.id)).all())
    if capture_filter.only_device_and_class:
        query = select(func.coalesce(func.sum(CaptureCount.count), 0))
        if capture_filter.device_uid is not None:
            if capture_filter.device_uid not in devices:
                return CaptureTotal(0, exact=True)
            query = query.where(CaptureCount.device_id == devices[capture_filter.device_uid])
        if capture_filter.edge_class is not None:
            if capture_filter.edge_class not in classes:
                return CaptureTotal(0, exact=True)
            query = query.where(CaptureCount.class_key == classes[capture_filter.edge_class])
        return CaptureTotal(int(session.scalar(query) or 0), exact=True)
    matching = _matching(capture_filter, {v: k for k, v in devices.items()},
                         {v: k for k, v in classes.items()})
    if matching is None:
        return CaptureTotal(0, exact=True)
    counted = session.scalar(select(func.count()).select_from(
        matching.limit(cap + 1).subquery()))
    return CaptureTotal(cap, exact=False) if counted > cap else CaptureTotal(counted, exact=True)


def _matching(f: CaptureFilter, devices: dict[int, str],
              classes: dict[int, str]) -> Select | None:  # type: ignore[type-arg]
    """``SELECT captures.id WHERE <filter>``; None when a named device or class is unknown
    (nothing can match, so the caller answers without asking the database)."""
    query = select(Capture.id)
    if f.device_uid is not None:
        device_id = next((i for i, uid in devices.items() if uid == f.device_uid), None)
        if device_id is None:
            return None
        query = query.where(Capture.device_id == device_id)
    if f.edge_class is not None:
        class_id = next((i for i, name in classes.items() if name == f.edge_class), None)
        if class_id is None:
            return None
        query = query.where(Capture.edge_class_id == class_id)
    if f.captured_from is not None:
        query = query.where(Capture.captured_at >= f.captured_from)
    if f.captured_to is not None:
        query = query.where(Capture.captured_at < f.captured_to)
    if f.reason is not None:
        query = query.where(Capture.reason == f.reason)
    if f.min_confidence is not None:
        query = query.where(Capture.edge_confidence >= f.min_confidence)
    if f.max_confidence is not None:
        query = query.where(Capture.edge_confidence <= f.max_confidence)
    if f.review_status is not None:
        query = query.where(Capture.review_status == f.review_status)
    return query


def _labels_of(session: Session, capture_ids: list[int],
               classes: dict[int, str]) -> dict[int, str]:
    """The class name of each capture's current (not superseded) annotation, if it has one."""
    if not capture_ids:
        return {}
    labels: dict[int, str] = {}
    rows = session.execute(
        select(Annotation.capture_id, Annotation.class_id)
        .where(Annotation.capture_id.in_(capture_ids), Annotation.superseded.is_(False),
               Annotation.class_id.is_not(None))
        .order_by(Annotation.id))  # the newest wins if two are current
    for capture_id, class_id in rows:
        labels[capture_id] = classes.get(class_id, "?")
    return labels
