"""Two model versions side by side: their scores with the difference, and their lineage.

Shows an :class:`~app.core.model_comparison.ModelComparison`: a table of metrics (first,
second, first minus second, green where the first is better and red where it is worse) and a
table of lineage facts beside it, the ones that differ in bold on a yellow background.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QLabel, QSplitter, QTableView, QVBoxLayout, QWidget

from app.core.model_comparison import (
    LineageDifference, MetricDifference, ModelComparison, Outcome,
)
from app.ui.pages.base import RowsTableModel, configure_table

OUTCOME_COLOURS = {Outcome.BETTER: QColor(200, 236, 207), Outcome.WORSE: QColor(246, 205, 205)}
DIFFERS = QColor(255, 243, 191)


def show_value(metric: MetricDifference, value: float | None, signed: bool = False) -> str:
    """A metric's value (or difference) with its unit, in the digits the metric deserves."""
    if value is None:
        return "-"
    value = round(value, metric.digits) + 0.0  # no "-0.00" for a difference too small to read
    text = f"{value:+.{metric.digits}f}" if signed else f"{value:.{metric.digits}f}"
    return f"{text} {metric.unit}".rstrip()


def metric_cells(m: MetricDifference) -> tuple[object, ...]:
    return (m.name, show_value(m, m.first), show_value(m, m.second),
            show_value(m, m.difference, signed=True))


class MetricDifferencesModel(RowsTableModel[MetricDifference]):
    """Metric, first, second, difference; the difference cell coloured by the outcome."""

    def __init__(self) -> None:
        super().__init__(("Metric", "First", "Second", "Difference"), metric_cells)
        self.first, self.second = "first", "second"

    def name_columns(self, first: str, second: str) -> None:
        self.first, self.second = first, second
        self.columns = ("Metric", first, second, f"{first} - {second}")
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, len(self.columns) - 1)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        metric = self.rows[index.row()]
        if role == Qt.ItemDataRole.BackgroundRole and index.column() == 3:
            return OUTCOME_COLOURS.get(metric.outcome)
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 3:
            if metric.outcome in (Outcome.BETTER, Outcome.WORSE):
                return (f"{self.first} is {metric.outcome.value} than {self.second} on "
                        f"{metric.name} ({'higher' if metric.higher_is_better else 'lower'} "
                        "is better)")
            return None
        return super().data(index, role)


def lineage_cells(fact: LineageDifference) -> tuple[object, ...]:
    return (fact.name, fact.first, fact.second)


class LineageModel(RowsTableModel[LineageDifference]):
    """Fact, first, second; the facts that differ stand out."""

    def __init__(self) -> None:
        super().__init__(("Lineage", "First", "Second"), lineage_cells)

    def name_columns(self, first: str, second: str) -> None:
        self.columns = ("Lineage", first, second)
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, len(self.columns) - 1)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        differs = self.rows[index.row()].differs
        if role == Qt.ItemDataRole.BackgroundRole and differs:
            return DIFFERS
        if role == Qt.ItemDataRole.FontRole and differs:
            font = QFont()
            font.setBold(True)
            return font
        return super().data(index, role)


class ComparisonView(QWidget):
    """A caption, the metrics table and the lineage table of one comparison."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel("Select two versions (Ctrl-click) or choose one to compare with.")
        self.caption.setWordWrap(True)
        self.metrics = MetricDifferencesModel()
        self.metrics_table = QTableView()
        self.metrics_table.setModel(self.metrics)
        configure_table(self.metrics_table, (150, 110, 110))
        self.lineage = LineageModel()
        self.lineage_table = QTableView()
        self.lineage_table.setModel(self.lineage)
        configure_table(self.lineage_table, (110, 190))
        tables = QSplitter()
        tables.addWidget(self.metrics_table)
        tables.addWidget(self.lineage_table)
        tables.setSizes([540, 500])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(tables, 1)

    def show_comparison(self, comparison: ModelComparison | None) -> None:
        """Show ``comparison``; None clears both tables."""
        if comparison is None:
            self.caption.setText("Select two versions (Ctrl-click) or choose one to compare "
                                 "with.")
            self.metrics.set_rows([])
            self.lineage.set_rows([])
            return
        first, second = comparison.first, comparison.second
        self.metrics.name_columns(first, second)
        self.lineage.name_columns(first, second)
        self.metrics.set_rows(list(comparison.metrics))
        self.lineage.set_rows(list(comparison.lineage))
        if comparison.first_format is None or comparison.second_format is None:
            self.caption.setText(f"{first} against {second}: "
                                 f"{first if comparison.first_format is None else second} has "
                                 "no stored scores; Evaluate it first.")
            return
        if comparison.first_format is comparison.second_format:
            text = f"{first} against {second}, both as {comparison.first_format.value}."
        else:
            text = (f"{first} as {comparison.first_format.value} against {second} as "
                    f"{comparison.second_format.value} (no format scored for both).")
        if not comparison.same_test_split:
            text += (f" Scored on different test splits ({comparison.first_dataset} and "
                     f"{comparison.second_dataset}): the differences only hint; the gate "
                     "compares on one split.")
        self.caption.setText(f"{text} Green: {first} is better; red: worse.")
