"""Datasets: generated labelled imports, freezing a split version, lineage, diffs, loading.

The split rules are checked twice: as properties of the pure function (hypothesis, random
capture times and classes) and end to end on a real project with generated captures.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, text, update

from app.core.dataset_import import (
    FRAMES_PER_BURST, generated_capture_time, import_generated,
)
from app.core.dataset_split import SplitItem, assign_splits, majority_label, near_duplicate_groups
from app.core.datasets import (
    diff_versions, freeze_version, get_version, list_versions, load_split, verify_version,
)
from app.core.errors import BlobCorrupt, BlobNotFound, ImmutableRecord, InvalidInput, PermissionDenied
from app.core.models import (
    Annotation, AnnotationBox, AnnotationSource, AuditEvent, Capture, DatasetSample,
    DatasetVersion, Device, LabelClass, ReviewStatus, Role, Split,
)
from app.core.progress import CancelToken, Cancelled
from app.core.project import Project, init_project, open_project
from app.core.roles import Actor
from app.core.scene import CLASSES, SceneGenerator
from app.core.users import actor_named, add_user
from tests.conftest import ADMIN, FakeClock

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
N = 200


@pytest.fixture(scope="module")
def labelled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed SQLite project with N generated, reviewed and labelled captures (96 px),
    made once per module: each test gets a copy, which is far cheaper than importing."""
    root = tmp_path_factory.mktemp("labelled") / "project"
    with init_project(root, admin=ADMIN, clock=FakeClock(T0)) as project:
        admin = actor_named(project.db, ADMIN)
        assert import_generated(project.db, project.blobs, project.audit, admin, N,
                                clock=project.clock) == N
    return root


@pytest.fixture
def labelled(labelled_template: Path, tmp_path: Path, clock: FakeClock) -> Iterator[Project]:
    """A fresh copy of the labelled project (its clock runs after the template's)."""
    shutil.copytree(labelled_template, tmp_path / "labelled")
    project = open_project(tmp_path / "labelled", clock=clock)
    yield project
    project.close()


@pytest.fixture
def admin(labelled: Project) -> Actor:
    return actor_named(labelled.db, ADMIN)


def _freeze(project: Project, actor: Actor, **kwargs):  # type: ignore[no-untyped-def]
    return freeze_version(project.db, project.audit, actor, clock=project.clock, **kwargs)


def _splits_by_name(project: Project, ref: str) -> dict[str, tuple[Split, str]]:
    """device capture id -> (split, class name) of every sample of version ``ref``."""
    version_id = get_version(project.db, ref).id
    with project.db.read() as s:
        rows = s.execute(select(Capture.device_capture_id, DatasetSample.split, LabelClass.name)
                         .join(Capture, Capture.id == DatasetSample.capture_id)
                         .join(LabelClass, LabelClass.id == DatasetSample.class_id)
                         .where(DatasetSample.version_id == version_id)).all()
    return {name: (split, label) for name, split, label in rows}


def _relabel(project: Project, actor: Actor, capture_id: int, new_class: str) -> None:
    """What the annotation view will do: supersede the current label with a person's."""
    with project.db.write() as s:
        class_id = s.scalar(select(LabelClass.id).where(LabelClass.name == new_class))
        s.execute(update(Annotation).where(Annotation.capture_id == capture_id)
                  .values(superseded=True))
        s.add(Annotation(capture_id=capture_id, class_id=class_id, author_id=actor.user_id,
                         source=AnnotationSource.HUMAN, created_at=project.clock()))


# --- import ---------------------------------------------------------------------------------


