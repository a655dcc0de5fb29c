"""Recording a label: the one write path every annotation of a person goes through.

:func:`record_label` is what :func:`app.annotate.labeling.save_label` (the labeling pane),
:func:`app.core.review_queue.resolve_item` (the review queue) and
:func:`app.annotate.conflicts.resolve_conflict` (an engineer's final word) all do, inside
their own permission check: validate the draft, supersede the author's own earlier label
(never anyone else's: a second annotator's different label stays, and shows as a conflict),
add the new annotation and its boxes, mark the capture reviewed, close its open review item,
and write one audit event, all in the caller's transaction.

**Boxes** are in pixels of the capture image, ``x, y`` the top-left corner. The database does
not know an image's size (captures store none, and reading it would mean opening the blob
store inside the write transaction), so a box is checked for what can be checked without
the image: finite, ``x, y >= 0``, ``width, height > 0``. A caller that has the image (the
labeling pane drew it) passes ``image_size`` and the box must then lie inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from app.core.audit import AuditTrail
from app.core.class_names import active_class_ids, require_active_class
from app.core.errors import InvalidInput
from app.core.models import (
    Annotation, AnnotationBox, AnnotationSource, Capture, ReviewItem, ReviewStatus,
)
from app.core.roles import Actor

MAX_BOXES = 1000
_EDGE_SLACK = 1e-6  # a box drawn to the image's last pixel edge may land a rounding past it


@dataclass(frozen=True)
class BoxDraft:
    """A box as a person drew it, in pixels of the capture image (``x, y``: top-left)."""

    class_name: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class LabelDraft:
    """A label as a person gives it: the capture's class (None: boxes only) and boxes."""

    class_name: str | None
    boxes: tuple[BoxDraft, ...] = field(default=())

    def __post_init__(self) -> None:
        # A list is the natural thing to pass; keep the draft hashable and immutable.
        if not isinstance(self.boxes, tuple):
            object.__setattr__(self, "boxes", tuple(self.boxes))


def check_boxes(boxes: tuple[BoxDraft, ...], image_size: tuple[int, int] | None = None) -> None:
    """Raise :class:`InvalidInput` naming the first box that is not acceptable."""
    if len(boxes) > MAX_BOXES:
        raise InvalidInput(f"a label holds at most {MAX_BOXES} boxes, not {len(boxes)}")
    for n, box in enumerate(boxes, start=1):
        if not isinstance(box, BoxDraft):
            raise InvalidInput(f"box {n} is a BoxDraft, not {type(box).__name__}")
        values = (box.x, box.y, box.width, box.height)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in values):
            raise InvalidInput(f"box {n} ({box.class_name}): x, y, width and height must be "
                               f"finite numbers, not {values!r}")
        what = f"box {n} ({box.class_name} at {box.x:g},{box.y:g} {box.width:g}x{box.height:g})"
        if box.x < 0 or box.y < 0:
            raise InvalidInput(f"{what}: starts left of or above the image (x and y must be >= 0)")
        if box.width <= 0 or box.height <= 0:
            raise InvalidInput(f"{what}: width and height must be above 0")
        if image_size is not None:
            width, height = image_size
            if (box.x + box.width > width + _EDGE_SLACK
                    or box.y + box.height > height + _EDGE_SLACK):
                raise InvalidInput(f"{what}: reaches past the {width}x{height} image")


