"""The Models page: the registry, a version's scores per format, its confusion matrix, two
versions compared, the gate verdict with its reasons, and approval.

Everything shown is what the services stored (``app.core.model_registry``): showing a
version runs no model. Evaluate runs the evaluation service (as ``edgeloop evaluate``) and
Approve the approval service (as ``edgeloop models approve``), each as a task, each for the
roles that may.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSplitter, QTableView,
    QTabWidget, QVBoxLayout, QWidget,
)

from app.core.model_comparison import ModelComparison, common_formats, compare_models
from app.core.model_registry import ClassMetrics, FormatMetrics, ModelDetails, all_model_details
from app.core.models import ArtifactFormat, ModelKind, ModelStatus
from app.core.roles import Permission
from app.fleet.approval import approve_model
from app.fleet.context import FleetContext
from app.ui.pages.base import Page, PageContext, RowsTableModel, configure_table
from app.ui.widgets.confusion_matrix import ConfusionMatrixView
from app.ui.widgets.format_metrics import FORMAT_WIDTHS, FormatMetricsModel
from app.ui.widgets.model_comparison import ComparisonView

# What the gate may still judge: once approved a version's verdict is history.
CANDIDATE_STATUSES = (ModelStatus.CANDIDATE, ModelStatus.GATE_PASSED, ModelStatus.GATE_FAILED)

COLUMNS = ("Version", "Kind", "Status", "Test acc.", "Trained on", "Parent", "Created (UTC)")


def model_cells(m: ModelDetails) -> tuple[object, ...]:
    """A model version as the registry table shows it."""
    return (m.version, m.kind.value, m.status.value,
            "-" if m.test_accuracy is None else f"{m.test_accuracy:.3f}",
            m.dataset or "-", m.parent or "-", m.created_at.strftime("%Y-%m-%d %H:%M"))


def describe(model: ModelDetails) -> str:
    """The summary's text: status, lineage, the gate verdict with its reasons, the metrics."""
    lines = [f"{model.version} ({model.kind.value}): {model.status.value}"]
    lineage = [f"trained on {model.dataset}" if model.dataset else "not trained here",
               f"from {model.parent}" if model.parent else "from scratch"]
    if model.training_run is not None:
        lineage.append(f"training run {model.training_run}")
    lines.append(", ".join(lineage).capitalize() + ".")
    verdict = model.gate_verdict
    if verdict is None:
        lines.append("Gate: not run yet.")
    else:
        checks = verdict.get("checks", [])
        lines.append(f"Gate: {'passed' if verdict.get('passed') else 'FAILED'} on "
                     f"{verdict.get('dataset')} against {verdict.get('baseline') or 'no baseline'}"
                     f" ({sum(1 for c in checks if c.get('passed'))} of {len(checks)} checks "
                     "passed)")
        lines += [f"  - {reason}" for reason in model.gate_reasons]
    if model.approved_at is not None:
        lines.append(f"Approved by {model.approved_by or 'unknown'} at "
                     f"{model.approved_at.strftime('%Y-%m-%d %H:%M')} UTC.")
    shown = {k: v for k, v in model.metrics.items() if not isinstance(v, (dict, list))}
    if shown:
        lines.append("Training: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    return "\n".join(lines)


def chosen_format(combo: QComboBox) -> ArtifactFormat | None:
    """The format a combo of format names shows (None when it is empty)."""
    return ArtifactFormat(combo.currentText()) if combo.currentText() else None


def class_cells(item: tuple[str, ClassMetrics]) -> tuple[object, ...]:
    name, score = item
    return (name, f"{score.precision:.3f}", f"{score.recall:.3f}", score.support)


class ModelsPage(Page):
    """Select a version to see its scores, confusion matrix and verdict; select a second one
    (Ctrl-click, or "Compare with") to compare; Evaluate scores it; Approve releases it."""

    title = "Models"

    def __init__(self, context: PageContext) -> None:
        super().__init__(context)
        self.model: RowsTableModel[ModelDetails] = RowsTableModel(COLUMNS, model_cells)
        self.table = QTableView()
        self.table.setModel(self.model)
        configure_table(self.table, (100, 80, 110, 80, 120, 100))
        self.table.setSelectionMode(QTableView.SelectionMode.ExtendedSelection)
        self.table.setToolTip("Ctrl-click a second version to compare the two")
        self.table.selectionModel().currentRowChanged.connect(self._selection_changed)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self._shown: ModelDetails | None = None
        self._working = False  # a compression, evaluation or gate of this page runs

        may_train = context.actor.may(Permission.TRAIN)
        self.compress_button = self._action_button(
            "Compress", self.compress_selected, may_train,
            "Export the selected version to ONNX and OpenVINO and quantize both to INT8 "
            "(edgeloop compress)", "Your role may not compress models")
        self.evaluate_button = self._action_button(
            "Evaluate", self.evaluate_selected, may_train,
            "Score every format of the selected version on its test split (edgeloop evaluate)",
            "Your role may not evaluate models")
        self.gate_button = self._action_button(
            "Run gate", self.gate_selected, may_train,
            "Compare the selected candidate with the deployed model on the same test split "
            "(edgeloop models gate)", "Your role may not run the gate")
        may = context.actor.may(Permission.APPROVE_MODEL)
        self.approve_button = QPushButton("Approve...")
        self.approve_button.setEnabled(False)
        self.approve_button.setToolTip("Sign the selected version as a release" if may
                                       else "Your role may not approve models")
        self.approve_button.clicked.connect(self.approve_selected)
        self.status = QLabel("")
        bar = QHBoxLayout()
        for button in (self.compress_button, self.evaluate_button, self.gate_button,
                       self.approve_button):
            bar.addWidget(button)
        bar.addWidget(self.status, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._overview_tab(), "Formats")
        self.tabs.addTab(self._confusion_tab(), "Confusion matrix")
        self.compare_tab = self._compare_tab()
        self.tabs.addTab(self.compare_tab, "Compare")
        # The registry on top, the selected version below: the tabs' tables need the width.
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.tabs)
        split.setStretchFactor(1, 1)
        split.setSizes([180, 480])
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(split, 1)

    # -- building -----------------------------------------------------------------------------
    def _overview_tab(self) -> QWidget:
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.formats = FormatMetricsModel()
        self.formats_table = QTableView()
        self.formats_table.setModel(self.formats)
        configure_table(self.formats_table, FORMAT_WIDTHS)
        self.formats_table.selectionModel().currentRowChanged.connect(
            lambda current, _previous: self._show_confusion_of_row(current.row()))
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.details)
        split.addWidget(self.formats_table)
        split.setSizes([150, 300])
        return split

    def _confusion_tab(self) -> QWidget:
        self.confusion_format = QComboBox()
        self.confusion_format.setMinimumContentsLength(14)
        self.confusion_format.currentIndexChanged.connect(self._show_confusion)
        self.confusion_caption = QLabel("")
        self.confusion_caption.setWordWrap(True)
        self.confusion = ConfusionMatrixView()
        self.classes: RowsTableModel[tuple[str, ClassMetrics]] = RowsTableModel(
            ("Class", "Precision", "Recall", "Test images"), class_cells)
        self.classes_table = QTableView()
        self.classes_table.setModel(self.classes)
        configure_table(self.classes_table, (130, 90, 90))
        top = QHBoxLayout()
        top.addWidget(QLabel("Format:"))
        top.addWidget(self.confusion_format)
        top.addWidget(self.confusion_caption, 1)
        body = QSplitter()
        body.addWidget(self.confusion)
        body.addWidget(self.classes_table)
        body.setSizes([600, 440])
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addLayout(top)
        layout.addWidget(body, 1)
        return tab

    def _compare_tab(self) -> QWidget:
        self.compare_with = QComboBox()
        self.compare_with.setMinimumContentsLength(12)
        self.compare_with.currentIndexChanged.connect(self._show_comparison)
        self.compare_format = QComboBox()
        self.compare_format.setMinimumContentsLength(14)
        self.compare_format.currentIndexChanged.connect(self._show_comparison)
        self.compare_label = QLabel("Compare with:")
        self.comparison_view = ComparisonView()
        self.comparison: ModelComparison | None = None
        top = QHBoxLayout()
        top.addWidget(self.compare_label)
        top.addWidget(self.compare_with)
        top.addWidget(QLabel("Format:"))
        top.addWidget(self.compare_format)
        top.addStretch(1)
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.addLayout(top)
        layout.addWidget(self.comparison_view, 1)
        return tab

    # -- the registry -------------------------------------------------------------------------
    def refresh(self) -> None:
        db = self.context.project.db
        task = self.context.tasks.run("Loading models",
                                      lambda progress, cancel: all_model_details(db))
        task.succeeded.connect(self._set_rows)

    def _set_rows(self, rows: list[ModelDetails]) -> None:
        # A refresh keeps what the user was looking at, by version name.
        current = None if self._shown is None else self._shown.version
        other = self.compare_with.currentText()
        self.model.set_rows(rows)
        self._shown = None
        names = [m.version for m in rows]
        if current in names:
            self.table.selectRow(names.index(current))
            if other in names and other != current:
                self.compare_with.setCurrentText(other)
        else:
            self._show(None)

    def version(self, name: str) -> ModelDetails | None:
        return next((m for m in self.model.rows if m.version == name), None)

    def selected(self) -> ModelDetails | None:
        """The version the page shows: the current row of the registry."""
        row = self.table.selectionModel().currentIndex().row()
        return self.model.rows[row] if 0 <= row < len(self.model.rows) else None

    def _selection_changed(self, *_args: object) -> None:
        model = self.selected()
        if model is not self._shown:
            self._show(model)
        rows = {i.row() for i in self.table.selectionModel().selectedRows()}
        current = self.table.selectionModel().currentIndex().row()
        if len(rows) == 2 and current in rows:
            (other,) = rows - {current}
            self.compare_with.setCurrentText(self.model.rows[other].version)
            self.tabs.setCurrentWidget(self.compare_tab)

    def _show(self, model: ModelDetails | None) -> None:
        self._shown = model
        self.details.setPlainText(describe(model) if model else "")
        self.formats.set_rows(list(model.formats) if model else [])
        self._fill_confusion_formats(model)
        self._fill_compare_choices(model)
        self._enable_actions()

    def _action_button(self, text: str, slot: Callable[[], None], allowed: bool,
                       tip: str, refused: str) -> QPushButton:
        button = QPushButton(text)
        button.setEnabled(False)
        button.setToolTip(tip if allowed else refused)
        button.clicked.connect(slot)
        return button

    def _enable_actions(self) -> None:
        model, actor = self._shown, self.context.actor
        # One piece of model work at a time: they share the compute lane and would queue.
        ready = model is not None and actor.may(Permission.TRAIN) and not self._working
        candidate = ready and model is not None and model.status in CANDIDATE_STATUSES
        self.compress_button.setEnabled(ready)
        self.evaluate_button.setEnabled(ready and model is not None and bool(model.formats))
        self.gate_button.setEnabled(candidate and model is not None
                                    and model.kind is ModelKind.EDGE)
        # Observers are not shipped to devices: nothing to approve.
        self.approve_button.setEnabled(model is not None and model.kind is ModelKind.EDGE
                                       and actor.may(Permission.APPROVE_MODEL))

    # -- confusion matrix ---------------------------------------------------------------------
    def _fill_confusion_formats(self, model: ModelDetails | None) -> None:
        self.confusion_format.blockSignals(True)
        self.confusion_format.clear()
        for f in [] if model is None else model.scored_formats:
            if f.confusion:
                self.confusion_format.addItem(f.format.value)
        self.confusion_format.blockSignals(False)
        self._show_confusion()

    def _show_confusion_of_row(self, row: int) -> None:
        """Choosing a row of the formats table shows that format's matrix."""
        if 0 <= row < len(self.formats.rows):
            found = self.confusion_format.findText(self.formats.rows[row].format.value)
            if found >= 0:
                self.confusion_format.setCurrentIndex(found)

    def confusion_shown(self) -> FormatMetrics | None:
        """The format whose confusion matrix is shown."""
        format = chosen_format(self.confusion_format)
        model = self._shown
        return None if model is None or format is None else model.format(format)

    def _show_confusion(self) -> None:
        shown = self.confusion_shown()
        if shown is None:
            self.confusion.clear()
            self.classes.set_rows([])
            self.confusion_caption.setText(
                "" if self._shown is None else
                f"{self._shown.version} has no stored scores: Evaluate scores every format.")
            return
        self.confusion.set_matrix(shown.labels, shown.confusion)
        self.classes.set_rows(list(shown.per_class.items()))
        self.confusion_caption.setText(
            f"Rows: true class; columns: predicted. {shown.count} test images of "
            f"{shown.dataset} on {shown.runtime}.")

    # -- comparison ---------------------------------------------------------------------------
    def _fill_compare_choices(self, model: ModelDetails | None) -> None:
        chosen = self.compare_with.currentText()
        self.compare_with.blockSignals(True)
        self.compare_with.clear()
        self.compare_with.addItem("")
        for other in self.model.rows:
            if model is not None and other.version != model.version:
                self.compare_with.addItem(other.version)
        self.compare_with.setCurrentText(chosen)
        self.compare_with.blockSignals(False)
        self.compare_label.setText(f"Compare {model.version} with:" if model else "Compare with:")
        self._show_comparison()

    def _show_comparison(self) -> None:
        model, other = self._shown, self.version(self.compare_with.currentText())
        if model is None or other is None:
            self.comparison = None
            self._fill_compare_formats([])
            self.comparison_view.show_comparison(None)
            return
        chosen = self.compare_format.currentText()
        self._fill_compare_formats(common_formats(model, other))
        found = self.compare_format.findText(chosen)
        if found >= 0:
            self.compare_format.blockSignals(True)
            self.compare_format.setCurrentIndex(found)
            self.compare_format.blockSignals(False)
        self.comparison = compare_models(model, other, chosen_format(self.compare_format))
        self.comparison_view.show_comparison(self.comparison)

    def _fill_compare_formats(self, formats: list[ArtifactFormat]) -> None:
        self.compare_format.blockSignals(True)
        self.compare_format.clear()
        for format in formats:
            self.compare_format.addItem(format.value)
        self.compare_format.setEnabled(bool(formats))
        self.compare_format.blockSignals(False)

    # -- actions ------------------------------------------------------------------------------
    def compress_selected(self) -> None:
        """Make the ONNX and OpenVINO artifacts, FP32 and INT8, of the selected version."""
        # Imported here: these load torch and the runtimes, which the window does not need
        # to open.
        from app.core.compress_service import compress_model

        p, actor = self.context.project, self.context.actor
        self._work_on_selected(
            "Compressing",
            lambda version, progress, cancel: compress_model(
                p.db, p.blobs, p.audit, actor, version, progress=progress, cancel=cancel),
            lambda version, outcome: f"{version}: made {', '.join(outcome.sizes)}; "
                                     "evaluate or gate it next")

    def evaluate_selected(self) -> None:
        """Score every format of the selected version (the evaluation service; stored)."""
        from app.core.evaluate_service import evaluate_model

        p, actor = self.context.project, self.context.actor
        self._work_on_selected(
            "Evaluating",
            lambda version, progress, cancel: evaluate_model(
                p.db, p.blobs, p.audit, actor, version, progress=progress, cancel=cancel),
            lambda version, evaluation: f"{version} scored on the test split of "
                                        f"{evaluation.dataset}: "
                                        f"{', '.join(f.value for f in evaluation.results)}")

    def gate_selected(self) -> None:
        """Run the gate on the selected candidate with the project's default budget."""
        from app.core.gate import run_gate

        p, actor = self.context.project, self.context.actor
        self._work_on_selected(
            "Gating",
            lambda version, progress, cancel: run_gate(
                p.db, p.blobs, p.audit, actor, version, progress=progress, cancel=cancel),
            lambda version, verdict: f"{version} {'passed' if verdict.passed else 'failed'} "
                                     "the gate" + ("" if verdict.passed else
                                                   ": " + "; ".join(verdict.reasons)))

    def _work_on_selected(self, verb: str, work: Callable[[str, Any, Any], Any],
                          describe: Callable[[str, Any], str]) -> None:
        """Run model work on the compute lane (minutes of CPU), then show what it made."""
        model = self.selected()
        if model is None:
            return
        version = model.version
        self._working = True
        self._enable_actions()
        task = self.context.tasks.run(
            f"{verb} {version}",
            lambda progress, cancel: work(version, progress, cancel), compute=True)
        task.succeeded.connect(lambda result: (self.status.setText(describe(version, result)),
                                               self.refresh()))
        task.failed.connect(self.status.setText)
        task.cancelled.connect(lambda: self.status.setText(f"{verb} {version}: cancelled"))
        task.finished.connect(self._work_done)

    def _work_done(self) -> None:
        self._working = False
        self._enable_actions()

    def approve_selected(self) -> None:
        """Sign the selected version as a release (the approval service; it checks the gate)."""
        model = self.selected()
        if model is None:
            return
        ctx, actor = FleetContext.of(self.context.project), self.context.actor
        task = self.context.tasks.run(
            f"Approving {model.version}",
            lambda progress, cancel: approve_model(ctx, actor, model.version,
                                                   note="approved in the app"))
        task.succeeded.connect(lambda release: (self.status.setText(
            f"{release.version} approved and signed; deploy it from the Deploy page"),
            self.refresh()))
        task.failed.connect(self.status.setText)
