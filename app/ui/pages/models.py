"""The Models page: the registry, a version's metrics and gate verdict, and approval."""

from __future__ import annotations

import json

from PySide6.QtCore import QModelIndex
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSplitter, QTableView, QVBoxLayout,
)

from app.core.model_registry import ModelSummary, model_summaries
from app.core.models import ModelKind
from app.core.roles import Permission
from app.fleet.approval import approve_model
from app.fleet.context import FleetContext
from app.ui.pages.base import Page, PageContext, RowsTableModel, configure_table

COLUMNS = ("Version", "Kind", "Status", "Test accuracy", "Artifacts", "Created (UTC)")


def model_cells(m: ModelSummary) -> tuple[object, ...]:
    """A model version as the table shows it."""
    return (m.version, m.kind.value, m.status.value,
            "-" if m.test_accuracy is None else f"{m.test_accuracy:.3f}",
            ", ".join(m.formats), m.created_at.strftime("%Y-%m-%d %H:%M"))


def describe(model: ModelSummary) -> str:
    """The details pane's text: gate verdict first (with its reasons), then the metrics."""
    lines = [f"{model.version} ({model.kind.value}): {model.status.value}"]
    verdict = model.gate_verdict
    if verdict is None:
        lines.append("Gate: not run yet.")
    else:
        lines.append(f"Gate: {'passed' if verdict.get('passed') else 'FAILED'} on "
                     f"{verdict.get('dataset')} against {verdict.get('baseline') or 'no baseline'}")
        lines += [f"  - {reason}" for reason in model.gate_reasons]
    lines.append("")
    lines.append(json.dumps(model.metrics, indent=2, sort_keys=True, default=str))
    return "\n".join(lines)


class ModelsPage(Page):
    """Select a version to see its verdict and metrics; Approve turns it into a release."""

    title = "Models"

    def __init__(self, context: PageContext) -> None:
        super().__init__(context)
        self.model: RowsTableModel[ModelSummary] = RowsTableModel(COLUMNS, model_cells)
        self.table = QTableView()
        self.table.setModel(self.model)
        configure_table(self.table, (100, 70, 100, 100, 260))
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.selectionModel().currentRowChanged.connect(self._selected)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        may = context.actor.may(Permission.APPROVE_MODEL)
        self.approve_button = QPushButton("Approve...")
        self.approve_button.setEnabled(False)
        self.approve_button.setToolTip("Sign the selected version as a release" if may
                                       else "Your role may not approve models")
        self.approve_button.clicked.connect(self.approve_selected)
        self.status = QLabel("")
        bar = QHBoxLayout()
        bar.addWidget(self.approve_button)
        bar.addWidget(self.status, 1)
        split = QSplitter()
        split.addWidget(self.table)
        split.addWidget(self.details)
        split.setSizes([640, 420])
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(split, 1)

    def refresh(self) -> None:
        db = self.context.project.db
        task = self.context.tasks.run("Loading models",
                                      lambda progress, cancel: model_summaries(db))
        task.succeeded.connect(self.model.set_rows)

    def selected(self) -> ModelSummary | None:
        row = self.table.selectionModel().currentIndex().row()
        return self.model.rows[row] if 0 <= row < len(self.model.rows) else None

    def _selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        model = self.selected()
        self.details.setPlainText(describe(model) if model else "")
        # Observers are not shipped to devices: nothing to approve.
        self.approve_button.setEnabled(model is not None and model.kind is ModelKind.EDGE
                                       and self.context.actor.may(Permission.APPROVE_MODEL))

    def approve_selected(self) -> None:
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
