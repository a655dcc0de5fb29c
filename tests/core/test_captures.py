"""Capture queries: the review queue's order and paging, and counts kept by triggers."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from sqlalchemy import delete, insert, select, update

from app.core.captures import QueueCursor, count_by_scanning, counts_by_device_and_class, review_queue
from app.core.models import Blob, Capture, Device, LabelClass, ReviewStatus
from app.core.project import Project

T = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _fill(project: Project, n: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    with project.db.write() as s:
        s.execute(insert(Device), [{"uid": f"d{i}"} for i in range(3)])
        s.execute(insert(LabelClass), [{"name": f"c{i}", "position": i} for i in range(4)])
        s.execute(insert(Blob), [{"sha256": "f" * 64, "size": 1}])
        s.execute(insert(Capture), [
            {"device_id": rng.randrange(3) + 1, "device_capture_id": str(i),
             "blob_sha256": "f" * 64, "captured_at": T, "reason": "every_nth",
             "edge_class_id": rng.choice([None, 1, 2, 3, 4]),
             "edge_confidence": round(rng.random(), 2),
             "review_status": rng.choice(list(ReviewStatus))}
            for i in range(n)
        ])


def test_counts_stay_exact_through_insert_update_and_delete(project: Project) -> None:
    _fill(project, 400)
    with project.db.read() as s:
        assert counts_by_device_and_class(s) == count_by_scanning(s)
    with project.db.write() as s:
        s.execute(update(Capture).where(Capture.id % 3 == 0).values(edge_class_id=2))
        s.execute(update(Capture).where(Capture.id % 7 == 0).values(device_id=3, edge_class_id=None))
        s.execute(delete(Capture).where(Capture.id % 5 == 0))
    with project.db.read() as s:
        counts = counts_by_device_and_class(s)
        assert counts == count_by_scanning(s)
        assert sum(counts.values()) == 400 - 80


def test_review_queue_pages_lowest_confidence_first(project: Project) -> None:
    _fill(project, 300)
    with project.db.read() as s:
        expected = [c.id for c in s.scalars(
            select(Capture).where(Capture.device_id == 2,
                                  Capture.review_status == ReviewStatus.UNREVIEWED)
            .order_by(Capture.edge_confidence, Capture.id))]
        seen, cursor = [], None
        while True:
            page = review_queue(s, 2, limit=7, after=cursor)
            if not page:
                break
            assert all(c.review_status is ReviewStatus.UNREVIEWED and c.device_id == 2 for c in page)
            seen.extend(c.id for c in page)
            cursor = QueueCursor(page[-1].edge_confidence, page[-1].id)
    assert seen == expected and len(seen) > 14
