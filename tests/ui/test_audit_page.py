"""The Audit page: the log as a user filters and exports it; the app starts and closes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from PySide6.QtCore import Qt

from app.core.models import Role
from app.core.project import Project
from app.core.triggers import request_run
from app.core.users import actor_named, add_user
from app.ui.pages.audit import AuditPage
from app.ui.pages.base import PageContext
from app.ui.tasks import TaskRunner


def test_filter_and_export_the_audit_log(qtbot, sqlite_project: Project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = sqlite_project
    admin = actor_named(p.db, "admin")
    add_user(p.db, p.audit, admin, "ann", Role.ANNOTATOR)
    request_run(p.db, p.audit, admin, "new lens")  # one event of another kind
    runner = TaskRunner()
    out = tmp_path / "audit.csv"
    page = AuditPage(PageContext(p, admin, runner), choose_path=lambda: out)
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
    assert not annotator.export_button.isEnabled()
    annotator.context.tasks.shutdown()


def test_the_app_starts_on_a_project(sqlite_project: Project) -> None:
    """The real entry point, in its own process (its event loop must not share pytest-qt's):
    it signs the password-less admin in and keeps running until it is told to stop."""
    root = sqlite_project.root
    sqlite_project.close()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(root)}
    app = subprocess.Popen([sys.executable, "-m", "app.cli.main", "gui", "--project", str(root),
                            "--user", "admin"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6)
        assert app.poll() is None, app.communicate()
    finally:
        app.terminate()
        _, err = app.communicate(timeout=20)
    assert "Traceback" not in err, err