def test_import_generated_records_reviewed_labelled_captures_once(labelled: Project,
                                                                  admin: Actor) -> None:
    project = labelled
    gen = SceneGenerator(seed=0, size=96)
    again = import_generated(project.db, project.blobs, project.audit, admin, N,
                             clock=project.clock)
    assert again == 0
    with project.db.read() as s:
        device = s.scalar(select(Device).where(Device.uid == "generator"))
        captures = list(s.scalars(select(Capture).order_by(Capture.captured_at)))
        assert len(captures) == N and all(c.device_id == device.id for c in captures)
        assert all(c.review_status is ReviewStatus.REVIEWED for c in captures)
        assert [c.name for c in s.scalars(select(LabelClass).order_by(LabelClass.position))] \
            == list(CLASSES)
        names = dict(s.execute(select(LabelClass.id, LabelClass.name)).all())
        annotations = {a.capture_id: a for a in s.scalars(select(Annotation))}
        assert len(annotations) == N
        for index in (0, 1, 7, 123):
            capture = captures[index]
            sample, annotation = gen.sample(index), annotations[capture.id]
            assert capture.captured_at == generated_capture_time(index)
            assert annotation.source is AnnotationSource.IMPORTED
            assert annotation.author_id == admin.user_id
            assert names[annotation.class_id] == sample.label
            assert [(names[b.class_id], b.x, b.width) for b in annotation.boxes] == \
                [(b.label, b.x, b.w) for b in sample.boxes]
            stored = cv2.imdecode(np.frombuffer(project.blobs.read_bytes(capture.blob_sha256),
                                                np.uint8), cv2.IMREAD_COLOR)
            assert np.array_equal(stored, sample.image)  # PNG: lossless, BGR kept
        events = list(s.scalars(select(AuditEvent)
                                .where(AuditEvent.action == "captures.import_generated")))
        assert [e.after["imported"] for e in events] == [N, 0]
        assert project.audit.verify(s).ok
    # Frames of a burst are seconds apart, bursts minutes apart.
    assert generated_capture_time(1) - generated_capture_time(0) == timedelta(seconds=2)
    gap = generated_capture_time(FRAMES_PER_BURST) - generated_capture_time(FRAMES_PER_BURST - 1)
    assert gap > timedelta(seconds=60)


def test_annotators_may_not_import_or_freeze(labelled: Project, admin: Actor) -> None:
    ann = add_user(labelled.db, labelled.audit, admin, "ann", Role.ANNOTATOR)
    with pytest.raises(PermissionDenied):
        import_generated(labelled.db, labelled.blobs, labelled.audit, ann, 5, start_index=N)
    with pytest.raises(PermissionDenied):
        _freeze(labelled, ann)
    assert list_versions(labelled.db) == []


def test_cancelled_or_misdirected_import_commits_nothing(sqlite_project: Project) -> None:
    admin = actor_named(sqlite_project.db, ADMIN)
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        import_generated(sqlite_project.db, sqlite_project.blobs, sqlite_project.audit, admin,
                         10, cancel=cancel)
    with sqlite_project.db.write() as s:
        s.add(Device(uid="cam-1", hardware="rpi5"))
    with pytest.raises(InvalidInput, match="'cam-1' is a real device"):
        import_generated(sqlite_project.db, sqlite_project.blobs, sqlite_project.audit, admin,
                         10, device_uid="cam-1")
    with pytest.raises(InvalidInput, match="size must be"):
        import_generated(sqlite_project.db, sqlite_project.blobs, sqlite_project.audit, admin,
                         10, size=32)
    with sqlite_project.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Capture)) == 0


# --- the pure split -------------------------------------------------------------------------


def _items(spec: list[tuple[int, int, int]]) -> list[SplitItem]:
    return [SplitItem(key=i, device=f"d{device}", device_capture_id=f"c{i:05d}",
                      captured_at=T0 + timedelta(seconds=seconds), label=f"class{label}")
            for i, (device, seconds, label) in enumerate(spec)]


captures_spec = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 3000), st.integers(0, 3)),
    min_size=1, max_size=120)


@settings(max_examples=150, deadline=None)
@given(spec=captures_spec, seed=st.integers(0, 1000),
       window=st.sampled_from([0.0, 5.0, 60.0, 300.0]), shuffle_seed=st.integers(0, 1000))
