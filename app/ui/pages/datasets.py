"""The Datasets page: frozen versions with their sizes per split and class; diff of two."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTableView, QVBoxLayout

from app.core.datasets import VersionDiff, VersionSummary, diff_versions, list_versions
from app.ui.pages.base import Page, PageContext, RowsTableModel, configure_table

COLUMNS = ("Version", "Frozen (UTC)", "By", "Samples", "Train / val / test", "Per class", "Notes")


def version_cells(v: VersionSummary) -> tuple[object, ...]:
    """A dataset version as the table shows it."""
    splits = v.by_split
    return (v.ref, v.frozen_at.strftime("%Y-%m-%d %H:%M") if v.frozen_at else "-",
            v.created_by or "-", v.total,
            " / ".join(str(splits.get(s, 0)) for s in ("train", "val", "test")),
            ", ".join(f"{name} {n}" for name, n in sorted(v.by_class.items())), v.notes)


def describe_diff(diff: VersionDiff) -> str:
    """One line a person reads: what changed from ``a`` to ``b``."""
    if diff.unchanged:
        return f"{diff.a} and {diff.b} hold the same samples, labels and splits."
    return (f"{diff.a} -> {diff.b}: {len(diff.added)} added, {len(diff.removed)} removed, "
            f"{len(diff.relabelled)} relabelled, {len(diff.moved)} moved between splits")


class DatasetsPage(Page):
    """Select two versions and press Diff to see what changed between them."""

    title = "Datasets"

    def __init__(self, context: PageContext) -> None:
        super().__init__(context)
        self.model: RowsTableModel[VersionSummary] = RowsTableModel(COLUMNS, version_cells)
        self.table = QTableView()
        self.table.setModel(self.model)
        configure_table(self.table, (120, 130, 90, 70, 130, 380))
        self.table.setSelectionMode(QTableView.SelectionMode.ExtendedSelection)
        self.diff_button = QPushButton("Diff two selected")
        self.diff_button.clicked.connect(self.diff_selected)
        self.result = QLabel("Select two versions to compare them.")
        self.result.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(self.diff_button)
        bar.addWidget(self.result, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)

    def refresh(self) -> None:
        db = self.context.project.db
        task = self.context.tasks.run("Loading dataset versions",
                                      lambda progress, cancel: list_versions(db))
        # Newest first within each dataset.
        task.succeeded.connect(lambda rows: self.model.set_rows(
            sorted(rows, key=lambda v: (v.dataset, -v.number))))

    def diff_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        if len(rows) != 2:
            self.result.setText("Select exactly two versions (Ctrl-click the second).")
            return
        older, newer = sorted((self.model.rows[r] for r in rows), key=lambda v: v.number)
        db = self.context.project.db
        task = self.context.tasks.run(
            "Comparing versions", lambda progress, cancel: diff_versions(db, older.ref, newer.ref))
        task.succeeded.connect(lambda diff: self.result.setText(describe_diff(diff)))
