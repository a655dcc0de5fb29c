"""Labeling captures: save a person's label, read labels back, pre-labels, the class list and
the queue of captures still to label. Qt-free: the labeling pane and the CLI call these.

**One label per person.** An annotation is never edited. Saving a label supersedes the same
person's earlier label of that capture and nobody else's: when a second annotator labels a
capture differently, both labels stay current and the capture is *in conflict* until an
engineer resolves it (:mod:`app.annotate.conflicts`); freezing a dataset leaves it out
meanwhile. The write itself is :func:`app.core.annotations.record_label`, which the review
queue's :func:`app.core.review_queue.resolve_item` shares (with REVIEW instead of ANNOTATE).

**Durable.** :func:`save_label` commits before it returns (SQLite runs with
``synchronous=FULL``), so a label the pane shows as saved survives a crash.

**Boxes** are pixels of the capture image, ``x, y`` the top-left corner. They are checked to
be finite, to start inside the image (``x, y >= 0``) and to have a size; the image's own size
is not in the database, so a caller that knows it (the pane drew the image) passes
``image_size`` to have boxes checked against it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select

from app.core.annotations import BoxDraft, LabelDraft, check_boxes, record_label, retract_label
from app.core.audit import AuditTrail
from app.core.capture_browser import PAGE_SIZE, CaptureFilter, CaptureRow, PageCursor, capture_page
from app.core.class_names import active_class_ids
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models import (
    Annotation, AnnotationBox, AnnotationSource, Capture, LabelClass, ReviewStatus, User, utcnow,
)
from app.core.roles import Actor, Permission, authorize

__all__ = [
    "BoxDraft", "LabelDraft", "check_boxes", "class_names", "label_of", "labeling_queue",
    "prelabel", "save_label", "withdraw_label",
]

Clock = Callable[[], datetime]

OBSERVER = "observer"
EDGE_MODEL = "edge model"


def save_label(db: Database, audit: AuditTrail, actor: Actor, capture_id: int,
               draft: LabelDraft, *, source: AnnotationSource = AnnotationSource.HUMAN,
               clock: Clock = utcnow, image_size: tuple[int, int] | None = None) -> int:
    """Record the actor's label of the capture; return the new annotation's id.

    Supersedes the actor's own earlier label only; marks the capture reviewed and closes its
    open review item; writes an ``annotation.create`` audit event (capture, class, boxes,
    source). Needs ANNOTATE. Committed when it returns. Raises :class:`InvalidInput` naming
    what is wrong: an unknown capture, a class not in the active schema, a bad box.
    """
    authorize(db, audit, actor, Permission.ANNOTATE, f"label capture {capture_id}")
    with db.write() as session:
        return record_label(session, audit, actor, capture_id, draft, source=source,
                            now=clock(), image_size=image_size)


def withdraw_label(db: Database, audit: AuditTrail, actor: Actor, capture_id: int) -> list[int]:
    """Take back the actor's own current label of the capture (the labeling pane, when an
    undo leaves nothing, or the model's unconfirmed pre-label, where a saved label was);
    return the annotations withdrawn (empty: there was none). Needs ANNOTATE; committed when
    it returns; audited as ``annotation.retract``
    (:func:`app.core.annotations.retract_label`)."""
    authorize(db, audit, actor, Permission.ANNOTATE, f"withdraw the label of capture {capture_id}")
    with db.write() as session:
        return retract_label(session, audit, actor, capture_id)


def label_of(db: Database, capture_id: int, author: str | None = None) -> LabelDraft | None:
    """The current label of the capture: ``author``'s (a user name), or with no author the
    capture's effective label, its newest current annotation (in a conflict that is only
    one side: :func:`app.annotate.conflicts.find_conflicts` lists both). None: no label."""
    with db.read() as session:
        query = (select(Annotation.id, Annotation.class_id)
                 .where(Annotation.capture_id == capture_id, Annotation.superseded.is_(False)))
        if author is not None:
            user_id = session.scalar(select(User.id).where(User.name == author))
            if user_id is None:
                raise InvalidInput(f"no user {author!r} in this project")
            query = query.where(Annotation.author_id == user_id)
        found = session.execute(
            query.order_by(Annotation.created_at.desc(), Annotation.id.desc()).limit(1)).first()
        if found is None:
            return None
        annotation_id, class_id = found
        names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
        boxes = tuple(BoxDraft(names[c], x, y, w, h) for c, x, y, w, h in session.execute(
            select(AnnotationBox.class_id, AnnotationBox.x, AnnotationBox.y,
                   AnnotationBox.width, AnnotationBox.height)
            .where(AnnotationBox.annotation_id == annotation_id).order_by(AnnotationBox.id)))
    return LabelDraft(None if class_id is None else names[class_id], boxes)


def prelabel(db: Database, capture_id: int) -> tuple[LabelDraft, str] | None:
    """A model-assisted pre-label: the observer's predicted class if there is one, else the
    edge model's, and which of the two (:data:`OBSERVER` or :data:`EDGE_MODEL`).

    Predictions are classes, not boxes, so the draft has no boxes. A prediction of a class
    no longer in the schema is passed over. Confirming it is a :func:`save_label` with
    ``source=AnnotationSource.MODEL_ASSISTED``.
    """
    with db.read() as session:
        found = session.execute(select(Capture.observer_class_id, Capture.edge_class_id)
                                .where(Capture.id == capture_id)).first()
        if found is None:
            raise InvalidInput(f"no capture {capture_id} in this project")
        active = {class_id: name for name, class_id in active_class_ids(session).items()}
    for class_id, which in zip(found, (OBSERVER, EDGE_MODEL)):
        if class_id in active:
            return LabelDraft(active[class_id]), which
    return None


def class_names(db: Database) -> list[str]:
    """The active label schema: class names in their order (number keys follow it)."""
    with db.read() as session:
        return list(active_class_ids(session))


def labeling_queue(db: Database, capture_filter: CaptureFilter | None = None,
                   after: PageCursor | None = None,
                   limit: int = PAGE_SIZE) -> tuple[list[CaptureRow], PageCursor | None]:
    """A page of captures still to label, newest first, and the cursor of the next page.

    The Data page's keyset pages (:func:`app.core.capture_browser.capture_page`) restricted
    to unreviewed captures, unless ``capture_filter`` names a review status itself (to walk
    reviewed captures again, say). Each row carries what the pane shows: capture id, blob,
    device, time, the edge model's and the observer's predictions and the current label.
    Queued captures wait on the Review page, which walks them by priority instead.
    """
    wanted = capture_filter or CaptureFilter()
    if wanted.review_status is None:
        wanted = replace(wanted, review_status=ReviewStatus.UNREVIEWED)
    with db.read() as session:
        return capture_page(session, wanted, after, limit)