def test_split_keeps_near_duplicates_together_and_ignores_input_order(
        spec: list[tuple[int, int, int]], seed: int, window: float, shuffle_seed: int) -> None:
    items = _items(spec)
    splits = assign_splits(items, seed=seed, near_window_s=window)
    assert set(splits) == {item.key for item in items}
    by_device = defaultdict(list)
    for item in items:
        by_device[item.device].append(item)
    for same_device in by_device.values():
        for a in same_device:
            for b in same_device:
                if abs((a.captured_at - b.captured_at).total_seconds()) <= window:
                    assert splits[a.key] == splits[b.key], (a, b)
    shuffled = list(items)
    random.Random(shuffle_seed).shuffle(shuffled)
    assert assign_splits(shuffled, seed=seed, near_window_s=window) == splits


@settings(max_examples=150, deadline=None)
@given(spec=captures_spec, seed=st.integers(0, 1000))
def test_split_gives_every_class_train_and_small_classes_val_and_test(
        spec: list[tuple[int, int, int]], seed: int) -> None:
    items = _items(spec)
    splits = assign_splits(items, seed=seed)
    overall = Counter(item.label for item in items)
    groups_of: dict[str, list] = defaultdict(list)
    for group in near_duplicate_groups(items, 60.0):
        groups_of[majority_label(group, overall)].append(group)
    for label, groups in groups_of.items():
        got = Counter(splits[g.first.key] for g in groups)
        assert got[Split.TRAIN] >= 1, label
        if len(groups) >= 3:
            assert got[Split.VAL] >= 1 and got[Split.TEST] >= 1, (label, got)
        else:
            assert got == Counter({Split.TRAIN: len(groups)})


def test_split_hits_the_fractions_and_depends_on_the_seed() -> None:
    rng = random.Random(5)
    items = _items([(rng.randrange(3), i * 120, rng.randrange(4)) for i in range(1200)])
    splits = assign_splits(items, seed=3, fractions=(0.6, 0.2, 0.2))
    shares = Counter(splits.values())
    assert shares[Split.TRAIN] / 1200 == pytest.approx(0.6, abs=0.02)
    assert shares[Split.VAL] / 1200 == pytest.approx(0.2, abs=0.02)
    other = assign_splits(items, seed=4, fractions=(0.6, 0.2, 0.2))
    assert other != splits and Counter(other.values()) == pytest.approx(shares, abs=10)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.7, 0.2, 0.2), (0.0, 0.5, 0.5),
                                       (1.2, -0.1, -0.1)])
def test_bad_fractions_are_refused(fractions: tuple[float, ...]) -> None:
    with pytest.raises(InvalidInput, match="fraction"):
        assign_splits(_items([(0, 0, 0)]), fractions=fractions)


# --- freezing -------------------------------------------------------------------------------


def test_freeze_makes_a_stratified_split_that_keeps_bursts_together(labelled: Project,
                                                                    admin: Actor) -> None:
    summary = _freeze(labelled, admin, notes="first")
    assert (summary.ref, summary.parent_number, summary.created_by) == ("inspection@1", None, ADMIN)
    assert summary.label_schema == CLASSES and summary.notes == "first"
    assert summary.frozen_at is not None and len(summary.content_hash or "") == 64
    assert summary.total == N == sum(summary.by_class.values())
    for split, share in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        assert summary.by_split[split] / N == pytest.approx(share, abs=0.07)
    assert all(summary.counts["train"][name] > 0 for name in CLASSES)

    samples = _splits_by_name(labelled, "inspection@1")
    with labelled.db.read() as s:
        times = dict(s.execute(select(Capture.device_capture_id, Capture.captured_at)).all())
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "dataset.freeze"))
    ordered = sorted(samples, key=times.__getitem__)
    straddling = [(a, b) for a, b in zip(ordered, ordered[1:])
                  if (times[b] - times[a]).total_seconds() <= 60 and samples[a][0] != samples[b][0]]
    assert straddling == []
    assert len({samples[name][0] for name in ordered[:FRAMES_PER_BURST]}) == 1
    assert event.object_id == "inspection@1" and event.after["samples"] == N
    assert event.after["content_hash"] == summary.content_hash
    assert verify_version(labelled.db, "inspection@1")


