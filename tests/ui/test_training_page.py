"""The Training page driven as a user would: start a run and cancel it, let one finish and
fine-tune its candidate, and find Start disabled without the right to train (offscreen).

The data set is tiny (40 generated frames, trained at 32 px with a half-width network), so a
run takes a second or two on CPU."""

from __future__ import annotations

from PySide6.QtCore import Qt
from sqlalchemy import select

from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.models import ModelStatus, ModelVersion, Role, RunStatus, TrainingRun
from app.core.project import Project
from app.core.users import actor_named, add_user
from app.ui.pages.base import PageContext
from app.ui.pages.training import TrainingPage

WAIT_MS = 60_000  # a loaded CI machine with 2 cores


def _page_with_a_tiny_dataset(qtbot, p: Project, runner, actor: str = "admin") -> TrainingPage:  # type: ignore[no-untyped-def]
    admin = actor_named(p.db, "admin")
    import_generated(p.db, p.blobs, p.audit, admin, 40, seed=1, size=64)
    freeze_version(p.db, p.audit, admin)
    page = TrainingPage(PageContext(p, actor_named(p.db, actor), runner))
    qtbot.addWidget(page)
    page.refresh()
    qtbot.waitUntil(lambda: page.dataset.count() == 1, timeout=WAIT_MS)
    return page


def _fill_quick_settings(page: TrainingPage, epochs: int) -> None:
    page.dataset.setCurrentIndex(0)
    assert page.dataset.currentText().startswith("inspection@1 (40 samples")
    page.epochs.setValue(epochs)
    page.patience.setValue(epochs)  # no early stop: the run lasts until cancelled
    page.size.setValue(32)
    page.width.setValue(0.5)
    page.augment.setCurrentText("none")


def _cell(page: TrainingPage, row: int, column: str) -> str:
    from app.ui.pages.training import RUN_COLUMNS
    return page.runs.data(page.runs.index(row, RUN_COLUMNS.index(column)))


def test_start_and_cancel_a_training(qtbot, sqlite_project: Project, runner) -> None:  # type: ignore[no-untyped-def]
    p = sqlite_project
    page = _page_with_a_tiny_dataset(qtbot, p, runner)
    assert page.cancel_button.isEnabled() is False
    assert page.arch.currentText() == "edgenet" and page.start_from.currentText() == "From scratch"
    # Far more epochs than the test waits for: only Cancel ends this run.
    _fill_quick_settings(page, epochs=300)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(page.loss_chart.points("val")) >= 1, timeout=WAIT_MS)
    assert not page.start_button.isEnabled() and page.cancel_button.isEnabled()
    epoch, loss = page.loss_chart.points("train")[0]
    assert epoch == 1 and loss > 0
    assert page.accuracy_chart.points("val")[0][0] == 1
    qtbot.waitUntil(lambda: page.runs.rowCount() == 1, timeout=WAIT_MS)
    assert _cell(page, 0, "Status") == "running"
    assert page.status.text().startswith("Epoch ") and "of 300 - best val accuracy" in \
        page.status.text() and "left" in page.status.text()

    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.running and page.runs.rowCount() == 1
                    and _cell(page, 0, "Status") == "cancelled", timeout=WAIT_MS)
    assert "cancelled" in page.status.text()
    assert page.start_button.isEnabled() and not page.cancel_button.isEnabled()
    assert _cell(page, 0, "Model") == "-" and _cell(page, 0, "Started from") == "scratch"
    with p.db.read() as session:
        run = session.scalar(select(TrainingRun))
        assert run.status is RunStatus.CANCELLED and run.finished_at is not None
        epochs_done = len(run.metrics["history"])
        assert 1 <= epochs_done < 300
        assert session.scalar(select(ModelVersion)) is None
    # The cancelled run kept its curves: selecting it draws them again.
    page.runs_table.selectRow(0)
    assert len(page.loss_chart.points("train")) == epochs_done
    assert "(cancelled)" in page.chart_caption.text()


def test_a_finished_run_makes_a_candidate_that_can_be_fine_tuned(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner) -> None:
    p = sqlite_project
    page = _page_with_a_tiny_dataset(qtbot, p, runner)
    _fill_quick_settings(page, epochs=2)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    # The run's own refresh or the one at its first epoch may list it first: wait for both.
    qtbot.waitUntil(lambda: not page.running and page.runs.rowCount() == 1
                    and _cell(page, 0, "Status") == "succeeded", timeout=WAIT_MS)
    assert "made candidate edge-1" in page.status.text()
    assert _cell(page, 0, "Model") == "edge-1" and _cell(page, 0, "Dataset") == "inspection@1"
    assert [x for x, _ in page.accuracy_chart.points("train")] == [1, 2]
    with p.db.read() as session:
        model = session.scalar(select(ModelVersion).where(ModelVersion.version == "edge-1"))
        assert model is not None and model.status is ModelStatus.CANDIDATE
        assert session.get(TrainingRun, model.training_run_id).hyperparameters["size"] == 32

    # An observer is a different network, and there is no observer to fine-tune yet.
    page.kind.setCurrentIndex(page.kind.findText("observer"))
    assert page.arch.currentText() == "observernet" and page.start_from.count() == 1
    page.kind.setCurrentIndex(page.kind.findText("edge"))
    assert page.arch.currentText() == "edgenet"
    page.start_from.setCurrentIndex(page.start_from.findData("edge-1"))
    assert page.start_from.currentText().startswith("Fine-tune edge-1 (candidate")
    page.epochs.setValue(1)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.running and page.runs.rowCount() == 2
                    and _cell(page, 0, "Status") == "succeeded", timeout=WAIT_MS)
    assert _cell(page, 0, "Model") == "edge-2" and _cell(page, 0, "Started from") == "edge-1"
    with p.db.read() as session:
        child = session.scalar(select(ModelVersion).where(ModelVersion.version == "edge-2"))
        parent = session.scalar(select(ModelVersion).where(ModelVersion.version == "edge-1"))
        assert child.parent_id == parent.id


def test_an_annotator_finds_start_disabled(qtbot, sqlite_project: Project, runner) -> None:  # type: ignore[no-untyped-def]
    p = sqlite_project
    add_user(p.db, p.audit, actor_named(p.db, "admin"), "ann", Role.ANNOTATOR)
    page = _page_with_a_tiny_dataset(qtbot, p, runner, actor="ann")
    assert not page.start_button.isEnabled()
    assert "may not train" in page.start_button.toolTip()
    assert page.runs.rowCount() == 0
