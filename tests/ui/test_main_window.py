"""The main window and its task runner, driven as a user would (offscreen); the Fleet page
has tests/ui/test_fleet_page.py."""

from __future__ import annotations

import threading

from PySide6.QtCore import QSettings, Qt

from app.core.errors import InvalidInput
from app.core.models import Role
from app.core.progress import Progress
from app.core.project import Project
from app.core.users import actor_named, add_user
from app.ui.main_window import MainWindow
from app.ui.pages.base import PageContext
from app.ui.pages.fleet import FleetPage
from app.ui.sign_in import SignInDialog
from app.ui.tasks import TaskRunner


def test_a_task_reports_progress_and_its_result_on_the_main_thread(qtbot, runner) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, object]] = []

    def work(progress, cancel):  # type: ignore[no-untyped-def]
        for i in range(3):
            progress(Progress("count", i + 1, 3, f"step {i + 1}"))
        return threading.current_thread().name

    task = runner.run("Counting", work)
    task.progressed.connect(lambda p: seen.append((threading.current_thread().name, p.done)))
    with qtbot.waitSignal(task.succeeded, timeout=5000) as result:
        pass
    assert result.args[0].startswith("ui-db")  # the work ran on the database lane
    qtbot.waitUntil(lambda: len(seen) == 3)
    assert {name for name, _ in seen} == {"MainThread"}


def test_cancel_stops_the_work_and_errors_become_messages(qtbot, runner) -> None:  # type: ignore[no-untyped-def]
    started = threading.Event()

    def endless(progress, cancel):  # type: ignore[no-untyped-def]
        started.set()
        while True:
            cancel.check()
            cancel.wait(0.01)

    task = runner.run("Waiting forever", endless)
    qtbot.waitUntil(started.is_set, timeout=5000)
    with qtbot.waitSignal(task.cancelled, timeout=5000):
        task.cancel()

    def refused(progress, cancel):  # type: ignore[no-untyped-def]
        raise InvalidInput("model edge-9 does not exist; `edgeloop models list` shows them")

    bad = runner.run("Gate", refused)
    with qtbot.waitSignal(bad.failed, timeout=5000) as failure:
        pass
    assert failure.args[0].startswith("model edge-9 does not exist")

    def broken(progress, cancel):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("division by zero")

    worse = runner.run("Report", broken)
    with qtbot.waitSignal(worse.failed, timeout=5000) as failure:
        pass
    assert "Report failed unexpectedly: ZeroDivisionError" in failure.args[0]


def _window(qtbot, project: Project, runner: TaskRunner, settings: QSettings,  # type: ignore[no-untyped-def]
            actor_name: str = "admin", errors: list | None = None) -> MainWindow:
    context = PageContext(project, actor_named(project.db, actor_name), runner)
    window = MainWindow(context, [FleetPage], settings=settings,
                        show_error=lambda title, message: (errors if errors is not None
                                                           else []).append((title, message)))
    qtbot.addWidget(window)
    return window


def test_the_window_remembers_its_geometry_and_page(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner, settings) -> None:
    window = _window(qtbot, sqlite_project, runner, settings)
    window.resize(700, 500)  # the offscreen screen is 800 x 600
    window.close()
    again = _window(qtbot, sqlite_project, TaskRunner(), settings)
    assert (again.width(), again.height()) == (700, 500)
    again.context.tasks.shutdown()


def test_sign_in_checks_the_password(qtbot, sqlite_project: Project) -> None:  # type: ignore[no-untyped-def]
    p = sqlite_project
    add_user(p.db, p.audit, actor_named(p.db, "admin"), "eng", Role.ENGINEER, password="s3cret-pw")
    dialog = SignInDialog(p, "eng")
    qtbot.addWidget(dialog)
    dialog.password.setText("wrong")
    dialog.try_sign_in()
    assert dialog.actor is None and "wrong password" in dialog.error.text()
    assert dialog.password.text() == ""
    dialog.password.setText("s3cret-pw")
    dialog.try_sign_in()
    assert dialog.actor is not None and dialog.actor.role is Role.ENGINEER


def test_the_datasets_page_shows_versions_and_diffs_two(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner, settings) -> None:
    from PySide6.QtCore import QItemSelectionModel

    from app.core.dataset_import import import_generated
    from app.core.datasets import freeze_version
    from app.ui.pages.datasets import DatasetsPage

    p = sqlite_project
    admin = actor_named(p.db, "admin")
    import_generated(p.db, p.blobs, p.audit, admin, 40, seed=1, size=64)
    freeze_version(p.db, p.audit, admin)
    import_generated(p.db, p.blobs, p.audit, admin, 10, seed=1, size=64, start_index=40)
    freeze_version(p.db, p.audit, admin, notes="ten more")
    page = DatasetsPage(PageContext(p, admin, runner))
    qtbot.addWidget(page)
    page.refresh()
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=5000)
    assert page.model.data(page.model.index(0, 0)) == "inspection@2"  # newest first
    assert page.model.data(page.model.index(0, 3)) == "50"
    page.diff_selected()
    assert "exactly two" in page.result.text()
    selection = page.table.selectionModel()
    for row in (0, 1):
        selection.select(page.model.index(row, 0), QItemSelectionModel.SelectionFlag.Select
                         | QItemSelectionModel.SelectionFlag.Rows)
    page.diff_selected()
    qtbot.waitUntil(lambda: "added" in page.result.text(), timeout=5000)
    assert page.result.text().startswith("inspection@1 -> inspection@2: 10 added, 0 removed")


def test_the_models_page_shows_a_candidate_and_refuses_to_approve_it_ungated(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner) -> None:
    from app.core.augment import AugmentConfig
    from app.core.dataset_import import import_generated
    from app.core.datasets import freeze_version
    from app.core.train_service import TrainRequest, train_model
    from app.core.training import TrainConfig
    from app.ui.pages.models import ModelsPage

    p = sqlite_project
    admin = actor_named(p.db, "admin")
    import_generated(p.db, p.blobs, p.audit, admin, 60, seed=1, size=64)
    freeze_version(p.db, p.audit, admin)
    train_model(p.db, p.blobs, p.audit, admin, TrainRequest(
        size=64, width=0.5, config=TrainConfig(epochs=1, augment=AugmentConfig.preset("none"))),
        runs_dir=p.root / "runs")
    page = ModelsPage(PageContext(p, admin, runner))
    qtbot.addWidget(page)
    page.refresh()
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=5000)
    assert not page.approve_button.isEnabled()  # nothing selected yet
    page.table.selectRow(0)
    assert page.details.toPlainText().startswith("edge-1 (edge): candidate")
    assert "Gate: not run yet." in page.details.toPlainText()
    assert page.approve_button.isEnabled()
    qtbot.mouseClick(page.approve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "gate_passed" in page.status.text(), timeout=10000)
    assert "edgeloop models gate" in page.status.text()

    add_user(p.db, p.audit, admin, "ann", Role.ANNOTATOR)
    viewer = ModelsPage(PageContext(p, actor_named(p.db, "ann"), runner))
    qtbot.addWidget(viewer)
    viewer.refresh()
    qtbot.waitUntil(lambda: viewer.model.rowCount() == 1, timeout=5000)
    viewer.table.selectRow(0)
    assert not viewer.approve_button.isEnabled()
    assert "may not approve" in viewer.approve_button.toolTip()