def test_same_content_and_seed_give_the_same_version_whatever_the_insertion_order(
        labelled: Project, admin: Actor, tmp_path: Path) -> None:
    first = _freeze(labelled, admin)
    other = init_project(tmp_path / "other", admin=ADMIN)
    try:
        other_admin = actor_named(other.db, ADMIN)
        # Another device first (so database ids differ), then the same frames backwards.
        import_generated(other.db, other.blobs, other.audit, other_admin, 3, seed=9,
                         device_uid="elsewhere")
        with other.db.write() as s:
            s.execute(update(Capture).values(review_status=ReviewStatus.SKIPPED))
        for start in range(N - 40, -1, -40):
            import_generated(other.db, other.blobs, other.audit, other_admin, 40,
                             start_index=start)
        again = _freeze(other, other_admin)
        assert again.content_hash == first.content_hash
        assert _splits_by_name(other, "inspection@1") == _splits_by_name(labelled, "inspection@1")
        with other.db.read() as s:
            assert s.scalar(select(func.min(Capture.id)).where(
                Capture.device_capture_id.like("gen-s0-%"))) > 3
    finally:
        other.close()

    reseeded = _freeze(labelled, admin, seed=1)
    assert reseeded.ref == "inspection@2" and reseeded.parent_number == 1
    assert reseeded.content_hash != first.content_hash
    before, after = _splits_by_name(labelled, "inspection@1"), _splits_by_name(labelled, "inspection@2")
    assert before.keys() == after.keys() and before != after


def test_freezing_again_without_a_change_is_refused_unless_asked_for(labelled: Project,
                                                                     admin: Actor) -> None:
    first = _freeze(labelled, admin)
    with pytest.raises(InvalidInput, match=r"nothing changed since inspection@1"):
        _freeze(labelled, admin)
    second = _freeze(labelled, admin, allow_unchanged=True)
    assert (second.number, second.parent_number) == (2, 1)
    assert second.content_hash == first.content_hash and second.counts == first.counts
    other = _freeze(labelled, admin, dataset="holdout")
    assert other.ref == "holdout@1"
    assert [v.ref for v in list_versions(labelled.db)] == ["holdout@1", "inspection@1",
                                                          "inspection@2"]
    assert [v.ref for v in list_versions(labelled.db, "inspection")] == ["inspection@1",
                                                                        "inspection@2"]


def test_only_current_reviewed_labels_of_active_classes_are_frozen(labelled: Project,
                                                                    admin: Actor) -> None:
    gen = SceneGenerator(seed=0, size=96)
    with labelled.db.read() as s:
        ids = list(s.scalars(select(Capture.id).order_by(Capture.captured_at)))
    boxes_only, relabelled = [ids[i] for i in range(5, N) if gen.label_of(i) != "stain"][:2]
    _relabel(labelled, admin, relabelled, "crack")
    _relabel(labelled, admin, relabelled, "scratch")
    with labelled.db.write() as s:
        s.execute(update(Capture).where(Capture.id.in_(ids[:5]))
                  .values(review_status=ReviewStatus.QUEUED))
        # A boxes-only annotation newer than the class label does not hide the class.
        s.add(Annotation(capture_id=boxes_only, class_id=None, author_id=admin.user_id,
                         source=AnnotationSource.HUMAN, created_at=labelled.clock()))
        stain = s.scalar(select(LabelClass).where(LabelClass.name == "stain"))
        stain.retired = True
    stains = sum(gen.label_of(i) == "stain" for i in range(5, N))
    summary = _freeze(labelled, admin)
    assert summary.label_schema == ("ok", "scratch", "crack", "missing_hole")
    assert stains > 0 and summary.total == N - 5 - stains
    assert "stain" not in summary.by_class
    with labelled.db.read() as s:
        frozen = dict(s.execute(select(DatasetSample.capture_id, DatasetSample.class_id)).all())
        names = dict(s.execute(select(LabelClass.id, LabelClass.name)).all())
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "dataset.freeze"))
    assert names[frozen[relabelled]] == "scratch"
    assert names[frozen[boxes_only]] == gen.label_of(ids.index(boxes_only))
    assert not set(ids[:5]) & frozen.keys()
    assert event.after["left_out_retired_class"] == stains


