"""The Training page: start a run (edge or observer, from scratch or a fine-tune), watch its
loss and accuracy curves epoch by epoch, cancel it; past runs and their curves below.

The run is app.core.train_service.train_model, the service `edgeloop train` calls, with the
same request fields and the project's ``runs/`` folder for checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCharts import QValueAxis
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
    QSpinBox, QSplitter, QTableView, QVBoxLayout, QWidget,
)

from app.core.augment import AugmentConfig
from app.core.datasets import VersionSummary, list_versions
from app.core.model_registry import ModelSummary, model_summaries
from app.core.models import ModelKind, RunStatus
from app.core.nets import ARCHITECTURES
from app.core.progress import Progress
from app.core.roles import Permission
from app.core.train_service import DEFAULT_ARCH, TrainOutcome, TrainRequest, train_model
from app.core.training import TrainConfig
from app.core.training_runs import RunSummary, training_runs
from app.ui.charts import LineChart
from app.ui.pages.base import Page, PageContext, RowsTableModel, configure_table
from app.ui.tasks import Task

RUN_COLUMNS = ("Run", "Kind", "Dataset", "Started from", "Status", "Model", "Test accuracy",
               "Started (UTC)", "Finished (UTC)")
AUGMENT_PRESETS = ("none", "flip", "mild", "strong")
History = Sequence[dict[str, float]]


def run_cells(run: RunSummary) -> tuple[object, ...]:
    """A past run as the table shows it."""
    origin = {"train": "scratch", "fine-tune": run.parent or "?",
              "prune": f"{run.parent or '?'} (pruning)"}[run.purpose]
    return (run.id, run.kind.value, run.dataset, origin, run.status.value,
            run.model_version or "-",
            "-" if run.test_accuracy is None else f"{run.test_accuracy:.3f}",
            run.started_at.strftime("%Y-%m-%d %H:%M") if run.started_at else "-",
            run.finished_at.strftime("%Y-%m-%d %H:%M") if run.finished_at else "-")


def format_duration(seconds: float) -> str:
    """A rough duration a person reads at a glance: "40 s", "3 min 10 s", "1 h 05 min"."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def describe_epoch(history: History, epochs: int) -> str:
    """The live line under the form: epoch, best val accuracy so far, and time left."""
    last = history[-1]
    best = max(history, key=lambda r: r["val_accuracy"])
    text = (f"Epoch {int(last['epoch'])} of {epochs} - best val accuracy "
            f"{best['val_accuracy']:.3f} (epoch {int(best['epoch'])})")
    if "seconds" in last and last["epoch"] > 0:
        left = last["seconds"] / last["epoch"] * (epochs - last["epoch"])
        # Early stopping may end the run sooner: this is the most it will take.
        text += f" - at most {format_duration(left)} left" if left > 0 else ""
    return text


def _default_augment() -> str:
    default = TrainConfig().augment
    return next((name for name in AUGMENT_PRESETS if AugmentConfig.preset(name) == default),
                "flip")


