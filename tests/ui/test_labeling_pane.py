"""The Label page driven as an annotator would: keys, mouse drags, undo across captures, and
what lands in the database (who labeled, from which source, which boxes)."""

from __future__ import annotations

import math

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication
from sqlalchemy import select

from app.annotate.canvas_geometry import Box, Handle, Point, handle_points
from app.annotate.labeling import LabelDraft, label_of
from app.annotate.widgets.labeling_pane import LabelingPage
from app.core.models import (
    Annotation, AuditEvent, AnnotationBox, AnnotationSource, Capture, LabelClass, ReviewStatus, Role, User,
)
from app.core.project import Project
from app.core.scene import CLASSES
from app.core.users import actor_named, add_user
from app.ui.main_window import MainWindow
from app.ui.pages.base import PageContext
from tests.support.labeling import fill_captures

KEYS = [Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5]


def _open(qtbot, project: Project, runner, user: str = "admin") -> LabelingPage:  # type: ignore[no-untyped-def]
    page = LabelingPage(PageContext(project, actor_named(project.db, user), runner))
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    qtbot.waitExposed(page)
    page.activateWindow()
    page.refresh()  # what the main window does when it shows the page
    _wait_shown(qtbot, page)
    return page


def _wait_shown(qtbot, page: LabelingPage) -> None:  # type: ignore[no-untyped-def]
    """Until the current capture's card and image are on screen (what the annotator sees)."""
    qtbot.waitUntil(lambda: page.current_card is not None and page.canvas.image is not None,
                    timeout=10000)


def _annotator(project: Project, name: str = "maria") -> str:
    add_user(project.db, project.audit, actor_named(project.db, "admin"), name, Role.ANNOTATOR)
    return name


def _current_annotations(project: Project) -> list[tuple[int, str, AnnotationSource, str | None]]:
    """(capture id, author, source, class) of every current annotation."""
    with project.db.read() as s:
        return list(s.execute(
            select(Annotation.capture_id, User.name, Annotation.source, LabelClass.name)
            .join(User, User.id == Annotation.author_id)
            .outerjoin(LabelClass, LabelClass.id == Annotation.class_id)
            .where(Annotation.superseded.is_(False)).order_by(Annotation.capture_id)).all())


def test_fifty_captures_labeled_by_keyboard_alone(qtbot, sqlite_project: Project, runner) -> None:  # type: ignore[no-untyped-def]
    p = sqlite_project
    ids = fill_captures(p, 50, size=96, unpredicted={7, 30})
    name = _annotator(p)
    page = _open(qtbot, p, runner, name)
    assert page.where.text().startswith("1 of 50")
    expected: dict[int, tuple[AnnotationSource, str]] = {}
    for k, capture_id in enumerate(ids):
        assert page.current_capture == capture_id
        card = page.current_card
        assert card is not None
        if k % 4 == 0 and card.prelabel is not None:
            # Nothing changed: Enter confirms the model's pre-label.
            assert "pre-label" in page.heading.text()
            qtbot.keyClick(page.canvas, Qt.Key.Key_Return)
            expected[capture_id] = (AnnotationSource.MODEL_ASSISTED, card.prelabel.class_name)
        else:
            qtbot.keyClick(page.canvas, KEYS[k % 5])
            assert page.heading.text() == f"Class: {CLASSES[k % 5]}"
            # Enter saves and moves on; Right moves on and the move saves.
            last = k == len(ids) - 1
            qtbot.keyClick(page.canvas, Qt.Key.Key_Return if k % 2 or last else Qt.Key.Key_Right)
            expected[capture_id] = (AnnotationSource.HUMAN, CLASSES[k % 5])
        if k < len(ids) - 1:
            _wait_shown(qtbot, page)
    qtbot.waitUntil(lambda: page.saved_count == 50 and not page.saver.busy, timeout=20000)
    assert page.status.text() == "Saved"
    assert "50 saved this session" in page.where.text()
    found = {cid: (author, source, cls) for cid, author, source, cls in _current_annotations(p)}
    assert found == {cid: (name, source, cls) for cid, (source, cls) in expected.items()}
    assert {s for s, _ in expected.values()} == {AnnotationSource.HUMAN,
                                                 AnnotationSource.MODEL_ASSISTED}
    with p.db.read() as s:
        assert set(s.scalars(select(Capture.review_status))) == {ReviewStatus.REVIEWED}
        audited = s.execute(select(AuditEvent.object_id, AuditEvent.after["source"].as_string())
                            .where(AuditEvent.actor == name,
                                   AuditEvent.action == "annotation.create")).all()
    assert sorted((int(cid), source) for cid, source in audited) == sorted(
        (cid, source.value) for cid, (source, _) in expected.items())


