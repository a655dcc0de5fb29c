"""The review queue: captures the observer and the edge model disagree on, for people to label.

:func:`mine_disagreements` turns observations into :class:`~app.core.models.ReviewItem` rows.
The priority orders the queue, highest first, and says what a mistake costs: a defect the edge
model let through (a false negative) comes before a good part it rejected (a false
positive), which comes before two different defect classes; within a kind, the surer the
observer and the less sure the edge model, the higher. Captures both models agree on go in
only when one of them is unsure (below ``low_confidence``), after every disagreement. Last
come spot checks: a share (``spot_check_share``) of the captures devices kept at random,
since a drift can make both models sure and wrong, which no disagreement reveals.

:func:`resolve_item` is what a reviewer's answer does: a new annotation superseding the
reviewer's own earlier one (:func:`app.core.annotations.record_label`, the labeling pane's
write too), the item resolved, the capture reviewed, audited.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update

from app.core.annotations import LabelDraft, record_label
from app.core.audit import AuditTrail
from app.core.class_names import prediction_class_ids
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models import (
    AnnotationSource, Capture, CaptureReason, Observation, ReviewItem,
    ReviewKind, ReviewStatus, utcnow,
)
from app.core.roles import Actor, Permission, authorize

Clock = Callable[[], datetime]

NORMAL_CLASS = "ok"
"""The class of a part without a defect; what tells a false negative from a false positive."""
DEFAULT_LOW_CONFIDENCE = 0.6
DEFAULT_SPOT_CHECK_SHARE = 0.1
BASE_PRIORITY = {
    ReviewKind.FALSE_NEGATIVE: 4.0,
    ReviewKind.FALSE_POSITIVE: 3.0,
    ReviewKind.DISAGREEMENT: 2.0,
    ReviewKind.LOW_CONFIDENCE: 1.0,
    ReviewKind.SPOT_CHECK: 0.0,
}


@dataclass(frozen=True)
class Judgement:
    """Why one capture needs a person, and how urgently; None from :func:`judge` if not."""

    kind: ReviewKind
    priority: float


def judge(edge: int | None, edge_conf: float | None, observer: int | None,
          observer_conf: float, normal: int | None,
          low_confidence: float = DEFAULT_LOW_CONFIDENCE, *,
          spot_check: bool = False) -> Judgement | None:
    """The review kind and priority of one capture (see the module docstring);
    ``spot_check``: the capture was drawn for a spot check."""
    if edge is None or edge_conf is None:
        return None
    if observer is not None and observer != edge:
        if edge == normal:
            kind = ReviewKind.FALSE_NEGATIVE
        elif observer == normal:
            kind = ReviewKind.FALSE_POSITIVE
        else:
            kind = ReviewKind.DISAGREEMENT
        return Judgement(kind, BASE_PRIORITY[kind] + observer_conf * (1.0 - edge_conf))
    unsure = min(edge_conf, observer_conf)
    if unsure < low_confidence:
        return Judgement(ReviewKind.LOW_CONFIDENCE, BASE_PRIORITY[ReviewKind.LOW_CONFIDENCE]
                         + 1.0 - unsure)
    if spot_check:
        return Judgement(ReviewKind.SPOT_CHECK, BASE_PRIORITY[ReviewKind.SPOT_CHECK])
    return None


def drawn_for_spot_check(capture_id: int, reason: CaptureReason, share: float) -> bool:
    """Whether a capture is one of the spot-check share: random-sample captures only, picked
    by a hash of the id, so the same capture is picked however often mining runs."""
    if reason is not CaptureReason.RANDOM_SAMPLE or share <= 0:
        return False
    return (capture_id * 2654435761) % 10_000 < share * 10_000


@dataclass(frozen=True)
class MiningOutcome:
    """How many captures went into the queue, by kind, and how many were looked at."""

    examined: int
    queued: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.queued.values())


def mine_disagreements(db: Database, audit: AuditTrail, actor: Actor, observer_model_id: int, *,
                       low_confidence: float = DEFAULT_LOW_CONFIDENCE,
                       spot_check_share: float = DEFAULT_SPOT_CHECK_SHARE,
                       normal_class: str = NORMAL_CLASS, clock: Clock = utcnow) -> MiningOutcome:
    """Queue every unreviewed, not yet queued capture this observer saw that needs a person."""
    authorize(db, audit, actor, Permission.PULL, "fill the review queue")
    if not 0.0 <= low_confidence <= 1.0:
        raise InvalidInput(f"low confidence must be from 0 to 1, not {low_confidence}")
    if not 0.0 <= spot_check_share <= 1.0:
        raise InvalidInput(f"the spot-check share must be from 0 to 1, not {spot_check_share}")
    now = clock()
    with db.write() as session:
        normal = prediction_class_ids(session, [normal_class]).get(normal_class)
        rows = session.execute(
            select(Capture.id, Capture.reason, Capture.edge_class_id, Capture.edge_confidence,
                   Observation.class_id, Observation.confidence)
            .join(Observation, Observation.capture_id == Capture.id)
            .outerjoin(ReviewItem, ReviewItem.capture_id == Capture.id)
            .where(Observation.model_id == observer_model_id, ReviewItem.id.is_(None),
                   Capture.review_status == ReviewStatus.UNREVIEWED)).all()
        items = []
        for capture_id, reason, edge, edge_conf, observed, observed_conf in rows:
            verdict = judge(edge, edge_conf, observed, observed_conf, normal, low_confidence,
                            spot_check=drawn_for_spot_check(capture_id, reason,
                                                            spot_check_share))
            if verdict is not None:
                items.append({"capture_id": capture_id, "kind": verdict.kind,
                              "priority": round(verdict.priority, 6),
                              "observer_model_id": observer_model_id, "created_at": now,
                              "detail": {"edge_class_id": edge, "edge_confidence": edge_conf,
                                         "observer_class_id": observed,
                                         "observer_confidence": observed_conf}})
        if items:
            session.execute(insert(ReviewItem), items)
            session.execute(update(Capture).where(
                Capture.id.in_([i["capture_id"] for i in items]))
                .values(review_status=ReviewStatus.QUEUED))
        queued = Counter(item["kind"].value for item in items)
        audit.append(session, actor=actor.name, action="review.mine", object_type="model_version",
                     object_id=str(observer_model_id),
                     after={"examined": len(rows), "queued": dict(queued)})
    return MiningOutcome(len(rows), dict(queued))


@dataclass(frozen=True)
class QueueEntry:
    """One open review item as a reviewer sees it."""

    item_id: int
    capture_id: int
    kind: ReviewKind
    priority: float


def open_items(db: Database, limit: int = 100) -> list[QueueEntry]:
    """The open review items, highest priority first."""
    with db.read() as session:
        return [QueueEntry(*row) for row in session.execute(
            select(ReviewItem.id, ReviewItem.capture_id, ReviewItem.kind, ReviewItem.priority)
            .where(ReviewItem.resolved_at.is_(None))
            .order_by(ReviewItem.priority.desc(), ReviewItem.id).limit(limit)).all()]


def open_count(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count(ReviewItem.id))
                              .where(ReviewItem.resolved_at.is_(None))) or 0


def resolve_item(db: Database, audit: AuditTrail, actor: Actor, capture_id: int,
                 class_name: str, *, source: AnnotationSource = AnnotationSource.HUMAN,
                 clock: Clock = utcnow) -> int:
    """Label ``capture_id`` as ``class_name`` and close its review item; return the
    annotation id.

    The same write as the labeling pane's (:func:`app.core.annotations.record_label`): the
    reviewer's own earlier label of the capture is superseded, not changed, and another
    person's stays (a different one shows as a conflict). Needs REVIEW, where labeling
    needs ANNOTATE.
    """
    authorize(db, audit, actor, Permission.REVIEW, f"review capture {capture_id}")
    with db.write() as session:
        return record_label(session, audit, actor, capture_id, LabelDraft(class_name),
                            source=source, now=clock())
