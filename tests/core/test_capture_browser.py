"""Browsing captures: every filter pages through exactly its captures, newest first, once each."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from app.core.capture_browser import (
    CaptureFilter, CaptureTotal, capture_page, count_captures, filter_choices,
)
from app.core.errors import InvalidInput
from app.core.models import (
    Annotation, AnnotationSource, Blob, Capture, CaptureReason, Device, LabelClass, ReviewStatus,
)
from app.core.project import Project

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
CLASSES = ("ok", "scratch", "crack")


def _fill(project: Project, n: int = 240, seed: int = 5) -> None:
    """Captures over three devices; many share a timestamp, so ties must break by id."""
    rng = random.Random(seed)
    with project.db.write() as s:
        s.execute(insert(Device), [{"uid": f"cam-{i}"} for i in range(3)])
        s.execute(insert(LabelClass), [{"name": c, "position": i} for i, c in enumerate(CLASSES)])
        s.execute(insert(Blob), [{"sha256": "a" * 64, "size": 1}])
        s.execute(insert(Capture), [{
            "device_id": rng.randrange(3) + 1, "device_capture_id": f"c{i}",
            "blob_sha256": "a" * 64,
            "captured_at": T0 + timedelta(minutes=rng.randrange(60)),  # ~4 captures a minute
            "reason": rng.choice(list(CaptureReason)),
            "edge_class_id": rng.choice([None, 1, 2, 3]),
            "edge_confidence": rng.choice([None, round(rng.random(), 2)]),
            "review_status": rng.choice(list(ReviewStatus)),
        } for i in range(n)])
        # Capture 1 was labeled twice: only the newer label counts.
        s.execute(insert(Annotation), [
            {"capture_id": 1, "class_id": 2, "author_id": 1, "source": AnnotationSource.HUMAN,
             "superseded": True},
            {"capture_id": 1, "class_id": 3, "author_id": 1, "source": AnnotationSource.HUMAN},
            {"capture_id": 2, "class_id": 1, "author_id": 1, "source": AnnotationSource.HUMAN},
        ])


def _expected(project: Project, f: CaptureFilter) -> list[int]:
    """The matching ids, newest first, worked out in Python from every row."""
    with project.db.read() as s:
        devices = dict(s.execute(select(Device.uid, Device.id)).all())
        classes = dict(s.execute(select(LabelClass.name, LabelClass.id)).all())
        rows = s.scalars(select(Capture)).all()

    def keep(c: Capture) -> bool:
        conf = c.edge_confidence
        return ((f.device_uid is None or c.device_id == devices.get(f.device_uid))
                and (f.edge_class is None or c.edge_class_id == classes.get(f.edge_class))
                and (f.captured_from is None or c.captured_at >= f.captured_from)
                and (f.captured_to is None or c.captured_at < f.captured_to)
                and (f.reason is None or c.reason is f.reason)
                and (f.min_confidence is None or (conf is not None and conf >= f.min_confidence))
                and (f.max_confidence is None or (conf is not None and conf <= f.max_confidence))
                and (f.review_status is None or c.review_status is f.review_status))

    kept = sorted((c for c in rows if keep(c)), key=lambda c: (c.captured_at, c.id), reverse=True)
    return [c.id for c in kept]


FILTERS = [
    CaptureFilter(),
    CaptureFilter(device_uid="cam-1"),
    CaptureFilter(edge_class="scratch"),
    CaptureFilter(device_uid="cam-2", edge_class="crack"),
    CaptureFilter(review_status=ReviewStatus.UNREVIEWED),
    CaptureFilter(review_status=ReviewStatus.REVIEWED, device_uid="cam-0"),
    CaptureFilter(reason=CaptureReason.LOW_CONFIDENCE),
    CaptureFilter(min_confidence=0.25, max_confidence=0.75),
    CaptureFilter(captured_from=T0 + timedelta(minutes=10), captured_to=T0 + timedelta(minutes=40)),
    CaptureFilter(device_uid="cam-0", edge_class="ok", review_status=ReviewStatus.QUEUED,
                  min_confidence=0.1),
    CaptureFilter(device_uid="no-such-camera"),
]


@pytest.mark.parametrize("capture_filter", FILTERS, ids=lambda f: f.describe())
def test_pages_yield_every_matching_capture_once_newest_first(
        project: Project, capture_filter: CaptureFilter) -> None:
    _fill(project)
    expected = _expected(project, capture_filter)
    seen: list[int] = []
    pages = 0
    with project.db.read() as s:
        rows, cursor = capture_page(s, capture_filter, None, limit=7)
        seen += [r.id for r in rows]
        while cursor is not None:
            pages += 1
            assert pages < 100, "paging does not end"
            rows, cursor = capture_page(s, capture_filter, cursor, limit=7)
            assert rows, "a cursor was handed out for an empty page"
            seen += [r.id for r in rows]
        total = count_captures(s, capture_filter)
    assert seen == expected
    assert total == CaptureTotal(len(expected), exact=True)
    if capture_filter == CaptureFilter():
        assert len(seen) == 240 and pages == 240 // 7


def test_a_row_carries_names_and_the_current_label(project: Project) -> None:
    _fill(project)
    with project.db.read() as s:
        rows, _ = capture_page(s, CaptureFilter(), None, limit=500)
        choices = filter_choices(s)
        truth = {c.id: c for c in s.scalars(select(Capture))}
    by_id = {r.id: r for r in rows}
    assert by_id[1].label == "crack"  # the superseded "scratch" is not shown
    assert by_id[2].label == "ok"
    assert by_id[3].label is None
    for row in rows:
        capture = truth[row.id]
        assert row.device_uid == f"cam-{capture.device_id - 1}"
        assert row.edge_class == (None if capture.edge_class_id is None
                                  else CLASSES[capture.edge_class_id - 1])
        assert (row.reason, row.review_status) == (capture.reason, capture.review_status)
        assert row.captured_at.tzinfo is not None
    assert choices.devices == ("cam-0", "cam-1", "cam-2")
    assert choices.classes == CLASSES


def test_a_count_past_the_cap_says_so(project: Project) -> None:
    _fill(project)
    unreviewed = CaptureFilter(review_status=ReviewStatus.UNREVIEWED)
    with project.db.read() as s:
        exact = count_captures(s, unreviewed)
        capped = count_captures(s, unreviewed, cap=10)
        everything = count_captures(s, CaptureFilter(), cap=10)  # from capture_counts: exact
    assert exact.exact and exact.count > 10
    assert capped == CaptureTotal(10, exact=False) and str(capped) == "10+"
    assert everything == CaptureTotal(240, exact=True) and str(everything) == "240"


def test_a_filter_that_cannot_match_is_refused_with_a_reason() -> None:
    with pytest.raises(InvalidInput, match="no time zone"):
        CaptureFilter(captured_from=datetime(2026, 1, 1))
    with pytest.raises(InvalidInput, match="time range is empty"):
        CaptureFilter(captured_from=T0, captured_to=T0)
    with pytest.raises(InvalidInput, match="confidence range is empty"):
        CaptureFilter(min_confidence=0.8, max_confidence=0.2)
    with pytest.raises(InvalidInput, match="from 0 to 1"):
        CaptureFilter(max_confidence=1.5)
