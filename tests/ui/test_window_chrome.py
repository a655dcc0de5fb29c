"""The window's own controls: page shortcuts, themes with their icons, remembered state."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from app.core.project import Project
from app.core.users import actor_named
from app.ui.main_window import MainWindow
from app.ui.pages.audit import AuditPage
from app.ui.pages.base import PageContext
from app.ui.pages.datasets import DatasetsPage
from app.ui.resources import icon
from app.ui.tasks import TaskRunner
from app.ui.theme import Theme


def _window(qtbot, project: Project, runner: TaskRunner, settings: QSettings) -> MainWindow:  # type: ignore[no-untyped-def]
    context = PageContext(project, actor_named(project.db, "admin"), runner)
    window = MainWindow(context, [DatasetsPage, AuditPage], settings=settings,
                        show_error=lambda title, message: None)
    qtbot.addWidget(window)
    return window


def test_keys_switch_pages_and_the_theme_and_the_theme_is_remembered(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner, settings) -> None:
    window = _window(qtbot, sqlite_project, runner, settings)
    with qtbot.waitActive(window):  # shortcuts go to the active window
        window.show()
        window.activateWindow()
    assert window.current_page().title == "Datasets"
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page().title == "Audit"
    light = QApplication.palette().color(QPalette.ColorRole.Window).lightness()
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    assert window.theme is Theme.DARK
    dark = QApplication.palette().color(QPalette.ColorRole.Window).lightness()
    assert dark < 80 < light
    assert not window.sidebar.item(0).icon().isNull()
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)  # quit
    assert not window.isVisible()
    again = _window(qtbot, sqlite_project, TaskRunner(), settings)
    assert again.theme is Theme.DARK and again.current_page().title == "Audit"
    assert again.theme_actions[Theme.DARK].isChecked()
    again.set_theme(Theme.LIGHT)  # leave the application as other tests expect it
    again.context.tasks.shutdown()


def test_every_page_icon_exists_and_a_missing_one_is_empty_not_an_error(qtbot) -> None:  # type: ignore[no-untyped-def]
    for name in ("fleet", "data", "datasets", "training", "models", "deploy", "monitoring",
                 "audit", "review"):
        assert not icon(name).isNull(), name
    assert icon("no-such-icon").isNull()


def test_a_background_watcher_stays_out_of_the_status_bar_but_its_failure_is_shown(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner, settings) -> None:
    errors: list[tuple[str, str]] = []
    context = PageContext(sqlite_project, actor_named(sqlite_project.db, "admin"), runner)
    window = MainWindow(context, [AuditPage], settings=settings,
                        show_error=lambda title, message: errors.append((title, message)))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not runner.running(), timeout=5000)  # the page has loaded

    def watch(progress, cancel):  # type: ignore[no-untyped-def]
        cancel.wait(0.2)
        raise ConnectionError("fleet unreachable")

    task = runner.run("Watching the fleet", watch, network=True, background=True)
    qtbot.waitUntil(lambda: task.future is not None, timeout=5000)
    assert "Watching the fleet" not in window.task_label.text()
    assert window._current is not task  # Cancel in the status bar never stops the watcher
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert errors[0][0] == "Watching the fleet" and "fleet unreachable" in errors[0][1]
