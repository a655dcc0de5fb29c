"""Saving labels: one current label per person, validation, audit, the queue of captures to
label, pre-labels, and the review queue's path through the same write."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from app.annotate.labeling import (
    BoxDraft, LabelDraft, class_names, label_of, labeling_queue, prelabel, save_label,
    withdraw_label,
)
from app.core.capture_browser import CaptureFilter
from app.core.db import Database
from app.core.errors import InvalidInput, PermissionDenied
from app.core.models import (
    Annotation, AnnotationBox, AnnotationSource, Capture, LabelClass, ReviewItem, ReviewKind,
    ReviewStatus, Role,
)
from app.core.project import Project
from app.core.review_queue import resolve_item
from app.core.roles import ROLE_PERMISSIONS, Permission
from tests.annotate.labels_env import SIZE, LabelsEnv, make_env


@pytest.fixture
def env(project: Project) -> Iterator[LabelsEnv]:
    yield make_env(project)


def _annotations(env: LabelsEnv, capture_id: int) -> list[tuple[int, int, bool, str | None]]:
    """(id, author id, superseded, class name) of every annotation of the capture."""
    with env.project.db.read() as s:
        return [tuple(row) for row in s.execute(
            select(Annotation.id, Annotation.author_id, Annotation.superseded, LabelClass.name)
            .outerjoin(LabelClass, LabelClass.id == Annotation.class_id)
            .where(Annotation.capture_id == capture_id).order_by(Annotation.id))]


def test_withdrawing_takes_back_only_the_authors_own_label(env: LabelsEnv) -> None:
    p, capture, alone = env.project, env.unlabelled[0], env.unlabelled[1]
    mine = save_label(p.db, p.audit, env.ann, capture, LabelDraft("scratch"), clock=p.clock)
    theirs = save_label(p.db, p.audit, env.bob, capture, LabelDraft("crack"), clock=p.clock)
    assert withdraw_label(p.db, p.audit, env.ann, capture) == [mine]
    assert _annotations(env, capture) == [(mine, env.ann.user_id, True, "scratch"),
                                          (theirs, env.bob.user_id, False, "crack")]
    assert withdraw_label(p.db, p.audit, env.ann, capture) == []  # nothing left to take back
    save_label(p.db, p.audit, env.ann, alone, LabelDraft("ok"), clock=p.clock)
    withdraw_label(p.db, p.audit, env.ann, alone)
    with p.db.read() as s:
        # Bob's label still stands on the first; nobody's on the second: back in the queue.
        assert s.get(Capture, capture).review_status is ReviewStatus.REVIEWED
        assert s.get(Capture, alone).review_status is ReviewStatus.UNREVIEWED
    assert label_of(p.db, alone) is None


def test_a_label_supersedes_only_its_authors_earlier_label(env: LabelsEnv) -> None:
    p, capture = env.project, env.unlabelled[0]
    scratch = LabelDraft("scratch", (BoxDraft("scratch", 3, 4, 20, 10),))
    first = save_label(p.db, p.audit, env.ann, capture, scratch, clock=p.clock)
    theirs = save_label(p.db, p.audit, env.bob, capture, LabelDraft("crack"), clock=p.clock)
    second = save_label(p.db, p.audit, env.ann, capture,
                        LabelDraft("crack", (BoxDraft("crack", 0, 0, SIZE, SIZE),)),
                        source=AnnotationSource.MODEL_ASSISTED, clock=p.clock)

    assert _annotations(env, capture) == [
        (first, env.ann.user_id, True, "scratch"),
        (theirs, env.bob.user_id, False, "crack"),
        (second, env.ann.user_id, False, "crack"),
    ]
    with p.db.read() as s:
        kept = s.get(Annotation, second)
        assert kept.source is AnnotationSource.MODEL_ASSISTED and not kept.resolves_conflict
        assert [(b.x, b.y, b.width, b.height) for b in kept.boxes] == [(0, 0, SIZE, SIZE)]
        assert s.get(Capture, capture).review_status is ReviewStatus.REVIEWED
    assert label_of(p.db, capture, "ann") == LabelDraft(
        "crack", (BoxDraft("crack", 0.0, 0.0, float(SIZE), float(SIZE)),))
    assert label_of(p.db, capture, "bob") == LabelDraft("crack")
    assert label_of(p.db, capture) == label_of(p.db, capture, "ann")  # the newest
    assert label_of(p.db, env.unlabelled[1]) is None
    assert label_of(p.db, capture, "eng") is None

    events = env.events("annotation.create")
    assert [(e.actor, e.object_id) for e in events] == [("ann", str(capture)),
                                                        ("bob", str(capture)),
                                                        ("ann", str(capture))]
    assert events[0].before == {"review_status": "unreviewed"}
    assert events[0].after == {"annotation": first, "class": "scratch", "boxes": 1,
                               "source": "human", "review_item": None, "superseded": []}
    assert events[2].after["superseded"] == [first]
    assert events[2].after["source"] == "model_assisted"


def test_a_saved_label_is_committed_when_save_returns(env: LabelsEnv) -> None:
    p, capture = env.project, env.unlabelled[0]
    annotation = save_label(p.db, p.audit, env.ann, capture, LabelDraft("stain"), clock=p.clock)
    # Another connection (another process would be the same) sees it at once.
    other = Database(p.db.url.render_as_string(hide_password=False))
    try:
        with other.read() as s:
            assert s.scalar(select(Annotation.class_id).where(Annotation.id == annotation)) \
                == env.class_id("stain")
    finally:
        other.dispose()


@pytest.mark.parametrize("draft, image_size, message", [
    (LabelDraft("dent"), None, r"'dent' is not a class of this project's label schema; its "
                               r"classes are: ok, scratch, crack, missing_hole, stain"),
    (LabelDraft("ok", (BoxDraft("dent", 1, 1, 2, 2),)), None, "'dent' is not a class"),
    (LabelDraft(None), None, "is empty: give a class or at least one box"),
    (LabelDraft("crack", (BoxDraft("crack", -1, 0, 5, 5),)), None,
     r"box 1 \(crack at -1,0 5x5\): starts left of or above the image"),
    (LabelDraft("crack", (BoxDraft("crack", 1, 1, 5, 5), BoxDraft("crack", 2, 2, 0, 5))), None,
     r"box 2 .*: width and height must be above 0"),
    (LabelDraft("crack", (BoxDraft("crack", 1, 1, float("nan"), 5),)), None, "finite numbers"),
    (LabelDraft("crack", (BoxDraft("crack", 60, 1, 5, 5),)), (SIZE, SIZE),
     r"reaches past the 64x64 image"),
])
def test_bad_labels_are_refused_naming_what_is_wrong(
        env: LabelsEnv, draft: LabelDraft, image_size: tuple[int, int] | None,
        message: str) -> None:
    p, capture = env.project, env.unlabelled[0]
    with pytest.raises(InvalidInput, match=message):
        save_label(p.db, p.audit, env.ann, capture, draft, image_size=image_size, clock=p.clock)
    assert _annotations(env, capture) == []
    assert env.events("annotation.create") == []


def test_unknown_captures_and_retired_classes_are_refused(env: LabelsEnv) -> None:
    p = env.project
    with pytest.raises(InvalidInput, match="no capture 999999"):
        save_label(p.db, p.audit, env.ann, 999999, LabelDraft("ok"), clock=p.clock)
    with p.db.write() as s:
        s.execute(update(LabelClass).where(LabelClass.name == "stain").values(retired=True))
    with pytest.raises(InvalidInput, match="'stain' is not a class"):
        save_label(p.db, p.audit, env.ann, env.unlabelled[0], LabelDraft("stain"), clock=p.clock)
    assert class_names(p.db) == ["ok", "scratch", "crack", "missing_hole"]


def test_labeling_needs_the_annotate_permission(env: LabelsEnv,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Every role may label today; a role without ANNOTATE (a site that takes it away from
    # annotators, say) is refused by the service, not only by a disabled control.
    assert all(Permission.ANNOTATE in ROLE_PERMISSIONS[role] for role in Role)
    monkeypatch.setitem(ROLE_PERMISSIONS, Role.ANNOTATOR,
                        ROLE_PERMISSIONS[Role.ANNOTATOR] - {Permission.ANNOTATE})
    p, capture = env.project, env.unlabelled[0]
    with pytest.raises(PermissionDenied, match="ann is an annotator and may not annotate"):
        save_label(p.db, p.audit, env.ann, capture, LabelDraft("ok"), clock=p.clock)
    assert _annotations(env, capture) == []
    [denied] = env.events("permission_denied")
    assert (denied.actor, denied.object_id) == ("ann", "annotate")
    assert denied.after["target"] == f"label capture {capture}"


def test_the_queue_walks_unlabelled_captures_newest_first_in_pages(env: LabelsEnv) -> None:
    p = env.project
    with p.db.read() as s:
        expected = list(s.scalars(select(Capture.id).where(Capture.id.in_(env.unlabelled))
                                  .order_by(Capture.captured_at.desc(), Capture.id.desc())))
    seen, cursor, pages = [], None, 0
    while True:
        rows, cursor = labeling_queue(p.db, None, cursor, limit=3)
        seen += rows
        pages += 1
        if cursor is None:
            break
    assert [r.id for r in seen] == expected and pages == 2
    first = seen[0]
    with p.db.read() as s:
        capture = s.get(Capture, first.id)
        assert (first.blob_sha256, first.device_uid) == (capture.blob_sha256, "generator")
    assert first.label is None and first.review_status is ReviewStatus.UNREVIEWED

    save_label(p.db, p.audit, env.ann, first.id, LabelDraft("ok"), clock=p.clock)
    rows, _ = labeling_queue(p.db, CaptureFilter(device_uid="generator"))
    assert [r.id for r in rows] == expected[1:]
    reviewed, _ = labeling_queue(p.db, CaptureFilter(review_status=ReviewStatus.REVIEWED),
                                 limit=100)
    assert first.id in {r.id for r in reviewed} and len(reviewed) == len(env.labelled) + 1
    assert labeling_queue(p.db, CaptureFilter(device_uid="nope")) == ([], None)


def test_prelabels_come_from_the_observer_then_the_edge_model(env: LabelsEnv) -> None:
    p, capture = env.project, env.unlabelled[0]
    assert prelabel(p.db, capture) is None
    with p.db.write() as s:
        s.execute(update(Capture).where(Capture.id == capture)
                  .values(edge_class_id=env.class_id("scratch"), edge_confidence=0.4))
    assert prelabel(p.db, capture) == (LabelDraft("scratch"), "edge model")
    with p.db.write() as s:
        s.execute(update(Capture).where(Capture.id == capture)
                  .values(observer_class_id=env.class_id("crack"), observer_confidence=0.9))
    draft, which = prelabel(p.db, capture)
    assert (draft, which) == (LabelDraft("crack"), "observer")

    # One key confirms it: a label whose source says a person confirmed a model's guess.
    annotation = save_label(p.db, p.audit, env.ann, capture, draft,
                            source=AnnotationSource.MODEL_ASSISTED, clock=p.clock)
    with p.db.read() as s:
        assert s.get(Annotation, annotation).source is AnnotationSource.MODEL_ASSISTED
    with pytest.raises(InvalidInput, match="no capture 999999"):
        prelabel(p.db, 999999)


def test_the_review_queue_shares_the_write_and_keeps_other_peoples_labels(
        env: LabelsEnv) -> None:
    p, capture = env.project, env.labelled[0]
    with p.db.write() as s:
        s.add(ReviewItem(capture_id=capture, kind=ReviewKind.FALSE_NEGATIVE, priority=4.5,
                         created_at=p.clock()))
        s.execute(update(Capture).where(Capture.id == capture)
                  .values(review_status=ReviewStatus.QUEUED))
    other = "crack" if env.truth[capture] != "crack" else "scratch"
    annotation = resolve_item(p.db, p.audit, env.ann, capture, other, clock=p.clock)

    # The import's label (the admin's) stays current beside the reviewer's.
    assert [(a[1], a[2], a[3]) for a in _annotations(env, capture)] == [
        (env.admin.user_id, False, env.truth[capture]), (env.ann.user_id, False, other)]
    with p.db.read() as s:
        item = s.scalar(select(ReviewItem).where(ReviewItem.capture_id == capture))
        assert item.resolved_by_id == env.ann.user_id and item.resolved_at is not None
        assert s.get(Capture, capture).review_status is ReviewStatus.REVIEWED
        assert s.scalar(select(func.count(AnnotationBox.id))
                        .where(AnnotationBox.annotation_id == annotation)) == 0
    [event] = env.events("annotation.create")
    assert event.before == {"review_status": "queued"}
    assert event.after["review_item"] == "false_negative" and event.after["class"] == other
