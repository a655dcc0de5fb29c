"""Labels between projects and files: captures labelled in one project, exported in every
format, imported into a fresh project, carry the same labels per image; importing again
changes nothing; bad images are skipped and reported; the CLI does the same."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.annotate.formats import FORMATS, Format, read_labels
from app.annotate.labeling import BoxDraft, LabelDraft, label_of, save_label
from app.annotate.schema import add_class, rename_class
from app.annotate.transfer import IMPORT_HARDWARE, export_labels, import_folder
from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.errors import InvalidInput, PermissionDenied
from app.core.models import (
    Annotation, AnnotationSource, AuditEvent, Capture, CaptureReason, Device, LabelClass,
    ReviewStatus, Role, User,
)
from app.core.progress import Cancelled, CancelToken
from app.core.project import Project, init_project
from app.core.users import actor_named, add_user
from tests.conftest import ADMIN

SIZE = 64


@pytest.fixture
def labelled(sqlite_project: Project) -> Project:
    """12 generated captures (class and a box each, by the admin); capture 3 relabelled with
    two boxes and no class, capture 4 in conflict between two annotators."""
    p = sqlite_project
    admin = actor_named(p.db, ADMIN)
    import_generated(p.db, p.blobs, p.audit, admin, 12, size=SIZE, clock=p.clock)
    ann = add_user(p.db, p.audit, admin, "ann", Role.ANNOTATOR)
    ids = _capture_ids(p)
    save_label(p.db, p.audit, admin, ids[3], LabelDraft(None, (
        BoxDraft("crack", 1.25, 2.5, 10.125, 3.0), BoxDraft("stain", 0.0, 0.0, 64.0, 64.0))),
        clock=p.clock)
    save_label(p.db, p.audit, ann, ids[4], LabelDraft("ok"), clock=p.clock)
    return p


@pytest.fixture
def fresh(tmp_path: Path, clock) -> Iterator[Project]:  # type: ignore[no-untyped-def]
    p = init_project(tmp_path / "fresh", admin=ADMIN, clock=clock)
    yield p
    p.close()


def _capture_ids(p: Project) -> list[int]:
    with p.db.read() as s:
        return list(s.scalars(select(Capture.id).order_by(Capture.device_capture_id)))


def _labels_by_blob(p: Project) -> dict[str, LabelDraft]:
    with p.db.read() as s:
        captures = s.execute(select(Capture.id, Capture.blob_sha256)).all()
    return {sha: label for capture_id, sha in captures
            if (label := label_of(p.db, capture_id)) is not None}


def _exported(p: Project) -> dict[str, LabelDraft]:
    """What the export of the ``labelled`` project carries: all labels but the conflict's."""
    labels = _labels_by_blob(p)
    with p.db.read() as s:
        del labels[s.scalar(select(Capture.blob_sha256).where(Capture.id == _capture_ids(p)[4]))]
    return labels


def _same(a: LabelDraft, b: LabelDraft, tol: float) -> bool:
    return a.class_name == b.class_name and len(a.boxes) == len(b.boxes) and all(
        p.class_name == q.class_name and all(abs(getattr(p, c) - getattr(q, c)) <= tol
                                             for c in ("x", "y", "width", "height"))
        for p, q in zip(a.boxes, b.boxes))


@pytest.mark.parametrize("fmt", list(Format))
def test_labels_survive_export_and_import_into_a_fresh_project(
        labelled: Project, fresh: Project, tmp_path: Path, fmt: Format) -> None:
    info = FORMATS[fmt]
    lossy = fmt is Format.IMAGEFOLDER
    report = export_labels(labelled.db, labelled.blobs, fmt, tmp_path / "out", lossy=lossy)
    assert report.images == (10 if lossy else 11)  # the conflict left out; imagefolder: no boxes-only
    assert report.notes[0] == ("1 captures in conflict (annotators disagree) left out; resolve "
                               "them first")

    admin = actor_named(fresh.db, ADMIN)
    got = import_folder(fresh.db, fresh.blobs, fresh.audit, admin, fmt, tmp_path / "out",
                        clock=fresh.clock)
    assert (got.images, got.captures_new, got.labels_recorded, got.skipped) == (
        report.images, report.images, report.images, ())
    assert set(got.classes_created) <= {"ok", "scratch", "crack", "missing_hole", "stain"}

    before, after = _exported(labelled), _labels_by_blob(fresh)
    if lossy:
        before = {sha: LabelDraft(label.class_name) for sha, label in before.items()
                  if label.class_name is not None}
    assert after.keys() == before.keys()
    for sha, label in before.items():
        assert _same(label, after[sha], info.tolerance_px), (sha, label, after[sha])

    with fresh.db.read() as s:  # who, how and where the labels came from
        assert {(a.source, a.author_id) for a in s.scalars(select(Annotation))} == {
            (AnnotationSource.IMPORTED, admin.user_id)}
        device = s.scalar(select(Device).where(Device.uid == "import"))
        assert device.hardware == IMPORT_HARDWARE
        captures = list(s.scalars(select(Capture)))
        assert {(c.reason, c.review_status, c.device_id) for c in captures} == {
            (CaptureReason.IMPORTED, ReviewStatus.REVIEWED, device.id)}
        assert [e.after["labels_recorded"] for e in s.scalars(
            select(AuditEvent).where(AuditEvent.action == "labels.import"))] == [report.images]


