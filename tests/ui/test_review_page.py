"""The Review page driven by keys as a reviewer would, over a queue mined for real
(tests/support/review_queue.py: generated captures, edge and observer predictions, and the
real ``mine_disagreements``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select, update

from app.annotate.review import decide_item, queue_counts
from app.annotate.widgets.review_page import IMAGE_SIDE, PREFETCH, ReviewPage
from app.core.errors import PermissionDenied
from app.core.models import (
    Annotation, AnnotationSource, AuditEvent, Capture, CaptureReason, Device, LabelClass,
    ReviewItem, ReviewKind, ReviewStatus, Role,
)
from app.core.project import Project
from app.core.review_queue import open_items
from app.core.roles import ROLE_PERMISSIONS, Actor, Permission
from app.core.scene import CLASSES
from app.core.users import actor_named, add_user
from app.ui.main_window import MainWindow
from app.ui.pages.base import PageContext
from app.ui.thumbnails import ThumbnailState
from tests.support.review_queue import LINE_1, LINE_2, expected_items, fill_queue


@dataclass
class Queue:
    project: Project
    annotator: Actor


@pytest.fixture
def queue(sqlite_project: Project) -> Queue:
    fill_queue(sqlite_project)
    admin = actor_named(sqlite_project.db, "admin")
    annotator = add_user(sqlite_project.db, sqlite_project.audit, admin, "ann", Role.ANNOTATOR)
    return Queue(sqlite_project, annotator)


@pytest.fixture
def opened(qtbot, queue: Queue, runner) -> Iterator[ReviewPage]:  # type: ignore[no-untyped-def]
    """The page as the annotator sees it, shown, active, with its first item."""
    page = _open(qtbot, queue.project, queue.annotator, runner)
    yield page


def _open(qtbot, project: Project, actor: Actor, runner) -> ReviewPage:  # type: ignore[no-untyped-def]
    page = ReviewPage(PageContext(project, actor, runner))
    qtbot.addWidget(page)
    page.resize(1100, 700)
    with qtbot.waitActive(page):  # the answer keys are shortcuts of the active window
        page.show()
        page.activateWindow()
    page.refresh()  # what the main window does when it shows the page
    qtbot.waitUntil(lambda: page.current_row() is not None and len(page.classes) == 5,
                    timeout=10000)
    return page


def _key(qtbot, page: ReviewPage, key: Qt.Key,  # type: ignore[no-untyped-def]
         modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.keyClick(page, key, modifier)


def _answer(qtbot, page: ReviewPage, key: Qt.Key) -> int:  # type: ignore[no-untyped-def]
    """Press an answer key and wait until the answer is committed; its capture id."""
    capture_id = page.current_row().capture_id
    with qtbot.waitSignal(page.answer_saved, timeout=10000,
                          check_params_cb=lambda saved: saved == capture_id):
        _key(qtbot, page, key)
    return capture_id


def _label(project: Project, capture_id: int) -> tuple[str, int, AnnotationSource]:
    """The capture's current label: class, author id, source."""
    with project.db.read() as session:
        rows = session.execute(
            select(LabelClass.name, Annotation.author_id, Annotation.source)
            .join(LabelClass, LabelClass.id == Annotation.class_id)
            .where(Annotation.capture_id == capture_id, Annotation.superseded.is_(False))).all()
    assert len(rows) == 1, rows
    return tuple(rows[0])  # type: ignore[return-value]


def _choose(combo, text: str) -> None:  # type: ignore[no-untyped-def]
    index = combo.findText(text)
    assert index >= 0, f"{text!r} is not offered"
    combo.setCurrentIndex(index)


def _shown_ids(page: ReviewPage) -> list[int]:
    return [row.item_id for row in page.walk.rows]


