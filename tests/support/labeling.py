"""Captures waiting to be labeled, for the labeling pane's tests, driver and screenshot.

Real images from the scene generator, stored as PNG blobs; two cameras; the edge model's
prediction on every capture but the ones ``unpredicted`` names, the observer's on every
third; all unreviewed, so the labeling queue holds every one (newest first).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta, timezone

import cv2
from sqlalchemy import insert, select

from app.core.models import Blob, Capture, CaptureReason, Device, LabelClass, ReviewStatus
from app.core.project import Project
from app.core.scene import CLASSES, SceneGenerator

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)


def fill_captures(project: Project, count: int, *, size: int = 160, seed: int = 3,
                  unpredicted: Collection[int] = (), image_side: int | None = None) -> list[int]:
    """Add ``count`` unreviewed captures; return their ids in the queue's order (newest
    first). Capture ``i`` was captured ``i`` minutes after 08:00. With ``image_side`` the
    scenes are scaled to that side (the generator's largest is 256 px; a camera's frame is
    bigger)."""
    samples = SceneGenerator(seed=seed, size=size, defect_rate=0.7).batch(0, count)
    images = [s.image if image_side is None else
              cv2.resize(s.image, (image_side, image_side), interpolation=cv2.INTER_LINEAR)
              for s in samples]
    shas = project.blobs.put_many([cv2.imencode(".png", image)[1].tobytes() for image in images])
    with project.db.write() as s:
        s.execute(insert(Blob), [{"sha256": sha, "size": 1, "media_type": "image/png"}
                                 for sha in dict.fromkeys(shas)])
        if s.scalar(select(Device.id).where(Device.uid == "line-1-cam")) is None:
            s.execute(insert(Device), [{"uid": "line-1-cam"}, {"uid": "line-2-cam"}])
        have = set(s.scalars(select(LabelClass.name)))
        missing = [{"name": c, "position": i} for i, c in enumerate(CLASSES) if c not in have]
        if missing:
            s.execute(insert(LabelClass), missing)
        classes = dict(s.execute(select(LabelClass.name, LabelClass.id)).all())
        devices = dict(s.execute(select(Device.uid, Device.id)).all())
        s.execute(insert(Capture), [{
            "device_id": devices["line-1-cam" if i % 2 == 0 else "line-2-cam"],
            "device_capture_id": f"cap-{i:04d}", "blob_sha256": shas[i],
            "captured_at": T0 + timedelta(minutes=i), "reason": CaptureReason.LOW_CONFIDENCE,
            "model_version": "edge-3",
            "edge_class_id": None if i in unpredicted else classes[samples[i].label],
            "edge_confidence": None if i in unpredicted else 0.41 + (i % 50) / 100,
            "observer_class_id": classes[samples[i].label] if i % 3 == 0 else None,
            "observer_confidence": 0.93 if i % 3 == 0 else None,
            "review_status": ReviewStatus.UNREVIEWED} for i in range(count)])
        ids = dict(s.execute(select(Capture.device_capture_id, Capture.id)).all())
    return [ids[f"cap-{i:04d}"] for i in reversed(range(count))]