def test_a_frozen_version_cannot_change(labelled: Project, admin: Actor) -> None:
    summary = _freeze(labelled, admin)
    with labelled.db.read() as s:
        sample = s.scalar(select(DatasetSample).order_by(DatasetSample.id).limit(1))
        sample_id, capture_id, class_id = sample.id, sample.capture_id, sample.class_id
        other_class = s.scalar(select(LabelClass.id).where(LabelClass.id != class_id).limit(1))

    def attempt(change) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(ImmutableRecord, match="frozen"):
            with labelled.db.write() as s:
                change(s)

    attempt(lambda s: setattr(s.get(DatasetSample, sample_id), "class_id", other_class))
    attempt(lambda s: setattr(s.get(DatasetSample, sample_id), "split", Split.TEST))
    attempt(lambda s: setattr(s.get(DatasetSample, sample_id), "boxes", [{"x": 1}]))
    attempt(lambda s: s.delete(s.get(DatasetSample, sample_id)))
    attempt(lambda s: s.add(DatasetSample(version_id=summary.id, capture_id=capture_id,
                                          blob_sha256=sample.blob_sha256, split=Split.VAL)))
    attempt(lambda s: setattr(s.get(DatasetVersion, summary.id), "notes", "edited"))
    attempt(lambda s: setattr(s.get(DatasetVersion, summary.id), "frozen_at", None))
    attempt(lambda s: setattr(s.get(DatasetVersion, summary.id), "label_schema", ["ok"]))
    attempt(lambda s: s.delete(s.get(DatasetVersion, summary.id)))

    # Relabelling the capture afterwards changes the next version, never this one.
    old_name = _splits_by_name(labelled, "inspection@1")[_name_of(labelled, capture_id)][1]
    _relabel(labelled, admin, capture_id, next(n for n in CLASSES if n != old_name))
    assert get_version(labelled.db, "inspection@1").counts == summary.counts
    with labelled.db.read() as s:
        assert s.get(DatasetSample, sample_id).class_id == class_id
    assert verify_version(labelled.db, "inspection@1")


def _name_of(project: Project, capture_id: int) -> str:
    with project.db.read() as s:
        return s.get(Capture, capture_id).device_capture_id


def test_the_content_hash_catches_what_gets_past_the_orm_guards(labelled: Project,
                                                                 admin: Actor) -> None:
    summary = _freeze(labelled, admin)
    with labelled.db.write() as s:
        s.execute(text("UPDATE dataset_samples SET split = 'train' WHERE split = 'test'"))
    assert not verify_version(labelled.db, summary.id)


def test_bulk_orm_statements_cannot_change_a_frozen_version(labelled: Project,
                                                             admin: Actor) -> None:
    _freeze(labelled, admin)
    refused = 0
    for statement in (update(DatasetSample).values(split=Split.TEST),
                      delete(DatasetSample), update(DatasetVersion).values(notes="x")):
        try:
            with labelled.db.write() as s:
                s.execute(statement)
        except ImmutableRecord:
            refused += 1
    assert refused == 3


def test_an_expired_frozen_version_cannot_change_either(labelled: Project, admin: Actor) -> None:
    summary = _freeze(labelled, admin)
    try:
        with labelled.db.write() as s:
            version = s.get(DatasetVersion, summary.id)
            s.expire(version)
            version.notes = "edited"
    except ImmutableRecord:
        pass
    assert get_version(labelled.db, summary.id).notes == ""