def test_the_first_item_is_the_top_one_and_each_key_answers_at_once(qtbot, queue, opened) -> None:  # type: ignore[no-untyped-def]
    page, project = opened, queue.project
    top = open_items(project.db, limit=1)[0]
    first = page.current_row()
    assert (first.item_id, first.kind) == (top.item_id, ReviewKind.FALSE_NEGATIVE)
    assert first.priority == max(q.priority for q in open_items(project.db, limit=100))
    assert page.edge_panel.summary() == (
        f"Edge model: ok {first.edge_confidence:.2f} (edge-3)")
    assert page.observer_panel.summary() == (
        f"Observer: scratch {first.observer_confidence:.2f} (observer-1)")
    assert "the edge model passed a part the observer thinks is defective" in (
        page.kind_label.text())
    counts = queue_counts(project.db)
    qtbot.waitUntil(lambda: page.counts_label.text().startswith(f"{counts.waiting} waiting"),
                    timeout=5000)
    assert f"False negatives {counts.by_kind[ReviewKind.FALSE_NEGATIVE]}" in (
        page.counts_label.text())
    # The image and the next PREFETCH ones are decoded before they are needed.
    upcoming = page.walk.rows[:1 + PREFETCH]
    qtbot.waitUntil(lambda: all(page.thumbnails.state(r.blob_sha256, IMAGE_SIDE)
                                is ThumbnailState.READY for r in upcoming), timeout=10000)

    # E: the next item is on screen as the key returns, its image already decoded; the
    # label is written behind it.
    second = page.walk.rows[1]
    with qtbot.waitSignal(page.answer_saved, timeout=10000) as saved:
        _key(qtbot, page, Qt.Key.Key_E)
        assert page.current_row() is second
        assert page.edge_panel.summary().startswith(
            f"Edge model: {second.edge_class} {second.edge_confidence:.2f}")
        assert page.image.pixmap().cacheKey() == page.thumbnails.pixmap(
            second.blob_sha256, IMAGE_SIDE).cacheKey()
        assert first.item_id in page.walk.pending
    assert saved.args == [first.capture_id]
    assert _label(project, first.capture_id) == ("ok", queue.annotator.user_id,
                                                AnnotationSource.HUMAN)
    with project.db.read() as session:
        item = session.get(ReviewItem, first.item_id)
        assert item.resolved_at is not None and item.resolved_by_id == queue.annotator.user_id
        assert session.get(Capture, first.capture_id).review_status is ReviewStatus.REVIEWED
        event = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "annotation.create",
            AuditEvent.object_id == str(first.capture_id))).one()
        assert event.actor == "ann" and event.after["source"] == "human"
    assert first.item_id not in {q.item_id for q in open_items(project.db, limit=100)}

    # O: the observer's class.
    captured = _answer(qtbot, page, Qt.Key.Key_O)
    assert _label(project, captured) == (second.observer_class, queue.annotator.user_id,
                                         AnnotationSource.HUMAN)
    # 4: the schema's 4th class; 2 answers as O does.
    captured = _answer(qtbot, page, Qt.Key.Key_4)
    assert _label(project, captured)[:2] == (CLASSES[3], queue.annotator.user_id)
    fourth = page.current_row()
    captured = _answer(qtbot, page, Qt.Key.Key_2)
    assert _label(project, captured)[0] == fourth.observer_class
    # The class picker: search by part of the name, Enter.
    page.search_action.trigger()
    qtbot.keyClicks(page.class_picker.lineEdit(), "stai")
    with qtbot.waitSignal(page.answer_saved, timeout=10000) as saved:
        qtbot.keyClick(page.class_picker.lineEdit(), Qt.Key.Key_Return)
    assert _label(project, saved.args[0])[0] == "stain"
    assert page.class_picker.currentText() == ""
    assert len(page.walk.pending) == 0
    qtbot.waitUntil(lambda: page.counts_label.text().startswith(
        f"{counts.waiting - 5} waiting"), timeout=5000)


def test_a_skipped_item_waits_at_the_end_of_the_queue(qtbot, queue, opened) -> None:  # type: ignore[no-untyped-def]
    page, project = opened, queue.project
    _choose(page.device_combo, LINE_2)
    line_2 = expected_items(project, Capture.device_id == _device_id(project, LINE_2))
    qtbot.waitUntil(lambda: _shown_ids(page) == line_2, timeout=5000)
    skipped = page.current_row()
    assert _answer(qtbot, page, Qt.Key.Key_S) == skipped.capture_id
    with project.db.read() as session:
        assert session.get(Capture, skipped.capture_id).review_status is ReviewStatus.SKIPPED
        assert session.get(ReviewItem, skipped.item_id).resolved_at is None  # not lost
        assert session.scalars(select(AuditEvent.actor).where(
            AuditEvent.action == "review.skip")).all() == ["ann"]
    assert page.current_row().item_id == line_2[1]
    qtbot.waitUntil(lambda: "1 skipped" in page.counts_label.text(), timeout=5000)
    # Walking on, the skipped item comes back once the rest is done, and gets its answer.
    for _ in line_2[1:]:
        _answer(qtbot, page, Qt.Key.Key_E)
    qtbot.waitUntil(lambda: page.current_row() is not None
                    and page.current_row().item_id == skipped.item_id, timeout=5000)
    assert "You skipped it" in page.answer_label.text()
    _answer(qtbot, page, Qt.Key.Key_O)
    assert _label(project, skipped.capture_id)[0] == skipped.observer_class
    assert page.current_row() is None
    assert "through the queue" in page.image.text()
    assert expected_items(project, Capture.device_id == _device_id(project, LINE_2)) == []

    # Opened again (F5), the queue lists a skipped item after every waiting one.
    _choose(page.device_combo, LINE_1)
    line_1 = expected_items(project, Capture.device_id == _device_id(project, LINE_1))
    qtbot.waitUntil(lambda: _shown_ids(page) == line_1, timeout=5000)
    again = page.current_row()
    _answer(qtbot, page, Qt.Key.Key_S)
    page.refresh()
    qtbot.waitUntil(lambda: _shown_ids(page) == [*line_1[1:], again.item_id], timeout=5000)
    assert page.walk.rows[-1].skipped
    page.walk.move(len(line_1) - 1)
    assert "Skipped earlier" in page.answer_label.text()


