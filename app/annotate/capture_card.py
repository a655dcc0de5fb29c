"""What the labeling pane shows beside one capture's image, read in one go (no Qt).

A :class:`CaptureCard` holds the capture's metadata (device, time, why it was kept, what the
edge model and the observer predicted), the signed-in annotator's own current label if they
gave one, and the model-assisted pre-label (the observer's prediction, else the edge
model's). :func:`capture_cards` reads the cards of several captures at once: the pane asks
for the ones around the capture shown, on the database lane, so "Next" needs no query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotate.labeling import EDGE_MODEL, OBSERVER, BoxDraft, LabelDraft
from app.core.class_names import active_class_ids
from app.core.db import Database
from app.core.models import (
    Annotation, AnnotationBox, Capture, CaptureReason, Device, LabelClass, ReviewStatus, User,
)


@dataclass(frozen=True)
class CaptureCard:
    """One capture as the labeling pane shows it; ``own_label`` is the annotator's."""

    capture_id: int
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
    own_label: LabelDraft | None
    prelabel: LabelDraft | None
    prelabel_from: str | None  # "observer" or "edge model"


def capture_cards(db: Database, capture_ids: Sequence[int], author: str) -> dict[int, CaptureCard]:
    """The cards of ``capture_ids`` (a capture deleted meanwhile is left out), with
    ``author``'s own labels.

    One read transaction of four queries for the lot: the pane reads a batch ahead on
    every few "Next"s, and per-capture calls of :func:`~app.annotate.labeling.label_of` and
    :func:`~app.annotate.labeling.prelabel` cost ~3 ms a capture. The answers are the same as
    theirs (tests/annotate/test_capture_card.py holds them to it).
    """
    if not capture_ids:
        return {}
    wanted = list(capture_ids)
    with db.read() as session:
        names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
        active = {class_id: name for name, class_id in active_class_ids(session).items()}
        rows = session.execute(
            select(Capture.id, Device.uid, Capture.device_capture_id, Capture.captured_at,
                   Capture.reason, Capture.blob_sha256, Capture.model_version,
                   Capture.edge_class_id, Capture.edge_confidence, Capture.observer_class_id,
                   Capture.observer_confidence, Capture.review_status)
            .join(Device, Device.id == Capture.device_id)
            .where(Capture.id.in_(wanted))).all()
        own = _own_labels(session, wanted, author, names)
    cards = {}
    for (capture_id, device_uid, name, captured_at, reason, sha256, model, edge_id, edge_conf,
         observer_id, observer_conf, status) in rows:
        # The observer's prediction if its class is in the schema, else the edge model's.
        suggested = next(((LabelDraft(active[class_id]), which) for class_id, which in
                          ((observer_id, OBSERVER), (edge_id, EDGE_MODEL)) if class_id in active),
                         None)
        cards[capture_id] = CaptureCard(
            capture_id=capture_id, device_uid=device_uid, device_capture_id=name,
            captured_at=captured_at, reason=reason, blob_sha256=sha256, model_version=model,
            edge_class=names.get(edge_id), edge_confidence=edge_conf,
            observer_class=names.get(observer_id), observer_confidence=observer_conf,
            review_status=status, own_label=own.get(capture_id),
            prelabel=suggested[0] if suggested else None,
            prelabel_from=suggested[1] if suggested else None)
    return cards


def _own_labels(session: Session, capture_ids: list[int], author: str,
                names: dict[int, str]) -> dict[int, LabelDraft]:
    """``author``'s current label of each capture that has one (their newest if two are)."""
    user_id = session.scalar(select(User.id).where(User.name == author))
    if user_id is None:
        return {}
    newest: dict[int, tuple[int, int | None]] = {}  # capture -> (annotation, class)
    for annotation_id, capture_id, class_id in session.execute(
            select(Annotation.id, Annotation.capture_id, Annotation.class_id)
            .where(Annotation.capture_id.in_(capture_ids), Annotation.author_id == user_id,
                   Annotation.superseded.is_(False))
            .order_by(Annotation.created_at.desc(), Annotation.id.desc())):
        newest.setdefault(capture_id, (annotation_id, class_id))
    boxes: dict[int, list[BoxDraft]] = {}
    if newest:
        for annotation_id, class_id, x, y, w, h in session.execute(
                select(AnnotationBox.annotation_id, AnnotationBox.class_id, AnnotationBox.x,
                       AnnotationBox.y, AnnotationBox.width, AnnotationBox.height)
                .where(AnnotationBox.annotation_id.in_([a for a, _ in newest.values()]))
                .order_by(AnnotationBox.id)):
            boxes.setdefault(annotation_id, []).append(BoxDraft(names[class_id], x, y, w, h))
    return {capture_id: LabelDraft(None if class_id is None else names[class_id],
                                   tuple(boxes.get(annotation_id, ())))
            for capture_id, (annotation_id, class_id) in newest.items()}
