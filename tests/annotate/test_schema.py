"""Editing the label schema: add, rename (old dataset versions keep their names) and merge
(no current label left on the retired class)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from app.annotate.conflicts import find_conflicts
from app.annotate.labeling import BoxDraft, LabelDraft, class_names, label_of, save_label
from app.annotate.schema import add_class, list_classes, merge_classes, rename_class
from app.core.captures import counts_by_device_and_class
from app.core.class_names import prediction_class_ids
from app.core.datasets import (
    diff_versions, freeze_version, get_version, load_split, verify_version,
)
from app.core.errors import InvalidInput, PermissionDenied
from app.core.models import (
    Annotation, AnnotationBox, AnnotationSource, Capture, DatasetVersion, LabelClass, Split,
)
from app.core.project import Project
from tests.annotate.labels_env import SIZE, LabelsEnv, make_env


@pytest.fixture
def env(project: Project) -> Iterator[LabelsEnv]:
    yield make_env(project)


def _freeze(env: LabelsEnv):  # type: ignore[no-untyped-def]
    p = env.project
    return freeze_version(p.db, p.audit, env.eng, clock=p.clock)


def test_an_added_class_can_be_labelled_with_at_once(env: LabelsEnv) -> None:
    p = env.project
    add_class(p.db, p.audit, env.eng, "dent", color="#d03030", clock=p.clock)
    assert class_names(p.db)[-1] == "dent"
    save_label(p.db, p.audit, env.ann, env.unlabelled[0], LabelDraft("dent"), clock=p.clock)
    assert [(c.name, c.labels, c.color) for c in list_classes(p.db)][-1] == ("dent", 1, "#d03030")

    with pytest.raises(InvalidInput, match="already a class called 'dent'"):
        add_class(p.db, p.audit, env.eng, "dent", clock=p.clock)
    with pytest.raises(InvalidInput, match="class name 'a,b' is not allowed"):
        add_class(p.db, p.audit, env.eng, "a,b", clock=p.clock)
    with pytest.raises(PermissionDenied, match="ann is an annotator and may not train"):
        add_class(p.db, p.audit, env.ann, "burr", clock=p.clock)
    [event] = env.events("label_class.create")
    assert (event.actor, event.object_id) == ("eng", "dent")


def test_a_rename_moves_labels_and_keeps_old_versions_with_their_names(
        env: LabelsEnv) -> None:
    p = env.project
    scratched = [c for c in env.labelled if env.truth[c] == "scratch"]
    assert scratched, "the generated captures hold no scratch; pick another seed"
    old = _freeze(env)
    before = {split: load_split(p.db, p.blobs, old.ref, split, SIZE) for split in Split}
    scratch_id = env.class_id("scratch")

    rename_class(p.db, p.audit, env.eng, "scratch", "surface_scratch", clock=p.clock)

    # Labels point at the class row: they follow the rename, nothing is re-labelled.
    assert env.class_id("surface_scratch") == scratch_id
    assert label_of(p.db, scratched[0]).class_name == "surface_scratch"
    assert "surface_scratch" in class_names(p.db) and "scratch" not in class_names(p.db)
    # The old version loads, verifies and counts with the names it was frozen with.
    assert verify_version(p.db, old.ref)
    summary = get_version(p.db, old.ref)
    assert summary.label_schema == old.label_schema and summary.by_class == old.by_class
    for split, data in before.items():
        again = load_split(p.db, p.blobs, old.ref, split, SIZE)
        assert again.label_names == data.label_names and "scratch" in again.label_names
        assert again.labels.tolist() == data.labels.tolist()
        assert again.capture_ids.tolist() == data.capture_ids.tolist()
    # A new version speaks the new name; the two differ in schema, not in labels.
    save_label(p.db, p.audit, env.ann, env.unlabelled[0], LabelDraft("surface_scratch"),
               clock=p.clock)
    new = _freeze(env)
    assert "surface_scratch" in new.label_schema and "scratch" not in new.label_schema
    change = diff_versions(p.db, old.ref, new.ref)
    assert change.relabelled == () and change.added == (env.unlabelled[0],)

    # The old name is an alias: a device still saying "scratch" lands on the class; a person
    # using it is told the new name; nobody can take the name for another class.
    with p.db.read() as s:
        assert prediction_class_ids(s, ["scratch"]) == {"scratch": scratch_id}
    with pytest.raises(InvalidInput, match="'scratch' is now called 'surface_scratch'"):
        save_label(p.db, p.audit, env.ann, env.unlabelled[1], LabelDraft("scratch"),
                   clock=p.clock)
    with pytest.raises(InvalidInput, match="'scratch' still means class 'surface_scratch'"):
        add_class(p.db, p.audit, env.eng, "scratch", clock=p.clock)
    with pytest.raises(InvalidInput, match="already a class called 'crack'"):
        rename_class(p.db, p.audit, env.eng, "surface_scratch", "crack", clock=p.clock)
    [event] = env.events("label_class.rename")
    assert event.before == {"name": "scratch"} and event.after == {"name": "surface_scratch"}
    [info] = [c for c in list_classes(p.db) if c.id == scratch_id]
    assert info.aliases == ("scratch",)

    # Renaming back takes the name back from the alias.
    rename_class(p.db, p.audit, env.eng, "surface_scratch", "scratch", clock=p.clock)
    [info] = [c for c in list_classes(p.db) if c.id == scratch_id]
    assert (info.name, info.aliases) == ("scratch", ("surface_scratch",))


def test_a_merge_leaves_no_current_label_on_the_retired_class(env: LabelsEnv) -> None:
    p = env.project
    stain, crack = env.class_id("stain"), env.class_id("crack")
    stained = [c for c in env.labelled if env.truth[c] == "stain"]
    assert stained, "the generated captures hold no stain; pick another seed"
    old = _freeze(env)
    a, b, c = env.unlabelled[:3]
    # ann says stain and bob crack: a conflict that the merge dissolves.
    save_label(p.db, p.audit, env.ann, a, LabelDraft("stain"), clock=p.clock)
    save_label(p.db, p.audit, env.bob, a, LabelDraft("crack"), clock=p.clock)
    # A stain box on another class's label, and a boxes-only label, are restated too.
    save_label(p.db, p.audit, env.ann, b,
               LabelDraft("ok", (BoxDraft("stain", 5, 5, 10, 10), BoxDraft("ok", 0, 0, 4, 4))),
               source=AnnotationSource.MODEL_ASSISTED, clock=p.clock)
    save_label(p.db, p.audit, env.bob, c, LabelDraft(None, (BoxDraft("stain", 1, 2, 3, 4),)),
               clock=p.clock)
    with p.db.write() as s:
        s.execute(update(Capture).where(Capture.id == c)
                  .values(edge_class_id=stain, edge_confidence=0.7, observer_class_id=stain,
                          observer_confidence=0.8))
    assert [x.capture_id for x in find_conflicts(p.db)] == [a]
    with p.db.read() as s:
        originals = {row.id: row for row in s.scalars(select(Annotation).where(
            Annotation.superseded.is_(False)))}

    with pytest.raises(PermissionDenied):
        merge_classes(p.db, p.audit, env.ann, "stain", "crack", clock=p.clock)
    outcome = merge_classes(p.db, p.audit, env.eng, "stain", "crack", clock=p.clock)

    assert outcome.annotations_restated == len(stained) + 3
    assert (outcome.edge_predictions, outcome.observer_predictions) == (1, 1)
    with p.db.read() as s:
        current = list(s.scalars(select(Annotation).where(Annotation.superseded.is_(False))))
        assert not [x for x in current if x.class_id == stain]
        assert s.scalar(select(func.count(AnnotationBox.id))
                        .join(Annotation, Annotation.id == AnnotationBox.annotation_id)
                        .where(Annotation.superseded.is_(False),
                               AnnotationBox.class_id == stain)) == 0
        # Each restatement keeps its original's author and source and points at it.
        restated = [x for x in current if x.replaces_id is not None]
        assert len(restated) == outcome.annotations_restated
        for x in restated:
            original = originals[x.replaces_id]
            assert (x.capture_id, x.author_id, x.source) == (
                original.capture_id, original.author_id, original.source)
            assert s.get(Annotation, x.replaces_id).superseded
        assert s.get(LabelClass, stain).retired
        assert s.execute(select(Capture.edge_class_id, Capture.observer_class_id)
                         .where(Capture.id == c)).one() == (crack, crack)
        assert prediction_class_ids(s, ["stain"]) == {"stain": crack}
        # The per-class capture counts follow the re-pointed edge prediction.
        counts = counts_by_device_and_class(s)
        assert not [k for k in counts if k[1] == stain]
        assert sum(n for (_, cls), n in counts.items() if cls == crack) == 1
    assert label_of(p.db, b) == LabelDraft(
        "ok", (BoxDraft("crack", 5.0, 5.0, 10.0, 10.0), BoxDraft("ok", 0.0, 0.0, 4.0, 4.0)))
    assert label_of(p.db, c, "bob") == LabelDraft(None, (BoxDraft("crack", 1.0, 2.0, 3.0, 4.0),))
    assert find_conflicts(p.db) == []
    assert "stain" not in class_names(p.db)
    with pytest.raises(InvalidInput, match="'stain' is now called 'crack'"):
        save_label(p.db, p.audit, env.ann, env.unlabelled[3], LabelDraft("stain"), clock=p.clock)
    with pytest.raises(InvalidInput, match="'stain' is retired"):
        merge_classes(p.db, p.audit, env.eng, "stain", "ok", clock=p.clock)
    [event] = env.events("label_class.merge")
    assert event.actor == "eng" and event.after["into"] == "crack"
    assert event.after["annotations_restated"] == outcome.annotations_restated

    # The version frozen before the merge still loads with stain; the next has none.
    assert "stain" in load_split(p.db, p.blobs, old.ref, Split.TRAIN, SIZE).label_names
    assert verify_version(p.db, old.ref)
    new = _freeze(env)
    assert "stain" not in new.label_schema
    assert new.by_class["crack"] == old.by_class["crack"] + old.by_class["stain"] + 1


def test_migration_0006_records_the_class_ids_of_versions_frozen_before_it(
        env: LabelsEnv) -> None:
    from alembic import command
    from sqlalchemy import text

    from app.core import schema

    p = env.project
    old = _freeze(env)
    config = schema.alembic_config()
    with p.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
    with p.db.engine.connect() as conn:
        columns = list(conn.execute(text("SELECT * FROM dataset_versions")).keys())
    assert "label_class_ids" not in columns
    schema.upgrade(p.db)
    with p.db.read() as s:
        ids = dict(s.execute(select(LabelClass.name, LabelClass.id)).all())
        version = s.get(DatasetVersion, old.id)
        assert version.label_class_ids == [ids[name] for name in old.label_schema]
    rename_class(p.db, p.audit, env.eng, "ok", "good", clock=p.clock)
    assert get_version(p.db, old.ref).by_class == old.by_class and verify_version(p.db, old.ref)