def _device_id(project: Project, uid: str) -> int:
    with project.db.read() as session:
        return session.scalar(select(Device.id).where(Device.uid == uid))


def test_filters_show_exactly_the_matching_items(qtbot, queue, opened) -> None:  # type: ignore[no-untyped-def]
    page, project = opened, queue.project
    everything = expected_items(project)
    assert _shown_ids(page) == everything and len(everything) == 20
    qtbot.waitUntil(lambda: page.device_combo.count() == 3, timeout=5000)

    _choose(page.device_combo, LINE_1)
    line_1 = _device_id(project, LINE_1)
    expected = expected_items(project, Capture.device_id == line_1)
    qtbot.waitUntil(lambda: _shown_ids(page) == expected, timeout=5000)
    assert len(expected) == 12 and {r.device_uid for r in page.walk.rows} == {LINE_1}

    _choose(page.kind_combo, "False positives")
    expected = expected_items(project, Capture.device_id == line_1,
                         ReviewItem.kind == ReviewKind.FALSE_POSITIVE)
    qtbot.waitUntil(lambda: _shown_ids(page) == expected, timeout=5000)
    assert expected and {r.kind for r in page.walk.rows} == {ReviewKind.FALSE_POSITIVE}
    assert "the edge model rejected a part the observer thinks is good" in page.kind_label.text()

    _choose(page.device_combo, "All devices")
    _choose(page.kind_combo, "Any kind")
    _choose(page.class_combo, "crack")  # the observer's class in the disagreements only
    crack = _class_id(project, "crack")
    expected = expected_items(project, (Capture.edge_class_id == crack)
                         | (Capture.observer_class_id == crack))
    qtbot.waitUntil(lambda: _shown_ids(page) == expected, timeout=5000)
    assert len(expected) == 5 and {r.kind for r in page.walk.rows} == {ReviewKind.DISAGREEMENT}
    _choose(page.class_combo, "scratch")  # the edge's in some, the observer's in others
    scratch = _class_id(project, "scratch")
    expected = expected_items(project, (Capture.edge_class_id == scratch)
                         | (Capture.observer_class_id == scratch))
    qtbot.waitUntil(lambda: _shown_ids(page) == expected, timeout=5000)
    assert {r.kind for r in page.walk.rows} == {
        ReviewKind.FALSE_NEGATIVE, ReviewKind.FALSE_POSITIVE, ReviewKind.DISAGREEMENT}

    _choose(page.class_combo, "Any class")
    _choose(page.reason_combo, "Low confidence")  # why the device kept the frame
    expected = expected_items(project, Capture.reason == CaptureReason.LOW_CONFIDENCE)
    qtbot.waitUntil(lambda: _shown_ids(page) == expected, timeout=5000)
    assert len(expected) == 7
    _choose(page.kind_combo, "Spot checks")
    qtbot.waitUntil(lambda: page.walk.rows == [] and "Nothing to review" in page.image.text(),
                    timeout=5000)
    assert not page.accept_edge_action.isEnabled()


def _class_id(project: Project, name: str) -> int:
    with project.db.read() as session:
        return session.scalar(select(LabelClass.id).where(LabelClass.name == name))


