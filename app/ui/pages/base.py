"""What every page of the main window has: the project, the signed-in actor, the task runner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QTableView, QWidget

from app.core.project import Project
from app.core.roles import Actor
from app.ui.tasks import TaskRunner


@dataclass(frozen=True)
class PageContext:
    """The dependencies a page gets (no globals: a test builds its own)."""

    project: Project
    actor: Actor
    tasks: TaskRunner


class Page(QWidget):
    """A page of the sidebar. ``refresh`` reloads what it shows (called when it is shown)."""

    title = "page"
    icon_name = ""  # an icon of resources/icons; empty: the title in lower case

    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context

    def refresh(self) -> None:
        """Reload the page's data; the default shows nothing new."""

    def before_close(self) -> None:
        """The window is closing and its workers are about to stop: finish what must not be
        lost (an unsaved label) now, on the main thread. The default has nothing to do."""


Row = TypeVar("Row")
TINTED_TEXT = QColor("#1b1b1b")


class RowsTableModel(QAbstractTableModel, Generic[Row]):
    """A read-only table of plain rows: ``cells(row)`` gives a row's values in column order.

    The pages' tables hold at most a few thousand detached rows (devices, versions, models,
    the newest audit events), replaced whole on each refresh.
    """

    def __init__(self, columns: Sequence[str], cells: Callable[[Row], Sequence[object]]) -> None:
        super().__init__()
        self.columns = tuple(columns)
        self.cells = cells
        self.rows: list[Row] = []

    def set_rows(self, rows: list[Row]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt's name)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            # A cell a subclass tints (alerts, states, differences) has a light background in
            # both themes: its text must be dark, or the dark theme's light text vanishes.
            tinted = self.data(index, Qt.ItemDataRole.BackgroundRole) is not None
            return TINTED_TEXT if tinted else None
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return str(self.cells(self.rows[index.row()])[index.column()])


def configure_table(table: QTableView, widths: Sequence[int]) -> None:
    """One line per row (no wrapping), the given column widths, the last column stretched."""
    table.setWordWrap(False)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(24)
    table.horizontalHeader().setStretchLastSection(True)
    table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    for column, width in enumerate(widths):
        table.setColumnWidth(column, width)