# --- lineage and diff -----------------------------------------------------------------------


def test_diff_reports_relabels_additions_removals_and_moves(labelled: Project,
                                                            admin: Actor) -> None:
    _freeze(labelled, admin)
    with labelled.db.read() as s:
        ids = list(s.scalars(select(Capture.id).order_by(Capture.captured_at)))
        names = dict(s.execute(select(LabelClass.id, LabelClass.name)).all())
        current = dict(s.execute(select(Annotation.capture_id, Annotation.class_id)).all())
    relabelled = {ids[10]: "crack" if names[current[ids[10]]] != "crack" else "stain",
                  ids[101]: "ok" if names[current[ids[101]]] != "ok" else "scratch"}
    for capture_id, new_class in relabelled.items():
        _relabel(labelled, admin, capture_id, new_class)
    with labelled.db.write() as s:  # one capture leaves review: it drops out of the dataset
        s.get(Capture, ids[50]).review_status = ReviewStatus.SKIPPED
    assert import_generated(labelled.db, labelled.blobs, labelled.audit, admin, 20,
                            start_index=N, clock=labelled.clock) == 20
    v2 = _freeze(labelled, admin)
    with labelled.db.read() as s:
        new_ids = set(s.scalars(select(Capture.id).where(Capture.id.not_in(ids))))

    diff = diff_versions(labelled.db, "inspection@1", "inspection")
    assert (diff.a, diff.b, v2.parent_number) == ("inspection@1", "inspection@2", 1)
    assert set(diff.added) == new_ids and len(new_ids) == 20
    assert diff.removed == (ids[50],)
    assert {(r.capture_id, r.old, r.new) for r in diff.relabelled} == {
        (c, names[current[c]], new) for c, new in relabelled.items()}
    before, after = _splits_by_name(labelled, "inspection@1"), _splits_by_name(labelled, "inspection@2")
    moved_names = {_name_of(labelled, m.capture_id) for m in diff.moved}
    assert moved_names == {n for n in before.keys() & after.keys() if before[n][0] != after[n][0]}
    # Blocks, not dealing: new data moves only groups near a block boundary.
    assert len(diff.moved) <= 0.25 * N
    assert sum(diff.counts_after.values()) - sum(diff.counts_before.values()) == 20 - 1
    assert not diff.unchanged and diff_versions(labelled.db, "inspection@2", v2.id).unchanged


def test_unknown_references_and_empty_selections_say_what_to_do(sqlite_project: Project) -> None:
    admin = actor_named(sqlite_project.db, ADMIN)
    with pytest.raises(InvalidInput, match="no labelled captures.*import generated"):
        _freeze(sqlite_project, admin)
    with pytest.raises(InvalidInput, match="no dataset 'inspection'.*none has been frozen"):
        get_version(sqlite_project.db, "inspection")
    with pytest.raises(InvalidInput, match="no dataset"):
        list_versions(sqlite_project.db, "inspection")
    import_generated(sqlite_project.db, sqlite_project.blobs, sqlite_project.audit, admin, 12)
    _freeze(sqlite_project, admin)
    with pytest.raises(InvalidInput, match=r"no version 'inspection@7': it has versions 1 to 1"):
        get_version(sqlite_project.db, "inspection@7")
    with pytest.raises(InvalidInput, match="no dataset 'other'; there are: inspection"):
        diff_versions(sqlite_project.db, "inspection@1", "other@1")
    for bad in ("inspection@", "inspection@0", "inspection@x", "in spection", ""):
        with pytest.raises(InvalidInput):
            get_version(sqlite_project.db, bad)
    with pytest.raises(InvalidInput, match="no dataset version with id 99"):
        load_split(sqlite_project.db, sqlite_project.blobs, 99, "train", 32)
    with pytest.raises(InvalidInput, match="unknown split"):
        load_split(sqlite_project.db, sqlite_project.blobs, "inspection", "validation", 32)