def test_back_changes_an_answer_with_a_superseding_label(qtbot, queue, opened) -> None:  # type: ignore[no-untyped-def]
    page, project = opened, queue.project
    first = page.current_row()
    _answer(qtbot, page, Qt.Key.Key_E)
    second = page.current_row()
    _answer(qtbot, page, Qt.Key.Key_S)
    _key(qtbot, page, Qt.Key.Key_Backspace)
    assert page.current_row() is second and "You skipped it (saved)" in page.answer_label.text()
    _key(qtbot, page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Z: back too
    assert page.current_row() is first
    assert "You labeled it ok (saved)" in page.answer_label.text()
    assert not page.back_action.isEnabled()  # nothing before the first

    _answer(qtbot, page, Qt.Key.Key_3)  # changed: crack
    assert page.current_row() is second  # and on to where it was
    assert _label(project, first.capture_id) == ("crack", queue.annotator.user_id,
                                                AnnotationSource.HUMAN)
    with project.db.read() as session:
        history = session.execute(
            select(LabelClass.name, Annotation.superseded, Annotation.source)
            .join(LabelClass, LabelClass.id == Annotation.class_id)
            .where(Annotation.capture_id == first.capture_id).order_by(Annotation.id)).all()
    # The first answer and the changed one: only the newest is current.
    assert history == [("ok", True, AnnotationSource.HUMAN),
                       ("crack", False, AnnotationSource.HUMAN)]

    # Going back to the skipped one and answering it resolves it after all.
    _answer(qtbot, page, Qt.Key.Key_O)
    assert _label(project, second.capture_id)[0] == second.observer_class
    assert expected_items(project, skipped=True) == []


def test_a_failed_answer_puts_the_item_back_and_says_why(qtbot, queue, runner,  # type: ignore[no-untyped-def]
                                                        settings) -> None:
    project = queue.project
    context = PageContext(project, queue.annotator, runner)
    errors: list[tuple[str, str]] = []
    window = MainWindow(context, [ReviewPage], settings=settings,
                        show_error=lambda title, message: errors.append((title, message)))
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    window.show_page("Review")
    page = window.page("Review")
    assert isinstance(page, ReviewPage)
    qtbot.waitUntil(lambda: page.current_row() is not None and len(page.classes) == 5,
                    timeout=10000)
    first = page.current_row()
    # Meanwhile an engineer retires the edge model's class of this capture.
    with project.db.write() as session:
        session.execute(update(LabelClass).where(LabelClass.name == first.edge_class)
                        .values(retired=True))
    with qtbot.waitSignal(page.answer_failed, timeout=10000):
        qtbot.keyClick(window, Qt.Key.Key_E)
        assert page.current_row() is not first  # optimistic: it moved on
    assert page.current_row() is first  # and came back
    assert page.answer_label.text() == ""  # unanswered again
    assert "not a class of this project" in page.status.text()
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)  # and the window said so
    assert "not a class of this project" in errors[0][1]
    with project.db.read() as session:
        assert session.get(ReviewItem, first.item_id).resolved_at is None
    _answer(qtbot, page, Qt.Key.Key_O)  # the reviewer answers it another way
    assert _label(project, first.capture_id)[0] == first.observer_class
    window.close()
    with qtbot.waitSignal(page.destroyed, timeout=5000):
        window.deleteLater()  # the page's image decoders stop when it goes
    assert not any(t.name.startswith("ui-thumbs") for t in threading.enumerate())


def test_without_the_review_permission_the_answer_keys_are_disabled(  # type: ignore[no-untyped-def]
        qtbot, queue, runner, monkeypatch) -> None:
    """Every role has REVIEW (annotators, engineers, admins), so no user lacks it; the role
    table is narrowed for this test to show what such a role would meet."""
    assert all(Permission.REVIEW in ROLE_PERMISSIONS[role] for role in Role)
    monkeypatch.setitem(ROLE_PERMISSIONS, Role.ANNOTATOR,
                        frozenset({Permission.VIEW, Permission.ANNOTATE}))
    project = queue.project
    page = _open(qtbot, project, queue.annotator, runner)
    shown = page.current_row()
    for action in (page.accept_edge_action, page.accept_observer_action, page.skip_action,
                   *page.class_actions):
        assert not action.isEnabled()
    for button in (page.edge_panel.accept_button, page.observer_panel.accept_button,
                   page.skip_button, page.pick_button):
        assert not button.isEnabled() and "may not review" in button.toolTip()
    assert not page.class_picker.isEnabled()
    for key in (Qt.Key.Key_E, Qt.Key.Key_O, Qt.Key.Key_S, Qt.Key.Key_4):
        _key(qtbot, page, key)
    assert page.current_row() is shown and not page.walk.pending
    with pytest.raises(PermissionDenied, match="may not review"):
        decide_item(project.db, project.audit, queue.annotator, shown.capture_id, "ok")
    with project.db.read() as session:
        assert session.scalars(select(Annotation).where(
            Annotation.author_id == queue.annotator.user_id)).all() == []