def _screen(page: LabelingPage, x: float, y: float) -> QPoint:
    at = page.canvas.view.to_screen(Point(x, y))
    return QPoint(round(at.x), round(at.y))


def _drag(qtbot, page: LabelingPage, start: QPoint, end: QPoint,  # type: ignore[no-untyped-def]
          button: Qt.MouseButton = Qt.MouseButton.LeftButton) -> None:
    canvas = page.canvas
    qtbot.mousePress(canvas, button, pos=start)
    middle = QPoint((start.x() + end.x()) // 2, (start.y() + end.y()) // 2)
    qtbot.mouseMove(canvas, middle)
    qtbot.mouseMove(canvas, end)
    qtbot.mouseRelease(canvas, button, pos=end)


def _close(a: Box, b: Box, slack: float) -> bool:
    return a.class_name == b.class_name and all(
        math.isclose(u, v, abs_tol=slack) for u, v in ((a.x, b.x), (a.y, b.y),
                                                       (a.width, b.width), (a.height, b.height)))


def _db_boxes(project: Project, capture_id: int) -> list[tuple[str, float, float, float, float]]:
    label = label_of(project.db, capture_id, "admin")
    assert label is not None
    return [(b.class_name, b.x, b.y, b.width, b.height) for b in label.boxes]


def test_draw_move_resize_then_undo_three_times_and_redo(qtbot, sqlite_project: Project,  # type: ignore[no-untyped-def]
                                                         runner) -> None:
    p = sqlite_project
    fill_captures(p, 3, size=128, unpredicted={2})  # the newest has no pre-label
    page = _open(qtbot, p, runner)
    original = page.current_document
    assert original is not None and original.empty
    qtbot.keyClick(page.canvas, Qt.Key.Key_2)  # the class new boxes get: scratch
    zoom = page.canvas.view.zoom
    slack = 1.0 / zoom  # one screen pixel, in image pixels

    _drag(qtbot, page, _screen(page, 20, 30), _screen(page, 70, 90))
    drawn = page.current_document.boxes
    assert len(drawn) == 1 and _close(drawn[0], Box("scratch", 20, 30, 50, 60), slack)
    assert page.canvas.selected == 0

    _drag(qtbot, page, _screen(page, 40, 50), _screen(page, 60, 55))  # move by (20, 5)
    moved = page.current_document.boxes[0]
    assert _close(moved, Box("scratch", drawn[0].x + 20, drawn[0].y + 5, drawn[0].width,
                             drawn[0].height), 2 * slack)

    corner = handle_points(moved)[Handle.BOTTOM_RIGHT]
    _drag(qtbot, page, _screen(page, corner.x, corner.y), _screen(page, 120, 125))
    resized = page.current_document.boxes[0]
    assert _close(resized, Box("scratch", moved.x, moved.y, 120 - moved.x, 125 - moved.y),
                  2 * slack)
    assert page.canvas.boxes == (resized,)  # what is on screen is the label

    # Autosave, a second after the last edit: the database holds the resized box.
    qtbot.waitUntil(lambda: page.status.text() == "Saved", timeout=10000)
    cid = page.current_capture
    assert _db_boxes(p, cid) == [("scratch", resized.x, resized.y, resized.width,
                                  resized.height)]

    for _ in range(3):
        qtbot.keyClick(page.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert page.current_document.boxes == ()
    assert page.canvas.boxes == ()
    assert page.heading.text() == "Class: scratch"  # the class was set before the drawing

    qtbot.keyClick(page.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    assert page.current_document.boxes == drawn
    qtbot.keyClick(page.canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(page.canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert page.current_document.boxes == (resized,)


def test_relabel_search_and_delete_a_box(qtbot, sqlite_project: Project, runner) -> None:  # type: ignore[no-untyped-def]
    p = sqlite_project
    fill_captures(p, 2, size=128)
    page = _open(qtbot, p, runner)
    qtbot.keyClick(page.canvas, Qt.Key.Key_2)
    _drag(qtbot, page, _screen(page, 10, 10), _screen(page, 50, 40))
    _drag(qtbot, page, _screen(page, 60, 60), _screen(page, 100, 110))
    assert [b.class_name for b in page.current_document.boxes] == ["scratch", "scratch"]
    assert page.canvas.selected == 1

    qtbot.keyClick(page.canvas, Qt.Key.Key_3)  # the selected box and the capture: crack
    assert [b.class_name for b in page.current_document.boxes] == ["scratch", "crack"]
    assert page.current_document.class_name == "crack"

    qtbot.mouseClick(page.canvas, Qt.MouseButton.LeftButton, pos=_screen(page, 20, 20))
    assert page.canvas.selected == 0
    # The searchable list: type part of a name, Enter picks the first class left.
    qtbot.keyClicks(page.class_list.search, "stai")
    assert page.class_list.visible_names() == ["stain"]
    qtbot.keyClick(page.class_list.search, Qt.Key.Key_Return)
    assert [b.class_name for b in page.current_document.boxes] == ["stain", "crack"]
    assert page.class_list.list.currentItem().text().endswith("stain")
    # A click on a row relabels too.
    page.class_list.search.clear()
    row = page.class_list.list.item(CLASSES.index("missing_hole"))
    qtbot.mouseClick(page.class_list.list.viewport(), Qt.MouseButton.LeftButton,
                     pos=page.class_list.list.visualItemRect(row).center())
    assert page.current_document.boxes[0].class_name == "missing_hole"

    qtbot.keyClick(page.canvas, Qt.Key.Key_Delete)
    assert [b.class_name for b in page.current_document.boxes] == ["crack"]
    assert page.canvas.selected is None
    qtbot.keyClick(page.canvas, Qt.Key.Key_Return)  # save, next
    _wait_shown(qtbot, page)
    qtbot.waitUntil(lambda: page.saved_count == 1 and not page.saver.busy, timeout=10000)
    saved = page.walk.ids[0]
    assert [b[0] for b in _db_boxes(p, saved)] == ["crack"]
    assert label_of(p.db, saved, "admin").class_name == "missing_hole"


def _wheel(page: LabelingPage, at: QPoint, notches: int,
           modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.ControlModifier) -> None:
    canvas = page.canvas
    event = QWheelEvent(QPointF(at), QPointF(canvas.mapToGlobal(at)), QPoint(),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton, modifiers,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas, event)


def test_zoom_and_pan_keep_boxes_in_image_coordinates(qtbot, sqlite_project: Project,  # type: ignore[no-untyped-def]
                                                      runner) -> None:
    p = sqlite_project
    fill_captures(p, 1, size=128)
    page = _open(qtbot, p, runner)
    _drag(qtbot, page, _screen(page, 30, 30), _screen(page, 60, 70))
    box = page.current_document.boxes[0]
    fitted = page.canvas.view

    under = page.canvas.to_image(QPointF(300, 200))
    _wheel(page, QPoint(300, 200), 2)  # Ctrl+wheel zooms about the pointer
    assert page.canvas.view.zoom == pytest.approx(fitted.zoom * 1.25 ** 2)
    after = page.canvas.to_image(QPointF(300, 200))
    assert (after.x, after.y) == pytest.approx((under.x, under.y))
    qtbot.keyClick(page.canvas, Qt.Key.Key_Plus)
    zoomed = page.canvas.view
    assert zoomed.zoom == pytest.approx(fitted.zoom * 1.25 ** 3)
    _drag(qtbot, page, QPoint(200, 200), QPoint(260, 150), Qt.MouseButton.MiddleButton)
    assert (page.canvas.view.offset_x - zoomed.offset_x,
            page.canvas.view.offset_y - zoomed.offset_y) == (60, -50)
    # Space + drag pans too, and draws nothing.
    panned = page.canvas.view
    qtbot.keyPress(page.canvas, Qt.Key.Key_Space)
    _drag(qtbot, page, QPoint(400, 400), QPoint(380, 390))
    qtbot.keyRelease(page.canvas, Qt.Key.Key_Space)
    assert page.canvas.view.offset_x == panned.offset_x - 20
    assert page.current_document.boxes == (box,)  # the label never moved
    # A box drawn now is in image pixels too: the same image points, whatever the view.
    _drag(qtbot, page, _screen(page, 80, 80), _screen(page, 100, 110))
    drawn = page.current_document.boxes[1]
    slack = 1.0 / page.canvas.view.zoom
    assert _close(drawn, Box(drawn.class_name, 80, 80, 20, 30), slack)
    qtbot.keyClick(page.canvas, Qt.Key.Key_F)  # fit again
    assert page.canvas.view == fitted


def test_undo_after_next_goes_back_to_the_previous_capture_and_saves_there(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner) -> None:
    p = sqlite_project
    first, second, _ = fill_captures(p, 3, size=96)
    page = _open(qtbot, p, runner)
    qtbot.keyClick(page.canvas, Qt.Key.Key_2)
    qtbot.keyClick(page.canvas, Qt.Key.Key_3)
    qtbot.keyClick(page.canvas, Qt.Key.Key_Right)  # moving on saves "crack"
    _wait_shown(qtbot, page)
    assert page.current_capture == second
    qtbot.keyClick(page.canvas, Qt.Key.Key_4)
    qtbot.waitUntil(lambda: page.saved_count == 2 and not page.saver.busy, timeout=10000)
    assert label_of(p.db, first, "admin").class_name == "crack"

    qtbot.keyClick(page.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert page.current_capture == second and page.current_document.untouched_prelabel
    qtbot.keyClick(page.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    # Back on the first capture, its second edit undone, and the label saved again.
    assert page.current_capture == first
    assert page.heading.text() == "Class: scratch"
    qtbot.waitUntil(lambda: page.status.text() == "Saved", timeout=10000)
    assert label_of(p.db, first, "admin").class_name == "scratch"
    # Redo goes forward again, to the second capture.
    qtbot.keyClick(page.canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(page.canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert page.current_capture == second and page.heading.text() == "Class: missing_hole"


def test_undo_back_to_the_unconfirmed_prelabel_or_to_nothing_withdraws_the_saved_label(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner) -> None:
    p = sqlite_project
    predicted, unpredicted, _ = fill_captures(p, 3, size=96, unpredicted={1})
    page = _open(qtbot, p, runner)
    assert page.current_capture == predicted and page.current_document.untouched_prelabel
    qtbot.keyClick(page.canvas, Qt.Key.Key_3)
    qtbot.waitUntil(lambda: page.status.text() == "Saved", timeout=10000)
    assert label_of(p.db, predicted, "admin").class_name == "crack"

    qtbot.keyClick(page.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert page.current_document.untouched_prelabel
    # What the pane shows (the model's unconfirmed guess) is what the database holds: no label.
    qtbot.waitUntil(lambda: label_of(p.db, predicted, "admin") is None and not page.saver.busy,
                    timeout=10000)
    assert page.status.text().startswith("Pre-label not confirmed")
    with p.db.read() as s:
        assert s.get(Capture, predicted).review_status is ReviewStatus.UNREVIEWED
        assert s.scalar(select(AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(1)) \
            == "annotation.retract"

    qtbot.keyClick(page.canvas, Qt.Key.Key_Right)
    _wait_shown(qtbot, page)
    assert page.current_capture == unpredicted and page.current_document.empty
    qtbot.keyClick(page.canvas, Qt.Key.Key_2)
    qtbot.keyClick(page.canvas, Qt.Key.Key_Right)  # moving on saves it
    qtbot.waitUntil(lambda: label_of(p.db, unpredicted, "admin") is not None, timeout=10000)
    qtbot.keyClick(page.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert page.current_capture == unpredicted and page.current_document.empty
    qtbot.keyClick(page.canvas, Qt.Key.Key_Right)  # moving on withdraws it
    qtbot.waitUntil(lambda: label_of(p.db, unpredicted, "admin") is None and not page.saver.busy,
                    timeout=10000)
    # Nothing was lost on the way: redo brings the label back, and it is saved again.
    qtbot.keyClick(page.canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert page.current_capture == unpredicted
    qtbot.keyClick(page.canvas, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: label_of(p.db, unpredicted, "admin") is not None, timeout=10000)
    assert label_of(p.db, unpredicted, "admin").class_name == "scratch"


def _open_labeled(qtbot, project: Project, runner, user: str) -> LabelingPage:  # type: ignore[no-untyped-def]
    """The page walking the captures labeled already (a second opinion)."""
    page = LabelingPage(PageContext(project, actor_named(project.db, user), runner))
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    page.refresh()
    page.walk_combo.setCurrentIndex(page.walk_combo.findData(ReviewStatus.REVIEWED))
    _wait_shown(qtbot, page)
    return page


def test_two_annotators_each_keep_their_own_label(qtbot, sqlite_project: Project,  # type: ignore[no-untyped-def]
                                                  runner) -> None:
    p = sqlite_project
    (capture,) = fill_captures(p, 1, size=96)
    for name, key in ((_annotator(p, "maria"), Qt.Key.Key_2), (_annotator(p, "jon"), Qt.Key.Key_5)):
        page = _open(qtbot, p, runner, name) if name == "maria" else _open_labeled(qtbot, p,
                                                                                  runner, name)
        # Each starts from the pre-label, not from the other's label.
        assert page.current_document.untouched_prelabel
        qtbot.keyClick(page.canvas, key)
        qtbot.keyClick(page.canvas, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda page=page: page.saved_count == 1 and not page.saver.busy,
                        timeout=10000)
        page.close()
    assert [(author, source, cls) for _, author, source, cls in _current_annotations(p)] == [
        ("maria", AnnotationSource.HUMAN, "scratch"), ("jon", AnnotationSource.HUMAN, "stain")]
    with p.db.read() as s:
        assert s.scalar(select(AnnotationBox.id)) is None
        assert s.scalar(select(Capture.review_status).where(Capture.id == capture)) \
            == ReviewStatus.REVIEWED


def test_closing_the_window_within_the_autosave_second_keeps_the_edit(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner, settings) -> None:
    p = sqlite_project
    first, _ = fill_captures(p, 2, size=96)
    errors: list[tuple[str, str]] = []
    window = MainWindow(PageContext(p, actor_named(p.db, "admin"), runner), [LabelingPage],
                        settings=settings, show_error=lambda *error: errors.append(error))
    qtbot.addWidget(window)
    window.show()
    window.show_page("Label")
    page = window.page("Label")
    assert isinstance(page, LabelingPage)
    _wait_shown(qtbot, page)
    qtbot.keyClick(page.canvas, Qt.Key.Key_3)
    assert page.status.text() == "Unsaved changes"  # the autosave second has not passed
    window.close()  # stops the task runner: the page saves before that
    assert label_of(p.db, first, "admin") == LabelDraft("crack")
    assert errors == []