# --- loading --------------------------------------------------------------------------------


def test_load_split_returns_bgr_images_and_schema_indices(labelled: Project, admin: Actor) -> None:
    summary = _freeze(labelled, admin)
    gen = SceneGenerator(seed=0, size=96)
    seen = []
    total = 0
    names = _splits_by_name(labelled, "inspection@1")
    for split in Split:
        data = load_split(labelled.db, labelled.blobs, "inspection@1", split, 64,
                          progress=seen.append)
        n = summary.by_split[split.value]
        total += len(data)
        assert data.images.shape == (n, 64, 64, 3) and data.images.dtype == np.uint8
        assert data.labels.dtype == np.int64 and data.capture_ids.shape == (n,)
        assert data.label_names == CLASSES and data.version == "inspection@1"
        for row in (0, n // 2, n - 1):
            capture_name = _name_of(labelled, int(data.capture_ids[row]))
            index = int(capture_name.rsplit("-", 1)[1])
            assert names[capture_name] == (split, CLASSES[data.labels[row]])
            expected = cv2.resize(gen.sample(index).image, (64, 64), interpolation=cv2.INTER_AREA)
            assert np.array_equal(data.images[row], expected)
    assert total == N and seen[-1].done == seen[-1].total
    full = load_split(labelled.db, labelled.blobs, summary.id, "val", 96, workers=1)
    index = int(_name_of(labelled, int(full.capture_ids[0])).rsplit("-", 1)[1])
    assert np.array_equal(full.images[0], gen.sample(index).image)


def test_load_split_names_the_capture_of_a_damaged_blob(labelled: Project, admin: Actor) -> None:
    _freeze(labelled, admin)
    data = load_split(labelled.db, labelled.blobs, "inspection", "test", 32)
    capture_id = int(data.capture_ids[0])
    with labelled.db.read() as s:
        capture = s.get(Capture, capture_id)
        sha, name = capture.blob_sha256, capture.device_capture_id
    path = labelled.blobs.path_of(sha)
    path.chmod(0o644)
    path.write_bytes(b"not an image")
    with pytest.raises(BlobCorrupt, match=rf"capture {capture_id} \(generator/{name}\).*not a decodable"):
        load_split(labelled.db, labelled.blobs, "inspection", "test", 32)
    path.unlink()
    with pytest.raises(BlobNotFound, match=rf"capture {capture_id} \(generator/{name}\)"):
        load_split(labelled.db, labelled.blobs, "inspection", "test", 32)


# --- both databases -------------------------------------------------------------------------


def test_import_freeze_diff_and_load_on_each_database(project: Project) -> None:
    admin = actor_named(project.db, ADMIN)
    import_generated(project.db, project.blobs, project.audit, admin, 40, size=64,
                     clock=project.clock)
    v1 = _freeze(project, admin)
    with project.db.read() as s:
        capture_id = s.scalar(select(Capture.id).order_by(Capture.id).limit(1))
        box_count = s.scalar(select(func.count()).select_from(AnnotationBox))
    _relabel(project, admin, capture_id, "missing_hole" if capture_id % 2 else "stain")
    import_generated(project.db, project.blobs, project.audit, admin, 8, size=64,
                     start_index=40, clock=project.clock)
    v2 = _freeze(project, admin)
    assert (v1.total, v2.total, v2.parent_number) == (40, 48, 1)
    diff = diff_versions(project.db, v1.ref, v2.ref)
    assert len(diff.added) == 8 and [r.capture_id for r in diff.relabelled] == [capture_id]
    assert verify_version(project.db, v1.ref) and verify_version(project.db, v2.ref)
    assert box_count > 0
    data = load_split(project.db, project.blobs, v2.ref, "train", 48)
    assert data.images.shape == (v2.by_split["train"], 48, 48, 3)
    with pytest.raises(ImmutableRecord):
        with project.db.write() as s:
            s.scalar(select(DatasetSample).limit(1)).split = Split.VAL
