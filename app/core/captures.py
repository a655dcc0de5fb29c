"""Reading and recording captures: the review queue, counts, and blob bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from app.core.models import Blob, Capture, CaptureCount, ReviewStatus

DEFAULT_PAGE = 100


@dataclass(frozen=True)
class QueueCursor:
    """Where the next page of the review queue starts (keyset paging: no OFFSET scans)."""

    confidence: float
    capture_id: int


def record_blob(session: Session, sha256: str, size: int, media_type: str) -> None:
    """Make sure the blob table has a row for a blob just written to the store."""
    if session.get(Blob, sha256) is None:
        session.add(Blob(sha256=sha256, size=size, media_type=media_type))
        session.flush()


def review_queue(
    session: Session,
    device_id: int,
    *,
    limit: int = DEFAULT_PAGE,
    after: QueueCursor | None = None,
) -> list[Capture]:
    """A page of one device's unreviewed captures, lowest edge confidence first.

    Served by the ``ix_captures_review_queue`` index; ``after`` continues from the last row of
    the previous page.
    """
    query = (
        select(Capture)
        .where(Capture.device_id == device_id, Capture.review_status == ReviewStatus.UNREVIEWED)
        .order_by(Capture.edge_confidence, Capture.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(
            tuple_(Capture.edge_confidence, Capture.id) > (after.confidence, after.capture_id)
        )
    return list(session.scalars(query))


def counts_by_device_and_class(session: Session) -> dict[tuple[int, int | None], int]:
    """How many captures each device has per edge-predicted class (None: no prediction).

    Read from ``capture_counts``, which triggers keep exact; see :func:`count_by_scanning`.
    """
    rows = session.execute(
        select(CaptureCount.device_id, CaptureCount.class_key, CaptureCount.count)
        .where(CaptureCount.count > 0)
    )
    return {(device_id, key or None): count for device_id, key, count in rows}


def count_by_scanning(session: Session) -> dict[tuple[int, int | None], int]:
    """The same counts computed from the captures themselves (the check, and the baseline)."""
    rows = session.execute(
        select(Capture.device_id, Capture.edge_class_id, func.count())
        .group_by(Capture.device_id, Capture.edge_class_id)
    )
    return {(device_id, class_id): count for device_id, class_id, count in rows}