def test_importing_again_changes_nothing_and_a_changed_label_supersedes(
        labelled: Project, fresh: Project, tmp_path: Path) -> None:
    export_labels(labelled.db, labelled.blobs, "coco", tmp_path / "out")
    admin = actor_named(fresh.db, ADMIN)
    first = import_folder(fresh.db, fresh.blobs, fresh.audit, admin, "coco", tmp_path / "out")
    # The same images under other names, in another format: the same captures.
    export_labels(labelled.db, labelled.blobs, "yolo", tmp_path / "yolo")
    for old in (tmp_path / "yolo" / "images").iterdir():
        old.rename(old.with_name("renamed-" + old.name))
    for old in (tmp_path / "yolo" / "labels").iterdir():
        old.rename(old.with_name("renamed-" + old.name))
    sidecar = tmp_path / "yolo" / "image_classes.txt"
    sidecar.write_text(sidecar.read_text().replace(" ", " renamed-"))
    again = import_folder(fresh.db, fresh.blobs, fresh.audit, admin, "yolo", tmp_path / "yolo")
    # YOLO's fractions round, within 1e-6 px: the same label, not a new one.
    assert (again.captures_new, again.captures_existing, again.labels_recorded,
            again.labels_unchanged) == (0, 11, 0, 11)
    with fresh.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Capture)) == first.captures_new == 11
        count = s.scalar(select(func.count()).select_from(Annotation))
    assert import_folder(fresh.db, fresh.blobs, fresh.audit, admin, "coco",
                         tmp_path / "out").labels_recorded == 0
    with fresh.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Annotation)) == count


def test_bad_images_are_skipped_and_reported(labelled: Project, fresh: Project,
                                            tmp_path: Path) -> None:
    export_labels(labelled.db, labelled.blobs, "voc", tmp_path / "out")
    images = sorted((tmp_path / "out" / "JPEGImages").iterdir())
    images[0].write_bytes(b"garbage, not a PNG")
    images[1].unlink()
    shutil.copyfile(images[3], images[2])  # decodes, but the wrong image? same size: taken
    admin = actor_named(fresh.db, ADMIN)
    got = import_folder(fresh.db, fresh.blobs, fresh.audit, admin, "voc", tmp_path / "out")
    reasons = {s.file_name: s.reason for s in got.skipped}
    assert reasons[images[0].name].startswith("not a decodable image")
    assert reasons[images[1].name].startswith("the image file cannot be read")
    # images[2] now holds images[3]'s bytes: one capture, the labels of whichever came first.
    assert "the same image as" in reasons[images[3].name]
    assert got.captures_new == 11 - 3


def test_old_class_names_land_on_the_renamed_class_and_bad_names_are_refused(
        labelled: Project, fresh: Project, tmp_path: Path) -> None:
    export_labels(labelled.db, labelled.blobs, "cvat", tmp_path / "out")
    admin = actor_named(fresh.db, ADMIN)
    add_class(fresh.db, fresh.audit, admin, "crack")
    rename_class(fresh.db, fresh.audit, admin, "crack", "fissure")
    got = import_folder(fresh.db, fresh.blobs, fresh.audit, admin, "cvat", tmp_path / "out")
    assert "crack" not in got.classes_created
    assert "class 'crack' is now called 'fissure'; its labels were imported as such" in got.notes
    rename = {"crack": "fissure"}
    expected = {sha: LabelDraft(rename.get(label.class_name, label.class_name),
                                tuple(BoxDraft(rename.get(b.class_name, b.class_name), b.x, b.y,
                                               b.width, b.height) for b in label.boxes))
                for sha, label in _exported(labelled).items()}
    assert "fissure" in str(expected)
    after = _labels_by_blob(fresh)
    assert after.keys() == expected.keys()
    assert all(_same(label, after[sha], FORMATS[Format.CVAT].tolerance_px)
               for sha, label in expected.items())

    xml = (tmp_path / "out" / "annotations.xml")
    xml.write_text(xml.read_text().replace(">ok<", ">défaut<").replace('"ok"', '"défaut"'))
    with pytest.raises(InvalidInput, match="the labels use class 'défaut', which this project "
                                           "lacks and cannot add: class name 'défaut' is not"):
        import_folder(fresh.db, fresh.blobs, fresh.audit, admin, "cvat", tmp_path / "out")