class TrainingPage(Page):
    """Fill the form and press Start; the curves grow per epoch; Cancel stops the run (the
    status bar's Cancel too). Select a past run to see its curves again."""

    title = "Training"

    def __init__(self, context: PageContext) -> None:
        super().__init__(context)
        self.task: Task | None = None
        self.versions: list[VersionSummary] = []
        self.models: list[ModelSummary] = []
        self.live: list[dict[str, float]] = []  # the running training's epochs
        self.live_epochs = 0
        self.follow_live = False  # the charts show the running training (not a past run)

        self._build_form()
        self.loss_chart = LineChart("Loss", "epoch", "cross-entropy")
        self.accuracy_chart = LineChart("Accuracy", "epoch", "accuracy")
        self.chart_caption = QLabel("No run shown yet.")
        self.runs = RowsTableModel(RUN_COLUMNS, run_cells)
        self.runs_table = QTableView()
        self.runs_table.setModel(self.runs)
        configure_table(self.runs_table, (50, 70, 110, 130, 90, 80, 100, 130))
        self.runs_table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.runs_table.selectionModel().currentRowChanged.connect(self._run_selected)
        self._lay_out()
        self._kind_changed()

    # -- building ---------------------------------------------------------------------------
    def _build_form(self) -> None:
        defaults, request = TrainConfig(), TrainRequest()
        self.kind = QComboBox()
        for kind in ModelKind:
            self.kind.addItem(kind.value, kind.value)
        self.kind.setToolTip("edge: the small model devices run; observer: the large model "
                             "that re-checks captures on the workstation")
        self.arch = QComboBox()
        self.arch.addItems(list(ARCHITECTURES))
        self.dataset = QComboBox()
        self.dataset.setToolTip("A frozen dataset version (the Datasets page lists them)")
        self.start_from = QComboBox()
        self.start_from.setToolTip("Train new weights, or fine-tune a model version of this "
                                   "kind")
        self.epochs = self._spin(1, 1000, defaults.epochs)
        self.batch_size = self._spin(1, 4096, defaults.batch_size)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0.00001, 1.0)
        self.lr.setSingleStep(0.0005)
        self.lr.setValue(defaults.lr)
        self.lr.setToolTip("Peak learning rate of the one-cycle schedule")
        self.patience = self._spin(1, 1000, defaults.patience)
        self.patience.setToolTip("Stop after this many epochs without a better val accuracy")
        self.augment = QComboBox()
        self.augment.addItems(list(AUGMENT_PRESETS))
        self.augment.setCurrentText(_default_augment())
        self.size = self._spin(32, 1024, request.size)
        self.size.setSingleStep(16)
        self.size.setSuffix(" px")
        self.width = QDoubleSpinBox()
        self.width.setRange(0.25, 4.0)
        self.width.setSingleStep(0.25)
        self.width.setValue(request.width)
        self.width.setToolTip("Channel width multiplier of the network")
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.dataset.currentIndexChanged.connect(self._update_buttons)

        may = self.context.actor.may(Permission.TRAIN)
        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self.start)
        self.start_button.setToolTip("Train a candidate model with these settings" if may
                                     else "Your role may not train models")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running training; it is recorded as "
                                      "cancelled and makes no model version")
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self._update_buttons()

    @staticmethod
    def _spin(low: int, high: int, value: int) -> QSpinBox:
        box = QSpinBox()
        box.setRange(low, high)
        box.setValue(value)
        return box

    def _lay_out(self) -> None:
        form = QFormLayout()
        for label, widget in (("Kind", self.kind), ("Architecture", self.arch),
                              ("Dataset version", self.dataset), ("Start from", self.start_from),
                              ("Epochs", self.epochs), ("Batch size", self.batch_size),
                              ("Learning rate", self.lr), ("Patience", self.patience),
                              ("Augmentation", self.augment), ("Input size", self.size),
                              ("Width", self.width)):
            form.addRow(label, widget)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        box = QGroupBox("New training run")
        inner = QVBoxLayout(box)
        inner.addLayout(form)
        inner.addLayout(buttons)
        inner.addWidget(self.status)
        inner.addStretch(1)
        box.setFixedWidth(330)

        charts = QWidget()
        chart_layout = QVBoxLayout(charts)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        pair = QHBoxLayout()
        pair.addWidget(self.loss_chart)
        pair.addWidget(self.accuracy_chart)
        chart_layout.addWidget(self.chart_caption)
        chart_layout.addLayout(pair, 1)
        top = QWidget()
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(box)
        top_layout.addWidget(charts, 1)

        past = QWidget()
        past_layout = QVBoxLayout(past)
        past_layout.setContentsMargins(0, 0, 0, 0)
        past_layout.addWidget(QLabel("Past runs (select one to see its curves)"))
        past_layout.addWidget(self.runs_table, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(past)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(split)

    # -- data -------------------------------------------------------------------------------
    def refresh(self) -> None:
        db = self.context.project.db
        task = self.context.tasks.run(
            "Loading training runs",
            lambda progress, cancel: (list_versions(db), model_summaries(db), training_runs(db)))
        task.succeeded.connect(self._loaded)

    def _loaded(self, loaded: tuple[list[VersionSummary], list[ModelSummary],
                                    list[RunSummary]]) -> None:
        versions, self.models, runs = loaded
        # Newest first: the version just frozen is the one most likely wanted.
        self.versions = sorted(versions, key=lambda v: (v.created_at, v.number), reverse=True)
        chosen = self.dataset.currentData()
        self.dataset.blockSignals(True)
        self.dataset.clear()
        for v in self.versions:
            splits = v.by_split
            self.dataset.addItem(f"{v.ref} ({v.total} samples)", v.ref)
            self.dataset.setItemData(
                self.dataset.count() - 1,
                f"train {splits.get('train', 0)}, val {splits.get('val', 0)}, test "
                f"{splits.get('test', 0)}; {len(v.label_schema)} classes",
                Qt.ItemDataRole.ToolTipRole)
        if chosen is not None and self.dataset.findData(chosen) >= 0:
            self.dataset.setCurrentIndex(self.dataset.findData(chosen))
        self.dataset.blockSignals(False)
        self._fill_start_from()
        self.runs.set_rows(runs)
        self._update_buttons()

    def selected_kind(self) -> ModelKind:
        """The kind the form asks for (a combo's data comes back as a plain string)."""
        return ModelKind(self.kind.currentData())

    def _kind_changed(self) -> None:
        kind = self.selected_kind()
        self.arch.setCurrentText(DEFAULT_ARCH[kind])
        self._fill_start_from()

    def _fill_start_from(self) -> None:
        kind, chosen = self.selected_kind(), self.start_from.currentData()
        self.start_from.clear()
        self.start_from.addItem("From scratch", None)
        for m in self.models:
            if m.kind is kind:
                score = "" if m.test_accuracy is None else f", test {m.test_accuracy:.3f}"
                self.start_from.addItem(f"Fine-tune {m.version} ({m.status.value}{score})",
                                        m.version)
        index = self.start_from.findData(chosen)
        self.start_from.setCurrentIndex(max(0, index))

    # -- a run ------------------------------------------------------------------------------
    def request(self) -> TrainRequest | None:
        """What the form asks for (None while there is no dataset version to train on)."""
        dataset = self.dataset.currentData()
        if dataset is None:
            return None
        config = TrainConfig(epochs=self.epochs.value(), batch_size=self.batch_size.value(),
                             lr=self.lr.value(), patience=self.patience.value(),
                             augment=AugmentConfig.preset(self.augment.currentText()))
        return TrainRequest(kind=self.selected_kind(), dataset=dataset,
                            parent=self.start_from.currentData(), arch=self.arch.currentText(),
                            width=self.width.value(), size=self.size.value(), config=config)

    def start(self) -> None:
        request = self.request()
        if request is None or self.running:
            return
        project, actor = self.context.project, self.context.actor

        def work(progress: Any, cancel: Any) -> TrainOutcome:
            return train_model(project.db, project.blobs, project.audit, actor, request,
                               runs_dir=project.root / "runs", clock=project.clock,
                               progress=progress, cancel=cancel)

        self.live, self.live_epochs, self.follow_live = [], request.config.epochs, True
        self.runs_table.clearSelection()
        self._draw([], f"{request.kind.value} on {request.dataset} (running)")
        self.status.setText("Loading the dataset...")
        # The compute lane, not the database lane: a training holds its worker for minutes,
        # which would stall every page's queries meanwhile. Its own writes are short
        # transactions, which SQLite's busy timeout queues behind the database lane's.
        self.task = self.context.tasks.run(
            f"Training {request.kind.value} on {request.dataset}", work, compute=True)
        self.task.progressed.connect(self._on_progress)
        self.task.succeeded.connect(self._on_succeeded)
        self.task.cancelled.connect(lambda: self.status.setText(
            "Training cancelled: the run is recorded as cancelled and made no model version."))
        self.task.failed.connect(lambda message: self.status.setText(f"Training failed: "
                                                                     f"{message}"))
        self.task.finished.connect(self._on_finished)
        self._update_buttons()

    @property
    def running(self) -> bool:
        """Whether a training this page started is under way."""
        return self.task is not None

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Stopping after the current batch...")
            self.cancel_button.setEnabled(False)

    def _on_progress(self, step: Progress) -> None:
        record = step.metrics
        if "epoch" not in record:
            return
        self.live.append(dict(record))
        self.status.setText(describe_epoch(self.live, self.live_epochs))
        if len(self.live) == 1:
            self.refresh()  # the run's row exists now: list it as running
        if self.follow_live:
            self._append(record)

    def _on_succeeded(self, outcome: TrainOutcome) -> None:
        m = outcome.metrics
        test = m.get("test_accuracy")
        score = f"test accuracy {test:.3f}" if test == test else "no test split"
        self.status.setText(f"Run {outcome.run_id} made candidate {outcome.version}: val "
                            f"accuracy {m['val_accuracy']:.3f} (epoch {m['best_epoch']}), "
                            f"{score}. The Models page gates and approves it.")

    def _on_finished(self) -> None:
        self.task = None
        self._update_buttons()
        self.refresh()

    def _update_buttons(self) -> None:
        may = self.context.actor.may(Permission.TRAIN)
        has_data = self.dataset.count() > 0
        self.start_button.setEnabled(may and has_data and not self.running)
        if may:
            self.start_button.setToolTip(
                "Train a candidate model with these settings" if has_data
                else "No frozen dataset version yet: freeze one on the Datasets page first")
        self.cancel_button.setEnabled(self.running)

    # -- curves -----------------------------------------------------------------------------
    def _run_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        row = current.row()
        if not 0 <= row < len(self.runs.rows):
            return
        run = self.runs.rows[row]
        self.follow_live = run.status is RunStatus.RUNNING and self.running
        if self.follow_live:
            self._draw(self.live, f"run {run.id}: {run.kind.value} on {run.dataset} (running)")
        elif run.history:
            self._draw(run.history, f"run {run.id}: {run.kind.value} on {run.dataset} "
                                    f"({run.status.value})")
        else:
            self._draw([], f"run {run.id} stored no curves (it ended before its first epoch)")

    def _draw(self, history: History, caption: str) -> None:
        self.chart_caption.setText(f"Curves of {caption}")
        self.loss_chart.clear()
        self.accuracy_chart.clear()
        for record in history:
            self._append(record)
        if not history:
            self._tick_whole_epochs(1)

    def _append(self, record: dict[str, float]) -> None:
        epoch = record["epoch"]
        self.loss_chart.append("train", epoch, record["train_loss"])
        self.loss_chart.append("val", epoch, record["val_loss"])
        if "train_accuracy" in record:  # runs before it was recorded have val only
            self.accuracy_chart.append("train", epoch, record["train_accuracy"])
        self.accuracy_chart.append("val", epoch, record["val_accuracy"])
        self._tick_whole_epochs(epoch)

    def _tick_whole_epochs(self, last: float) -> None:
        # Epochs are whole numbers: ticks every 1, 2, 5, 10... epochs, not at 3.75.
        step = next((s for s in (1, 2, 5, 10, 20, 50, 100, 200) if last / s <= 8), 500)
        for chart in (self.loss_chart, self.accuracy_chart):
            axis = chart.x_axis
            axis.setTickType(QValueAxis.TickType.TicksDynamic)
            axis.setTickAnchor(0)
            axis.setTickInterval(step)
