"""The Audit page: the event log, filtered by actor and action, exported as CSV."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QTableView, QVBoxLayout,
)

from app.core.audit import event_record, write_csv
from app.core.fsutil import atomic_write_text
from app.core.roles import Permission, authorize
from app.ui.pages.base import Page, PageContext, RowsTableModel, configure_table

COLUMNS = ("#", "When (UTC)", "Actor", "Action", "Object", "Details")
SHOWN = 5000  # newest events shown; the export has them all
PathChooser = Callable[[], Path | None]


def event_cells(r: dict[str, Any]) -> tuple[object, ...]:
    """An audit event record as the table shows it."""
    details = json.dumps(r["after"], sort_keys=True)[:200] if r["after"] else ""
    return (r["seq"], r["at"][:19].replace("T", " "), r["actor"], r["action"],
            f"{r['object_type']} {r['object_id']}", details)


def _save_dialog(parent: Page) -> PathChooser:
    def choose() -> Path | None:
        name, _ = QFileDialog.getSaveFileName(parent, "Export the audit log", "audit.csv",
                                              "CSV (*.csv)")
        return Path(name) if name else None
    return choose


class AuditPage(Page):
    """Who did what, newest first; filters match the start of the actor and action."""

    title = "Audit"

    def __init__(self, context: PageContext, choose_path: PathChooser | None = None) -> None:
        super().__init__(context)
        self.choose_path = choose_path or _save_dialog(self)
        self.actor_filter = QLineEdit()
        self.actor_filter.setPlaceholderText("actor")
        self.action_filter = QLineEdit()
        self.action_filter.setPlaceholderText("action, e.g. model.")
        self.count = QLabel("")
        self.export_button = QPushButton("Export CSV...")
        self.export_button.setEnabled(context.actor.may(Permission.EXPORT_AUDIT))
        self.model: RowsTableModel[dict[str, Any]] = RowsTableModel(COLUMNS, event_cells)
        self.table = QTableView()
        self.table.setModel(self.model)
        configure_table(self.table, (60, 150, 110, 170, 200))
        for box in (self.actor_filter, self.action_filter):
            box.returnPressed.connect(self.refresh)
        self.export_button.clicked.connect(self.export)
        bar = QHBoxLayout()
        for widget in (self.actor_filter, self.action_filter, self.count):
            bar.addWidget(widget)
        bar.addStretch(1)
        bar.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table)

    def refresh(self) -> None:
        db, audit = self.context.project.db, self.context.project.audit
        # Read on the main thread: the worker below must not touch a widget.
        actor, action = self.actor_filter.text().strip(), self.action_filter.text().strip()

        def load(progress, cancel):  # type: ignore[no-untyped-def]
            with db.read() as session:
                rows = [event_record(e) for e in audit.events(session)
                        if e.actor.startswith(actor) and e.action.startswith(action)]
            return rows[::-1][:SHOWN]

        task = self.context.tasks.run("Loading the audit log", load)
        task.succeeded.connect(self._show)

    def _show(self, rows: list[dict[str, Any]]) -> None:
        self.model.set_rows(rows)
        self.count.setText(f"{len(rows)} event(s)" + (" (newest shown)" if len(rows) == SHOWN
                                                      else ""))

    def export(self) -> None:
        path = self.choose_path()
        if path is None:
            return
        project, actor = self.context.project, self.context.actor

        def write(progress, cancel):  # type: ignore[no-untyped-def]
            import io

            authorize(project.db, project.audit, actor, Permission.EXPORT_AUDIT,
                      "export the audit log")
            buffer = io.StringIO()
            with project.db.read() as session:
                count = write_csv(project.audit.events(session), buffer)
            atomic_write_text(path, buffer.getvalue())
            return count

        task = self.context.tasks.run("Exporting the audit log", write)
        task.succeeded.connect(lambda n: self.count.setText(f"exported {n} event(s) to {path}"))
