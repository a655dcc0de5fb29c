"""The review queue as the Review page reads it: keyset pages in queue order, filters,
skipped items at the end, counts, and the two writes (decide, skip); SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.annotate.review import (
    ReviewCursor, ReviewFilter, decide_item, queue_counts, review_page, skip_item,
)
from app.core.errors import InvalidInput, PermissionDenied
from app.core.models import (
    Annotation, AnnotationSource, AuditEvent, Capture, CaptureReason, Device, LabelClass,
    ReviewItem, ReviewKind, ReviewStatus, Role,
)
from app.core.project import Project
from app.core.roles import ROLE_PERMISSIONS, Permission
from app.core.users import actor_named, add_user
from tests.support.review_queue import LINE_1, LINE_2, expected_items, fill_queue


@pytest.fixture
def queued(project: Project) -> Project:
    fill_queue(project)
    return project


def _all_pages(project: Project, review_filter: ReviewFilter, limit: int) -> list[int]:
    """Every item id of a filter, read ``limit`` at a time as the page reads them."""
    ids: list[int] = []
    rows, cursor = review_page(project.db, review_filter, None, limit)
    ids += [r.item_id for r in rows]
    while cursor is not None:
        assert len(rows) == limit  # only a full page promises another
        rows, cursor = review_page(project.db, review_filter, cursor, limit)
        assert rows
        ids += [r.item_id for r in rows]
    return ids


def _ids(project: Project, model, name_column, name: str) -> int:  # type: ignore[no-untyped-def]
    with project.db.read() as session:
        return session.scalar(select(model.id).where(name_column == name))


def test_pages_follow_the_queue_order_with_everything_the_page_shows(queued: Project) -> None:
    everything = expected_items(queued)
    assert len(everything) == 20
    for limit in (1, 3, 7, 20, 50):
        assert _all_pages(queued, ReviewFilter(), limit) == everything
    rows, _ = review_page(queued.db, ReviewFilter(), None, 20)
    kinds = [r.kind for r in rows]
    order = list(ReviewKind)
    assert kinds == sorted(kinds, key=order.index)  # by kind first, as the priority says
    top = rows[0]
    with queued.db.read() as session:
        capture = session.get(Capture, top.capture_id)
        names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
        assert (top.blob_sha256, top.captured_at, top.capture_reason) == (
            capture.blob_sha256, capture.captured_at, capture.reason)
        assert (top.edge_class, top.edge_confidence, top.edge_model) == (
            names[capture.edge_class_id], capture.edge_confidence, "edge-3")
        assert (top.observer_class, top.observer_confidence, top.observer_model) == (
            names[capture.observer_class_id], capture.observer_confidence, "observer-1")
        assert top.device_uid == session.get(Device, capture.device_id).uid


def test_filters_by_device_kind_reason_and_either_models_class(queued: Project) -> None:
    line_2 = _ids(queued, Device, Device.uid, LINE_2)
    crack = _ids(queued, LabelClass, LabelClass.name, "crack")
    ok = _ids(queued, LabelClass, LabelClass.name, "ok")
    cases = [
        (ReviewFilter(device_uid=LINE_2), [Capture.device_id == line_2]),
        (ReviewFilter(kind=ReviewKind.FALSE_POSITIVE),
         [ReviewItem.kind == ReviewKind.FALSE_POSITIVE]),
        (ReviewFilter(capture_reason=CaptureReason.LOW_CONFIDENCE),
         [Capture.reason == CaptureReason.LOW_CONFIDENCE]),
        (ReviewFilter(class_name="crack"),
         [(Capture.edge_class_id == crack) | (Capture.observer_class_id == crack)]),
        (ReviewFilter(device_uid=LINE_1, kind=ReviewKind.LOW_CONFIDENCE, class_name="ok"),
         [Capture.device_id == _ids(queued, Device, Device.uid, LINE_1),
          ReviewItem.kind == ReviewKind.LOW_CONFIDENCE,
          (Capture.edge_class_id == ok) | (Capture.observer_class_id == ok)]),
    ]
    for review_filter, conditions in cases:
        expected = expected_items(queued, *conditions)
        assert expected, review_filter.describe()
        assert _all_pages(queued, review_filter, 2) == expected, review_filter.describe()
    assert review_page(queued.db, ReviewFilter(device_uid="no-such-cam")) == ([], None)
    assert review_page(queued.db, ReviewFilter(kind=ReviewKind.SPOT_CHECK)) == ([], None)
    with pytest.raises(InvalidInput, match="at least one"):
        review_page(queued.db, ReviewFilter(), None, 0)


def test_a_skipped_item_stays_open_at_the_end_and_a_decision_resolves_it(queued: Project) -> None:
    admin = actor_named(queued.db, "admin")
    annotator = add_user(queued.db, queued.audit, admin, "ann", Role.ANNOTATOR)
    rows, _ = review_page(queued.db, ReviewFilter(), None, 3)
    skip_item(queued.db, queued.audit, annotator, rows[0].capture_id)
    order = _all_pages(queued, ReviewFilter(), 4)
    assert order == [*expected_items(queued), rows[0].item_id]  # last, after every waiting one
    tail, cursor = review_page(queued.db, ReviewFilter(), ReviewCursor.skipped_start(), 5)
    assert [r.item_id for r in tail] == [rows[0].item_id] and tail[0].skipped
    assert cursor is None
    counts = queue_counts(queued.db)
    assert (counts.waiting, counts.skipped) == (19, 1)
    kind_counts = queue_counts(queued.db, ReviewFilter(kind=ReviewKind.FALSE_NEGATIVE))
    assert kind_counts == counts  # the counts are per kind: a kind filter does not narrow them
    decide_item(queued.db, queued.audit, annotator, rows[1].capture_id, "crack")
    with pytest.raises(InvalidInput, match="no open review item"):  # decided: nothing to skip
        skip_item(queued.db, queued.audit, annotator, rows[1].capture_id)
    annotation = decide_item(queued.db, queued.audit, annotator, rows[0].capture_id, "stain")
    with queued.db.read() as session:
        label = session.get(Annotation, annotation)
        assert (label.author_id, label.source) == (annotator.user_id, AnnotationSource.HUMAN)
        assert session.get(Capture, rows[0].capture_id).review_status is ReviewStatus.REVIEWED
        assert session.get(ReviewItem, rows[0].item_id).resolved_by_id == annotator.user_id
        assert session.scalar(select(func.count()).where(
            AuditEvent.action == "review.skip", AuditEvent.actor == "ann")) == 1
    assert (queue_counts(queued.db).waiting, queue_counts(queued.db).skipped) == (18, 0)
    assert _all_pages(queued, ReviewFilter(), 4) == expected_items(queued)


def test_skipping_needs_the_review_permission(queued: Project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    admin = actor_named(queued.db, "admin")
    annotator = add_user(queued.db, queued.audit, admin, "ann", Role.ANNOTATOR)
    monkeypatch.setitem(ROLE_PERMISSIONS, Role.ANNOTATOR, frozenset({Permission.VIEW}))
    rows, _ = review_page(queued.db, ReviewFilter(), None, 1)
    with pytest.raises(PermissionDenied, match="may not review"):
        skip_item(queued.db, queued.audit, annotator, rows[0].capture_id)
    with queued.db.read() as session:
        assert session.get(Capture, rows[0].capture_id).review_status is ReviewStatus.QUEUED