def record_label(session: Session, audit: AuditTrail, actor: Actor, capture_id: int,
                 draft: LabelDraft, *, source: AnnotationSource, now: datetime,
                 image_size: tuple[int, int] | None = None, supersede_all: bool = False,
                 resolves_conflict: bool = False, action: str = "annotation.create",
                 audit_before: dict[str, Any] | None = None) -> int:
    """Record ``actor``'s label of the capture in ``session`` (see the module docstring);
    return the new annotation's id.

    ``supersede_all``: supersede every current annotation of the capture, not only the
    actor's (a conflict resolution). The caller has authorized the actor.
    """
    if not isinstance(draft, LabelDraft):
        raise InvalidInput(f"a label is a LabelDraft, not {type(draft).__name__}")
    if draft.class_name is None and not draft.boxes:
        raise InvalidInput(f"the label of capture {capture_id} is empty: give a class or at "
                           "least one box")
    if not isinstance(source, AnnotationSource):
        raise InvalidInput(f"unknown label source {source!r}")
    check_boxes(draft.boxes, image_size)
    # Locks the capture's row on PostgreSQL (SQLite's write transaction already holds the
    # database), so two saves of one capture by one person cannot both stay current.
    capture = session.scalar(select(Capture).where(Capture.id == capture_id).with_for_update())
    if capture is None:
        raise InvalidInput(f"no capture {capture_id} in this project")
    classes = active_class_ids(session)
    class_id = (None if draft.class_name is None
                else require_active_class(session, draft.class_name, classes))
    box_ids = [require_active_class(session, box.class_name, classes) for box in draft.boxes]

    current = select(Annotation.id).where(Annotation.capture_id == capture_id,
                                          Annotation.superseded.is_(False))
    if not supersede_all:
        current = current.where(Annotation.author_id == actor.user_id)
    superseded = list(session.scalars(current.order_by(Annotation.id)))
    if superseded:
        session.execute(update(Annotation).where(Annotation.id.in_(superseded))
                        .values(superseded=True))
    annotation = Annotation(capture_id=capture_id, class_id=class_id, author_id=actor.user_id,
                            source=source, created_at=now, resolves_conflict=resolves_conflict)
    session.add(annotation)
    session.flush()
    if draft.boxes:
        session.execute(insert(AnnotationBox), [
            {"annotation_id": annotation.id, "class_id": box_class, "x": float(box.x),
             "y": float(box.y), "width": float(box.width), "height": float(box.height)}
            for box, box_class in zip(draft.boxes, box_ids)])
    before = capture.review_status.value
    capture.review_status = ReviewStatus.REVIEWED
    item = session.scalar(select(ReviewItem).where(ReviewItem.capture_id == capture_id))
    if item is not None and item.resolved_at is None:
        item.resolved_at, item.resolved_by_id = now, actor.user_id
    session.flush()
    audit.append(session, actor=actor.name, action=action, object_type="capture",
                 object_id=str(capture_id),
                 before={"review_status": before, **(audit_before or {})},
                 after={"annotation": annotation.id, "class": draft.class_name,
                        "boxes": len(draft.boxes), "source": source.value,
                        "review_item": item.kind.value if item is not None else None,
                        "superseded": superseded})
    return annotation.id


def retract_label(session: Session, audit: AuditTrail, actor: Actor,
                  capture_id: int) -> list[int]:
    """Take back ``actor``'s current label of the capture in ``session`` (an annotator who
    undid their edit back to nothing, or back to the model's unconfirmed pre-label); return
    the annotations superseded (none: there was nothing to take back, and nothing is written).

    Only the actor's own label is touched. With no current label left, the capture goes back
    to unreviewed, so the labeling queue offers it again; a review item the label closed
    stays closed (the answer was given, then withdrawn: the audit event says so).
    """
    capture = session.scalar(select(Capture).where(Capture.id == capture_id).with_for_update())
    if capture is None:
        raise InvalidInput(f"no capture {capture_id} in this project")
    own = list(session.scalars(select(Annotation.id).where(
        Annotation.capture_id == capture_id, Annotation.author_id == actor.user_id,
        Annotation.superseded.is_(False)).order_by(Annotation.id)))
    if not own:
        return []
    session.execute(update(Annotation).where(Annotation.id.in_(own)).values(superseded=True))
    before = capture.review_status.value
    others = session.scalar(select(Annotation.id).where(
        Annotation.capture_id == capture_id, Annotation.superseded.is_(False)).limit(1))
    if others is None and capture.review_status is ReviewStatus.REVIEWED:
        capture.review_status = ReviewStatus.UNREVIEWED
    session.flush()
    audit.append(session, actor=actor.name, action="annotation.retract", object_type="capture",
                 object_id=str(capture_id), before={"review_status": before, "annotations": own},
                 after={"review_status": capture.review_status.value})
    return own
