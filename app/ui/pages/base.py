"""What every page of the main window has: the project, the signed-in actor, the task runner."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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

    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context

    def refresh(self) -> None:
        """Reload the page's data; the default shows nothing new."""


def configure_table(table: QTableView, widths: Sequence[int]) -> None:
    """One line per row (no wrapping), the given column widths, the last column stretched."""
    table.setWordWrap(False)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(24)
    table.horizontalHeader().setStretchLastSection(True)
    table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    for column, width in enumerate(widths):
        table.setColumnWidth(column, width)
