"""A confusion matrix as a table: rows are the true class, columns the predicted one.

Each cell shows its count on a background whose intensity grows with the count (the
largest cell darkest), so the diagonal and the classes a model confuses stand out at a
glance; the tooltip gives the count and its share of the true class's images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHeaderView, QTableView, QWidget

# The darkest cell's colour (a blue that keeps white text readable); empty cells stay white.
_FULL = QColor(31, 94, 168)


def cell_colour(count: int, largest: int) -> QColor:
    """The background of a cell of ``count`` when the largest cell holds ``largest``."""
    share = count / largest if largest > 0 else 0.0
    return QColor(*(round(255 + (full - 255) * share)
                    for full in (_FULL.red(), _FULL.green(), _FULL.blue())))


class ConfusionMatrixModel(QAbstractTableModel):
    """``counts[i][j]``: images of class ``labels[i]`` predicted as ``labels[j]``."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[str] = []
        self.counts: list[list[int]] = []
        self._largest = 0

    def set_matrix(self, labels: Sequence[str], counts: Sequence[Sequence[int]]) -> None:
        """Show ``counts`` (square, one row and column per label); empty lists clear it."""
        if len(counts) != len(labels) or any(len(row) != len(labels) for row in counts):
            raise ValueError(f"a confusion matrix of {len(labels)} classes needs "
                             f"{len(labels)} x {len(labels)} counts")
        self.beginResetModel()
        self.labels = list(labels)
        self.counts = [list(row) for row in counts]
        self._largest = max((n for row in self.counts for n in row), default=0)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt's name)
        return 0 if parent.isValid() else len(self.labels)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.labels)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not 0 <= section < len(self.labels):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.labels[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"predicted {self.labels[section]}" if orientation == Qt.Orientation.Horizontal
                    else f"truly {self.labels[section]}: "
                         f"{sum(self.counts[section])} test images")
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        count = self.counts[row][column]
        if role == Qt.ItemDataRole.DisplayRole:
            return str(count)
        if role == Qt.ItemDataRole.BackgroundRole:
            return cell_colour(count, self._largest)
        if role == Qt.ItemDataRole.ForegroundRole:
            # Dark text on light cells, white on dark ones.
            dark = self._largest > 0 and count / self._largest > 0.5
            return QColor(255, 255, 255) if dark else QColor(20, 20, 20)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(row, column)
        return None

    def tooltip(self, row: int, column: int) -> str:
        """The cell's count and its share of the true class (the row)."""
        count, total = self.counts[row][column], sum(self.counts[row])
        share = f"{100 * count / total:.1f}%" if total else "-"
        truth, predicted = self.labels[row], self.labels[column]
        what = "correct" if row == column else f"{truth} taken for {predicted}"
        return (f"true {truth}, predicted {predicted}: {count} image(s), {share} of the "
                f"{total} {truth} images ({what})")


class ConfusionMatrixView(QTableView):
    """The table that shows a :class:`ConfusionMatrixModel`, headers on both sides."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.matrix = ConfusionMatrixModel()
        self.setModel(self.matrix)
        self.setSelectionMode(QTableView.SelectionMode.NoSelection)
        self.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
        self.setWordWrap(False)
        # The cells share the view's area: a heat map, whatever the number of classes.
        for header in (self.horizontalHeader(), self.verticalHeader()):
            header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
            header.setHighlightSections(False)
            header.setMinimumSectionSize(28)
        self.horizontalHeader().setToolTip("predicted class")
        self.verticalHeader().setToolTip("true class")

    def set_matrix(self, labels: Sequence[str], counts: Sequence[Sequence[int]]) -> None:
        self.matrix.set_matrix(labels, counts)

    def clear(self) -> None:
        self.matrix.set_matrix([], [])
