"""Conflicts between annotators: the agreement rule, what a freeze does with a conflict, an
engineer's resolution, and agreement per annotator computed by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from app.annotate.conflicts import (
    agreement_by_annotator, cohen_kappa, find_conflicts, resolve_conflict,
)
from app.annotate.labeling import BoxDraft, LabelDraft, label_of, save_label
from app.core.datasets import freeze_version
from app.core.errors import InvalidInput, PermissionDenied
from app.core.label_agreement import boxes_agree, iou
from app.core.models import Annotation, AnnotationSource, DatasetSample, LabelClass
from app.core.project import Project
from tests.annotate.labels_env import LabelsEnv, make_env


@pytest.fixture
def env(project: Project) -> Iterator[LabelsEnv]:
    yield make_env(project)


# --- the rule -------------------------------------------------------------------------------


def test_iou_of_boxes() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # touching edges share no area


def test_boxes_pair_one_to_one_by_class_at_half_overlap() -> None:
    a = [(1, 0, 0, 10, 10)]
    assert boxes_agree(a, [(1, 1, 0, 10, 10)])          # IoU 0.82
    assert not boxes_agree(a, [(1, 4, 0, 10, 10)])      # IoU 0.43
    assert not boxes_agree(a, [(2, 0, 0, 10, 10)])      # same place, other class
    assert not boxes_agree(a, a + [(1, 30, 30, 5, 5)])  # one box more
    assert boxes_agree([], [])
    # A greedy pairing (best overlap first) would pair left 0 with right 0 and leave left 1
    # with nothing; the one-to-one matching pairs 0-1 and 1-0.
    left = [(1, 0, 0, 10, 10), (1, 3, 0, 10, 10)]
    right = [(1, 1, 0, 10, 10), (1, -3, 0, 10, 10)]
    assert iou(left[0][1:], right[0][1:]) > iou(left[0][1:], right[1][1:]) >= 0.5
    assert iou(left[1][1:], right[1][1:]) < 0.5 <= iou(left[1][1:], right[0][1:])
    assert boxes_agree(left, right)


def test_cohen_kappa() -> None:
    assert cohen_kappa([("a", "a"), ("b", "b")]) == 1.0
    assert cohen_kappa([("a", "b"), ("b", "a")]) == -1.0
    assert cohen_kappa([("a", "a")]) is None  # chance agreement is certain
    assert cohen_kappa([]) is None


# --- conflicts in a project -----------------------------------------------------------------


def _freeze(env: LabelsEnv):  # type: ignore[no-untyped-def]
    p = env.project
    return freeze_version(p.db, p.audit, env.eng, clock=p.clock, allow_unchanged=True)


def _frozen(env: LabelsEnv, version_id: int) -> dict[int, str]:
    with env.project.db.read() as s:
        return dict(s.execute(select(DatasetSample.capture_id, LabelClass.name)
                              .join(LabelClass, LabelClass.id == DatasetSample.class_id)
                              .where(DatasetSample.version_id == version_id)).all())


def test_disagreeing_annotators_make_a_conflict_an_engineer_resolves(env: LabelsEnv) -> None:
    p, capture, agreed = env.project, env.unlabelled[0], env.unlabelled[1]
    save_label(p.db, p.audit, env.ann, capture, LabelDraft("scratch"), clock=p.clock)
    save_label(p.db, p.audit, env.bob, capture, LabelDraft("crack"), clock=p.clock)
    # Boxes a few pixels apart agree (IoU >= 0.5): no conflict there.
    save_label(p.db, p.audit, env.ann, agreed,
               LabelDraft("stain", (BoxDraft("stain", 10, 10, 20, 20),)), clock=p.clock)
    save_label(p.db, p.audit, env.bob, agreed,
               LabelDraft("stain", (BoxDraft("stain", 12, 11, 20, 20),)), clock=p.clock)

    [conflict] = find_conflicts(p.db)
    assert conflict.capture_id == capture and conflict.device_uid == "generator"
    assert [(c.author, c.label, c.source) for c in conflict.labels] == [
        ("ann", LabelDraft("scratch"), AnnotationSource.HUMAN),
        ("bob", LabelDraft("crack"), AnnotationSource.HUMAN)]

    first = _freeze(env)
    frozen = _frozen(env, first.id)
    assert capture not in frozen and frozen[agreed] == "stain"
    assert len(frozen) == len(env.labelled) + 1
    [event] = env.events("dataset.freeze")
    assert event.after["left_out_conflicted"] == 1

    with pytest.raises(PermissionDenied, match="ann is an annotator and may not train"):
        resolve_conflict(p.db, p.audit, env.ann, capture, LabelDraft("scratch"), clock=p.clock)
    with pytest.raises(InvalidInput, match=f"capture {agreed} is not in conflict"):
        resolve_conflict(p.db, p.audit, env.eng, agreed, LabelDraft("stain"), clock=p.clock)
    final = resolve_conflict(p.db, p.audit, env.eng, capture, LabelDraft("crack"),
                             clock=p.clock)

    assert find_conflicts(p.db) == []
    with p.db.read() as s:
        current = list(s.scalars(select(Annotation).where(Annotation.capture_id == capture,
                                                          Annotation.superseded.is_(False))))
    assert [(a.id, a.author_id, a.resolves_conflict) for a in current] == [
        (final, env.eng.user_id, True)]
    assert label_of(p.db, capture) == LabelDraft("crack")
    [resolved] = env.events("annotation.resolve_conflict")
    assert resolved.actor == "eng" and resolved.object_id == str(capture)
    assert resolved.before["labels"] == {"ann": "scratch", "bob": "crack"}
    assert resolved.after["class"] == "crack" and len(resolved.after["superseded"]) == 2

    second = _freeze(env)
    assert _frozen(env, second.id)[capture] == "crack"
    assert env.events("dataset.freeze")[1].after["left_out_conflicted"] == 0

    # A person who labels it again afterwards opens a new conflict with the resolution.
    save_label(p.db, p.audit, env.bob, capture, LabelDraft("stain"), clock=p.clock)
    assert [c.capture_id for c in find_conflicts(p.db)] == [capture]


def test_boxes_that_do_not_overlap_enough_conflict(env: LabelsEnv) -> None:
    p, capture = env.project, env.unlabelled[0]
    save_label(p.db, p.audit, env.ann, capture,
               LabelDraft("stain", (BoxDraft("stain", 10, 10, 10, 10),)), clock=p.clock)
    save_label(p.db, p.audit, env.bob, capture,
               LabelDraft("stain", (BoxDraft("stain", 16, 10, 10, 10),)), clock=p.clock)
    [conflict] = find_conflicts(p.db)
    assert conflict.capture_id == capture


def test_agreement_per_annotator_matches_a_count_by_hand(env: LabelsEnv) -> None:
    p = env.project
    c1, c2, c3, c4 = env.unlabelled

    def label(actor, capture, name):  # type: ignore[no-untyped-def]
        save_label(p.db, p.audit, actor, capture, LabelDraft(name), clock=p.clock)

    label(env.ann, c1, "scratch"); label(env.bob, c1, "scratch")
    label(env.ann, c2, "scratch"); label(env.bob, c2, "crack")
    label(env.ann, c3, "crack"); label(env.bob, c3, "crack"); label(env.eng, c3, "crack")
    label(env.ann, c4, "ok"); label(env.eng, c4, "stain")
    # The resolution is not an opinion of its own, and eng's overruled "stain" still counts.
    resolve_conflict(p.db, p.audit, env.eng, c4, LabelDraft("ok"), clock=p.clock)
    # ann changes her mind on c2 and then back: only her newest label counts.
    label(env.ann, c2, "crack"); label(env.ann, c2, "scratch")

    report = agreement_by_annotator(p.db)
    # ann: c1 yes, c2 no, c3 yes, c4 no. bob: c1 yes, c2 no, c3 yes. eng: c3 yes, c4 no.
    # The admin's imported labels are on other captures, which one person labelled.
    assert [(a.annotator, a.captures, a.agreed) for a in report.annotators] == [
        ("ann", 4, 2), ("bob", 3, 2), ("eng", 2, 1)]
    assert report.annotators[0].share == 0.5
    # Pairs: ann/bob on c1..c3 (s,s) (s,c) (c,c): p_o = 2/3, p_e = (2*1 + 1*2)/9, kappa 0.4.
    # ann/eng on c3, c4 (c,c) (ok,stain): p_o = 1/2, p_e = 1/4, kappa 1/3.
    # bob/eng on c3 only: both always "crack", chance agreement certain: no kappa.
    assert [(r.first, r.second, r.captures, r.agreed) for r in report.pairs] == [
        ("ann", "bob", 3, 2), ("ann", "eng", 2, 1), ("bob", "eng", 1, 1)]
    assert report.pairs[0].kappa == pytest.approx(0.4)
    assert report.pairs[1].kappa == pytest.approx(1 / 3)
    assert report.pairs[2].kappa is None
