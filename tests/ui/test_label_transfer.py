"""Export labels and import labeled images from the Datasets page, as a person would: the
button, the dialog's fields, Browse (answered by the test's folder chooser), the button that
starts it; then what is on disk and what landed in the other project's database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from sqlalchemy import select

from app.annotate.formats import Format
from app.annotate.labeling import BoxDraft, LabelDraft, save_label
from app.annotate.widgets.label_transfer import ExportLabelsDialog, ImportLabelsDialog
from app.core.models import Annotation, AnnotationSource, Capture, Device, LabelClass, Role
from app.core.project import Project, init_project
from app.core.users import actor_named, add_user
from app.ui.pages.base import PageContext
from app.ui.pages.datasets import DatasetsPage
from tests.support.labeling import fill_captures

LABELS = {0: LabelDraft("ok"), 1: LabelDraft("scratch", (BoxDraft("scratch", 10, 12, 30, 20),)),
          2: LabelDraft("crack", (BoxDraft("crack", 40, 40, 25, 60),
                                  BoxDraft("crack", 5, 5, 20, 20))),
          3: LabelDraft("stain")}
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def labelled(sqlite_project: Project) -> Project:
    """Five captures, four of them labeled by the admin (with boxes on two)."""
    ids = fill_captures(sqlite_project, 5, size=96)
    admin = actor_named(sqlite_project.db, "admin")
    for n, draft in LABELS.items():
        save_label(sqlite_project.db, sqlite_project.audit, admin, ids[n], draft)
    return sqlite_project


def _page(qtbot, project: Project, runner, folder: Path, user: str = "admin") -> DatasetsPage:  # type: ignore[no-untyped-def]
    page = DatasetsPage(PageContext(project, actor_named(project.db, user), runner),
                        choose_folder=lambda caption: folder)
    qtbot.addWidget(page)
    page.resize(1100, 600)
    page.show()
    return page


def _pick(combo, value) -> None:  # type: ignore[no-untyped-def]
    combo.setCurrentIndex(combo.findData(value))


def _browse_button(dialog) -> QPushButton:  # type: ignore[no-untyped-def]
    return next(b for b in dialog.findChildren(QPushButton) if b.text() == "Browse...")


def _export(qtbot, page: DatasetsPage, fmt: Format) -> ExportLabelsDialog:  # type: ignore[no-untyped-def]
    qtbot.mouseClick(page.export_button, LEFT)
    dialog = page.export_dialog
    assert dialog is not None and dialog.isVisible()
    _pick(dialog.format_combo, fmt)
    assert not dialog.ok_button.isEnabled()  # no folder yet
    qtbot.mouseClick(_browse_button(dialog), LEFT)
    assert dialog.ok_button.isEnabled()
    qtbot.mouseClick(dialog.ok_button, LEFT)
    return dialog


def test_export_to_coco_then_import_into_another_project(qtbot, labelled: Project, runner,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    out = tmp_path / "coco-export"
    page = _page(qtbot, labelled, runner, out)
    _export(qtbot, page, Format.COCO)
    qtbot.waitUntil(lambda: page.result.text().startswith("Exported"), timeout=20000)
    assert "Exported 4 images (3 boxes" in page.result.text()
    document = json.loads((out / "annotations" / "instances_default.json").read_text())
    assert len(document["images"]) == 4
    assert len(document["annotations"]) >= 3
    assert len(list((out / "images").iterdir())) == 4  # the images were copied too

    other = init_project(tmp_path / "other", admin="admin")
    try:
        page2 = _page(qtbot, other, runner, out)
        qtbot.mouseClick(page2.import_button, LEFT)
        dialog = page2.import_dialog
        assert isinstance(dialog, ImportLabelsDialog) and dialog.isVisible()
        _pick(dialog.format_combo, Format.COCO)
        dialog.device.setText("lab-dataset")
        qtbot.mouseClick(_browse_button(dialog), LEFT)
        assert dialog.folder.text() == str(out)
        qtbot.mouseClick(dialog.ok_button, LEFT)
        qtbot.waitUntil(lambda: page2.result.text().startswith("Imported"), timeout=20000)
        assert "4 new captures" in page2.result.text()
        with other.db.read() as s:
            rows = s.execute(
                select(LabelClass.name, Annotation.source, Device.uid)
                .join(LabelClass, LabelClass.id == Annotation.class_id)
                .join(Capture, Capture.id == Annotation.capture_id)
                .join(Device, Device.id == Capture.device_id)).all()
        assert sorted(name for name, _, _ in rows) == sorted(d.class_name for d in LABELS.values())
        assert {source for _, source, _ in rows} == {AnnotationSource.IMPORTED}
        assert {uid for _, _, uid in rows} == {"lab-dataset"}
    finally:
        other.close()


def test_export_into_a_folder_with_files_says_nothing_was_exported(  # type: ignore[no-untyped-def]
        qtbot, labelled: Project, runner, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("someone's file")
    page = _page(qtbot, labelled, runner, out)
    _export(qtbot, page, Format.YOLO)
    qtbot.waitUntil(lambda: page.result.text().startswith("Nothing was exported"), timeout=20000)
    assert str(out) in page.result.text()
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # nothing lost, nothing added


def test_imagefolder_offers_to_leave_out_boxes_and_says_what_it_left_out(  # type: ignore[no-untyped-def]
        qtbot, labelled: Project, runner, tmp_path: Path) -> None:
    out = tmp_path / "folders"
    page = _page(qtbot, labelled, runner, out)
    qtbot.mouseClick(page.export_button, LEFT)
    dialog = page.export_dialog
    _pick(dialog.format_combo, Format.COCO)
    assert dialog.lossy.isHidden()  # COCO holds everything: nothing to leave out
    _pick(dialog.format_combo, Format.IMAGEFOLDER)
    assert not dialog.lossy.isHidden()
    dialog.lossy.setChecked(True)
    dialog.folder.setText(str(out))
    qtbot.mouseClick(dialog.ok_button, LEFT)
    qtbot.waitUntil(lambda: page.result.text().startswith("Exported"), timeout=20000)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["crack", "ok", "scratch",
                                                                    "stain"]


def test_an_annotator_may_export_but_not_import(qtbot, labelled: Project, runner,  # type: ignore[no-untyped-def]
                                                tmp_path: Path) -> None:
    add_user(labelled.db, labelled.audit, actor_named(labelled.db, "admin"), "ann", Role.ANNOTATOR)
    page = _page(qtbot, labelled, runner, tmp_path / "x", user="ann")
    assert page.export_button.isEnabled()
    assert not page.import_button.isEnabled()
    assert "annotator" in page.import_button.toolTip()
