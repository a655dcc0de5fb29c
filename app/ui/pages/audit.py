"""The Audit page: the event log of a period, filtered by actor and action, exported as CSV
or as the PDF audit report (model lineage and the period's events)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate
from PySide6.QtWidgets import (
    QDateEdit, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QTableView, QVBoxLayout,
)

from app.core.audit import event_record
from app.core.audit_export import ExportFormat, export_audit
from app.core.audit_report import summarize_change
from app.core.roles import Permission
from app.ui.pages.base import Page, PageContext, RowsTableModel, configure_table

COLUMNS = ("#", "When (UTC)", "Actor", "Action", "Object", "Details")
SHOWN = 5000  # newest events shown; the export has them all
DEFAULT_DAYS = 30
PathChooser = Callable[[ExportFormat, str], Path | None]
"""Asks where to save an export: ``(format, suggested file name) -> path or None``."""
FILTERS = {ExportFormat.CSV: "CSV (*.csv)", ExportFormat.PDF: "PDF (*.pdf)"}
NOT_ALLOWED = "Your role may not export the audit log (engineers and admins may)"


def event_cells(r: dict[str, Any]) -> tuple[object, ...]:
    """An audit event record as the table shows it."""
    details = summarize_change(r["before"], r["after"])
    return (r["seq"], r["at"][:19].replace("T", " "), r["actor"], r["action"],
            f"{r['object_type']} {r['object_id']}", details)


def day_range(first: date, last: date) -> tuple[datetime, datetime]:
    """Whole UTC days ``first`` to ``last`` (both included) as ``[since, until)``."""
    since = datetime.combine(first, time(0), tzinfo=timezone.utc)
    return since, datetime.combine(last + timedelta(days=1), time(0), tzinfo=timezone.utc)


def _save_dialog(parent: Page) -> PathChooser:
    def choose(fmt: ExportFormat, suggested: str) -> Path | None:
        name, _ = QFileDialog.getSaveFileName(parent, "Export the audit log", suggested,
                                              FILTERS[fmt])
        if not name:
            return None
        path = Path(name)
        # Qt's own dialog (used where no native one is) does not add the extension.
        return path if path.suffix else path.with_suffix(f".{fmt.value}")
    return choose


def _date_edit(day: date) -> QDateEdit:
    edit = QDateEdit(QDate(day.year, day.month, day.day))
    edit.setCalendarPopup(True)
    edit.setDisplayFormat("yyyy-MM-dd")
    return edit


class AuditPage(Page):
    """Who did what in the chosen days (UTC), newest first; the actor and action filters match
    the start of the name. Both exports take the chosen days, every actor and action."""

    title = "Audit"

    def __init__(self, context: PageContext, choose_path: PathChooser | None = None) -> None:
        super().__init__(context)
        self.choose_path = choose_path or _save_dialog(self)
        self.actor_filter = QLineEdit()
        self.actor_filter.setPlaceholderText("actor")
        self.action_filter = QLineEdit()
        self.action_filter.setPlaceholderText("action, e.g. model.")
        today = context.project.clock().astimezone(timezone.utc).date()
        self.from_date = _date_edit(today - timedelta(days=DEFAULT_DAYS))
        self.to_date = _date_edit(today)
        self.from_date.setToolTip("First day shown and exported (UTC)")
        self.to_date.setToolTip("Last day shown and exported (UTC), included")
        self.to_date.setMinimumDate(self.from_date.date())
        self.count = QLabel("")
        may = context.actor.may(Permission.EXPORT_AUDIT)
        self.export_button = QPushButton("Export CSV...")
        self.pdf_button = QPushButton("Export PDF...")
        self.export_button.setToolTip("Every event of the chosen days, as CSV" if may
                                      else NOT_ALLOWED)
        self.pdf_button.setToolTip("The audit report of the chosen days: model lineage "
                                   "(data, training, approvals, deployments) and events"
                                   if may else NOT_ALLOWED)
        for button in (self.export_button, self.pdf_button):
            button.setEnabled(may)
        self.model: RowsTableModel[dict[str, Any]] = RowsTableModel(COLUMNS, event_cells)
        self.table = QTableView()
        self.table.setModel(self.model)
        configure_table(self.table, (60, 150, 110, 190, 210))
        for box in (self.actor_filter, self.action_filter):
            box.returnPressed.connect(self.refresh)
        self.from_date.dateChanged.connect(self._range_changed)
        self.to_date.dateChanged.connect(self.refresh)
        self.export_button.clicked.connect(lambda: self.export(ExportFormat.CSV))
        self.pdf_button.clicked.connect(lambda: self.export(ExportFormat.PDF))
        bar = QHBoxLayout()
        bar.addWidget(QLabel("From"))
        bar.addWidget(self.from_date)
        bar.addWidget(QLabel("to"))
        bar.addWidget(self.to_date)
        for widget in (self.actor_filter, self.action_filter, self.count):
            bar.addWidget(widget)
        bar.addStretch(1)
        bar.addWidget(self.export_button)
        bar.addWidget(self.pdf_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table)

    def period(self) -> tuple[datetime, datetime]:
        """The chosen days as ``[since, until)`` in UTC."""
        return day_range(self.from_date.date().toPython(), self.to_date.date().toPython())

    def _range_changed(self) -> None:
        # The last day may not come before the first; moving it up changes it, which refreshes.
        before = self.to_date.date()
        self.to_date.setMinimumDate(self.from_date.date())
        if self.to_date.date() == before:
            self.refresh()

    def refresh(self) -> None:
        db, audit = self.context.project.db, self.context.project.audit
        # Read on the main thread: the worker below must not touch a widget.
        actor, action = self.actor_filter.text().strip(), self.action_filter.text().strip()
        since, until = self.period()

        def load(progress, cancel):  # type: ignore[no-untyped-def]
            with db.read() as session:
                rows = [event_record(e) for e in audit.events(session, since=since, until=until)
                        if e.actor.startswith(actor) and e.action.startswith(action)]
            return rows[::-1][:SHOWN]

        task = self.context.tasks.run("Loading the audit log", load)
        task.succeeded.connect(self._show)

    def _show(self, rows: list[dict[str, Any]]) -> None:
        self.model.set_rows(rows)
        self.count.setText(f"{len(rows)} event(s)" + (" (newest shown)" if len(rows) == SHOWN
                                                      else ""))

    def export(self, fmt: ExportFormat) -> None:
        """Ask where, then write the chosen days as ``fmt`` (audited, like the CLI's export)."""
        first, last = self.from_date.date().toPython(), self.to_date.date().toPython()
        path = self.choose_path(fmt, f"audit-{first}-to-{last}.{fmt.value}")
        if path is None:
            return
        project, actor = self.context.project, self.context.actor
        since, until = self.period()

        def write(progress, cancel):  # type: ignore[no-untyped-def]
            return export_audit(project.db, project.audit, actor, fmt, path, since=since,
                                until=until, project_name=project.name, clock=project.clock)

        what = "the audit report" if fmt is ExportFormat.PDF else "the audit log"
        task = self.context.tasks.run(f"Exporting {what}", write)
        task.succeeded.connect(lambda n: self.count.setText(f"exported {n} event(s) to {path}"))
