"""The Audit page: the log as a user filters and exports it (CSV, and the PDF report for a
range of days)."""

from __future__ import annotations

import csv
from pathlib import Path

from pypdf import PdfReader
from PySide6.QtCore import QDate, Qt
from sqlalchemy import select

from app.core.audit_export import ExportFormat
from app.core.models import AuditEvent, Role
from app.core.project import Project
from app.core.triggers import request_run
from app.core.users import actor_named, add_user
from app.ui.pages.audit import AuditPage
from app.ui.pages.base import PageContext
from app.ui.tasks import TaskRunner
from tests.conftest import FakeClock
from tests.support.lineage import build_lineage


def test_filter_and_export_the_audit_log(qtbot, sqlite_project: Project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = sqlite_project
    admin = actor_named(p.db, "admin")
    add_user(p.db, p.audit, admin, "ann", Role.ANNOTATOR)
    request_run(p.db, p.audit, admin, "new lens")  # one event of another kind
    runner = TaskRunner()
    out = tmp_path / "audit.csv"
    page = AuditPage(PageContext(p, admin, runner), choose_path=lambda fmt, name: out)
    qtbot.addWidget(page)
    try:
        page.refresh()
        qtbot.waitUntil(lambda: page.model.rowCount() >= 2, timeout=5000)
        everything = page.model.rowCount()
        assert page.model.data(page.model.index(0, 3)) == "settings.change"  # newest first
        page.action_filter.setText("user_added")
        page.refresh()
        qtbot.waitUntil(lambda: page.model.rowCount() < everything, timeout=5000)
        assert {r["action"] for r in page.model.rows} == {"user_added"}
        qtbot.mouseClick(page.export_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(out.exists, timeout=5000)
        with out.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == everything and rows[-1]["action"] == "settings.change"
        qtbot.waitUntil(lambda: "exported" in page.count.text(), timeout=5000)
    finally:
        runner.shutdown()
    annotator = AuditPage(PageContext(p, actor_named(p.db, "ann"), TaskRunner()))
    qtbot.addWidget(annotator)
    assert not annotator.export_button.isEnabled() and not annotator.pdf_button.isEnabled()
    assert "may not export" in annotator.pdf_button.toolTip()
    annotator.context.tasks.shutdown()


def type_date(qtbot, edit, text: str) -> None:  # type: ignore[no-untyped-def]
    """Select the date's text and type another, as a user does."""
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key.Key_Return)


def test_export_the_audit_report_of_chosen_days_as_pdf(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, clock: FakeClock, runner: TaskRunner,
        tmp_path: Path) -> None:
    p = sqlite_project  # its clock starts on 2026-11-01
    admin = actor_named(p.db, "admin")
    add_user(p.db, p.audit, admin, "early-bird", Role.ANNOTATOR)  # before the chosen days
    clock.advance(days=5)
    lineage = build_lineage(p)  # on 2026-11-06
    clock.advance(days=3)
    request_run(p.db, p.audit, admin, "late-request", clock=clock)  # 2026-11-09: after them
    out = tmp_path / "report.pdf"
    asked: list[tuple[ExportFormat, str]] = []
    page = AuditPage(PageContext(p, admin, runner),
                     choose_path=lambda fmt, name: asked.append((fmt, name)) or out)
    qtbot.addWidget(page)
    assert page.to_date.date() == QDate(2026, 11, 9)  # the last 30 days by default
    assert page.from_date.date() == QDate(2026, 10, 10)
    page.refresh()
    qtbot.waitUntil(lambda: page.model.rowCount() > 0, timeout=5000)
    everything = page.model.rowCount()

    type_date(qtbot, page.from_date, "2026-11-05")
    type_date(qtbot, page.to_date, "2026-11-08")
    assert (page.from_date.date(), page.to_date.date()) == (QDate(2026, 11, 5), QDate(2026, 11, 8))
    qtbot.waitUntil(lambda: 0 < page.model.rowCount() < everything, timeout=5000)
    shown = {(r["action"], r["object_id"]) for r in page.model.rows}
    assert ("model.approve", "edge-1") in shown and ("user_added", "early-bird") not in shown

    assert page.pdf_button.isEnabled()
    qtbot.mouseClick(page.pdf_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "exported" in page.count.text(), timeout=60000)
    assert asked == [(ExportFormat.PDF, "audit-2026-11-05-to-2026-11-08.pdf")]
    reader = PdfReader(out)
    text = "\n".join(pdf_page.extract_text() for pdf_page in reader.pages)
    for line in ("Period 2026-11-05 00:00:00 UTC to 2026-11-09 00:00:00 UTC (excluded)",
                 "edge-1  (edge model, deployed)", "Dataset version inspection@1",
                 f"Training run #{lineage.trained.run_id} succeeded",
                 "Approvals admin, 2026-11-06", "first release for line 1",
                 "cam-line-1 healthy", "cam-line-2 failed", "Fine-tuned from edge-1",
                 "model.approve", "rollout.start", "train.succeeded"):
        assert line in text, line
    assert "early-bird" not in text and "late-request" not in text
    with p.db.read() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert (last.action, last.actor, last.object_id) == ("audit_exported", "admin", str(out))
        assert last.after["format"] == "pdf" and f"exported {last.after['events']} event(s)" \
            in page.count.text()
