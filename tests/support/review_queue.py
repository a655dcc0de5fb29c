"""A review queue mined for real, for the review tests (Qt-free, so domain tests use it too).

The captures are real (generated scenes, 64 px, imported with ``import_generated``); each is
given an edge prediction (as a device's sidecar would) and an observation by an observer
model version, and the real :func:`~app.core.review_queue.mine_disagreements` puts them in
the queue. The observer *model* is a registry row without weights: the observations are
written as ``observe_captures`` writes them, so no network has to be trained.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from app.core.dataset_import import import_generated
from app.core.models import (
    Annotation, Capture, CaptureReason, LabelClass, ModelKind, ModelVersion, Observation,
    ReviewItem, ReviewStatus,
)
from app.core.project import Project
from app.core.review_queue import mine_disagreements
from app.core.scene import CLASSES
from app.core.users import actor_named

# (edge class, edge confidence, observer class, observer confidence) by capture, cycled:
# a false negative, a false positive, a disagreement, and a low-confidence agreement.
PREDICTIONS = (("ok", 0.91, "scratch", 0.88), ("scratch", 0.82, "ok", 0.97),
               ("scratch", 0.64, "crack", 0.93), ("ok", 0.55, "ok", 0.52))
LINE_1, LINE_2 = "line-1-cam", "line-2-cam"


def fill_queue(project: Project, per_device: tuple[int, int] = (12, 8)) -> None:
    """Captures on two cameras with edge and observer predictions, mined into the queue."""
    db, audit = project.db, project.audit
    admin = actor_named(db, "admin")
    for uid, count, start in ((LINE_1, per_device[0], 0), (LINE_2, per_device[1], 1000)):
        import_generated(db, project.blobs, audit, admin, count, seed=4, size=64,
                         device_uid=uid, start_index=start)
    with db.write() as session:
        # As a device sends them: no label yet (the generator's come as imported labels).
        session.execute(delete(Annotation))
    assert mine_into_queue(project) == sum(per_device)


def mine_into_queue(project: Project) -> int:
    """Give every capture an edge prediction and an observation (cycling through
    :data:`PREDICTIONS`), mark it unreviewed and mine the disagreements into the queue; how
    many items were queued."""
    db, audit = project.db, project.audit
    admin = actor_named(db, "admin")
    with db.write() as session:
        ids = dict(session.execute(select(LabelClass.name, LabelClass.id)).all())
        observer = ModelVersion(version="observer-1", kind=ModelKind.OBSERVER,
                                labels=list(CLASSES))
        session.add(observer)
        session.flush()
        captures = session.scalars(select(Capture.id).order_by(Capture.id)).all()
        for n, capture_id in enumerate(captures):
            edge, edge_conf, seen, seen_conf = PREDICTIONS[n % len(PREDICTIONS)]
            # Confidences differ a little per capture, so every priority is distinct.
            edge_conf, seen_conf = edge_conf - n / 1000, seen_conf - n / 2000
            session.execute(update(Capture).where(Capture.id == capture_id).values(
                review_status=ReviewStatus.UNREVIEWED, model_version="edge-3",
                edge_class_id=ids[edge], edge_confidence=edge_conf,
                observer_class_id=ids[seen], observer_confidence=seen_conf,
                reason=CaptureReason.RANDOM_SAMPLE if n % 3 else CaptureReason.LOW_CONFIDENCE))
            session.add(Observation(capture_id=capture_id, model_id=observer.id,
                                    class_id=ids[seen], confidence=seen_conf))
        observer_id = observer.id
    return mine_disagreements(db, audit, admin, observer_id, spot_check_share=0.0).total


def expected_items(project: Project, *conditions, skipped: bool = False) -> list[int]:  # type: ignore[no-untyped-def]
    """The open items the database says a filter shows, in queue order (item ids); with
    ``skipped`` the skipped ones, which come last."""
    status = (Capture.review_status == ReviewStatus.SKIPPED if skipped
              else Capture.review_status != ReviewStatus.SKIPPED)
    with project.db.read() as session:
        return list(session.scalars(
            select(ReviewItem.id).join(Capture, Capture.id == ReviewItem.capture_id)
            .where(ReviewItem.resolved_at.is_(None), status, *conditions)
            .order_by(ReviewItem.priority.desc(), ReviewItem.id)))