def test_boxes_past_the_edge_are_clipped_on_export(labelled: Project, tmp_path: Path) -> None:
    """The labeling checks a box against the image only when it knows the image's size;
    the export does, and clips (or drops what is left of almost nothing)."""
    admin = actor_named(labelled.db, ADMIN)
    capture = _capture_ids(labelled)[5]
    save_label(labelled.db, labelled.audit, admin, capture, LabelDraft("ok", (
        BoxDraft("crack", 60.0, 58.0, 10.0, 10.0), BoxDraft("stain", 1.0, 1.0, 1e-4, 5.0))))
    report = export_labels(labelled.db, labelled.blobs, "coco", tmp_path / "out")
    assert ("2 boxes reaching past the image edge were clipped to it (or dropped, where less "
            "than 0.001 px of them was inside)") in report.notes
    image = next(i for i in read_labels("coco", tmp_path / "out").labels.images
                 if i.attribute_map["capture_id"] == str(capture))
    assert (image.class_name, [(b.class_name, b.x, b.y, b.width, b.height) for b in image.boxes]
            ) == ("ok", [("crack", 60.0, 58.0, 4.0, 6.0)])


def test_export_of_a_frozen_version_carries_its_split(labelled: Project, tmp_path: Path) -> None:
    admin = actor_named(labelled.db, ADMIN)
    version = freeze_version(labelled.db, labelled.audit, admin, clock=labelled.clock)
    report = export_labels(labelled.db, labelled.blobs, "labelstudio", tmp_path / "out",
                           dataset_ref=version.ref, copy_images=False)
    assert report.source == "inspection@1"
    images = read_labels("labelstudio", tmp_path / "out").labels.images
    assert len(images) == version.total == report.images
    assert {i.attribute_map["split"] for i in images} <= {"train", "val", "test"}
    assert not (tmp_path / "out" / "images").exists()


def test_refusals_and_cancel(labelled: Project, fresh: Project, tmp_path: Path) -> None:
    export_labels(labelled.db, labelled.blobs, "cvat", tmp_path / "out")
    admin = actor_named(fresh.db, ADMIN)
    ann = add_user(fresh.db, fresh.audit, admin, "ann", Role.ANNOTATOR)
    with pytest.raises(PermissionDenied):
        import_folder(fresh.db, fresh.blobs, fresh.audit, ann, "cvat", tmp_path / "out")
    with fresh.db.write() as s:
        s.add(Device(uid="cam-1", hardware="rpi5"))
    with pytest.raises(InvalidInput, match="'cam-1' is a real device"):
        import_folder(fresh.db, fresh.blobs, fresh.audit, admin, "cvat", tmp_path / "out",
                      device_uid="cam-1")
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        import_folder(fresh.db, fresh.blobs, fresh.audit, admin, "cvat", tmp_path / "out",
                      cancel=cancel)
    with pytest.raises(Cancelled):
        export_labels(labelled.db, labelled.blobs, "coco", tmp_path / "cancelled", cancel=cancel)
    assert not (tmp_path / "cancelled").exists()
    with pytest.raises(InvalidInput, match="unknown label format 'xml'"):
        export_labels(labelled.db, labelled.blobs, "xml", tmp_path / "x")
    with fresh.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Capture)) == 0
        assert s.scalar(select(func.count()).select_from(LabelClass)) == 0
        assert s.scalar(select(func.count()).select_from(User)) == 2


def test_cli_exports_and_imports(labelled: Project, fresh: Project, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "edgeloop"
    env = {**os.environ, "EDGELOOP_USER": ADMIN}
    labelled.close()
    fresh.close()
    out = subprocess.run([str(exe), "labels", "export", "--format", "yolo", "--out",
                          str(tmp_path / "out"), "--project", str(labelled.root)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Exported 11 images")
    back = subprocess.run([str(exe), "labels", "import", "--format", "yolo",
                           str(tmp_path / "out"), "--project", str(fresh.root)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert back.returncode == 0, back.stderr
    assert "11 new captures" in back.stdout
    bad = subprocess.run([str(exe), "labels", "import", "--format", "coco",
                          str(tmp_path / "out"), "--project", str(fresh.root)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert "no COCO JSON here" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_export_and_import_back_on_sqlite_and_postgresql(project: Project, tmp_path: Path) -> None:
    """The same project on both databases: its labels exported, then imported back into it
    (a device of their own, so captures of their own), twice."""
    admin = actor_named(project.db, ADMIN)
    import_generated(project.db, project.blobs, project.audit, admin, 8, size=SIZE,
                     clock=project.clock)
    export_labels(project.db, project.blobs, "coco", tmp_path / "out")
    first = import_folder(project.db, project.blobs, project.audit, admin, "coco",
                          tmp_path / "out", clock=project.clock)
    again = import_folder(project.db, project.blobs, project.audit, admin, "coco",
                          tmp_path / "out", clock=project.clock)
    assert (first.captures_new, first.labels_recorded) == (8, 8)
    assert (again.captures_new, again.labels_recorded, again.labels_unchanged) == (0, 0, 8)
    with project.db.read() as s:
        rows = s.execute(select(Capture.id, Capture.blob_sha256, Device.uid)
                         .join(Device, Device.id == Capture.device_id)).all()
    by_device: dict[str, dict[str, LabelDraft | None]] = {}
    for capture_id, sha, uid in rows:
        by_device.setdefault(uid, {})[sha] = label_of(project.db, capture_id)
    assert by_device["import"] == by_device["generator"]
