"""The ``edgeloop`` command as a user runs it: the real console script in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

EDGELOOP = shutil.which("edgeloop", path=str(Path(sys.executable).parent)) or "edgeloop"


def edgeloop(*args: str, input: str | None = None, user: str = "admin") -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGELOOP_USER": user}
    return subprocess.run([EDGELOOP, *args], capture_output=True, text=True, input=input,
                          env=env, timeout=120)


@pytest.fixture
def cli_project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    result = edgeloop("init", str(root), "--admin", "admin")
    assert result.returncode == 0, result.stderr
    assert "Created project" in result.stdout
    return root


def test_init_then_info(cli_project: Path) -> None:
    result = edgeloop("info", "--project", str(cli_project))
    assert result.returncode == 0, result.stderr
    assert f"Folder:          {cli_project}" in result.stdout
    from app.core.schema import head_revision

    assert f"Schema revision: {head_revision()}" in result.stdout
    assert "Users:           1" in result.stdout
    assert (cli_project / "keys").stat().st_mode & 0o777 == 0o700


def test_init_refuses_an_existing_project(cli_project: Path) -> None:
    result = edgeloop("init", str(cli_project), "--admin", "admin")
    assert result.returncode == 2
    assert "already holds an EdgeLoop project" in result.stderr
    assert "Traceback" not in result.stderr


def test_users_add_and_list_with_roles_enforced(cli_project: Path) -> None:
    p = ["--project", str(cli_project)]
    added = edgeloop("users", "add", "ann", "--role", "annotator", *p,
                     input="annotate-me\nannotate-me\n")
    assert added.returncode == 0, added.stderr
    listed = edgeloop("users", "list", *p)
    assert [line.split()[:4] for line in listed.stdout.splitlines()[1:]] == [
        ["admin", "admin", "yes", "none"], ["ann", "annotator", "yes", "set"],
    ]
    refused = edgeloop("users", "add", "eve", "--role", "admin", "--no-password", *p, user="ann")
    assert refused.returncode == 2
    assert "ann is an annotator and may not manage users" in refused.stderr
    unknown = edgeloop("users", "list", "--project", str(cli_project / "nope"))
    assert unknown.returncode == 2 and "no EdgeLoop project" in unknown.stderr


def test_audit_verify_and_export(cli_project: Path, tmp_path: Path) -> None:
    p = ["--project", str(cli_project)]
    edgeloop("users", "add", "ann", "--role", "annotator", "--no-password", *p)
    ok = edgeloop("audit", "verify", *p)
    assert ok.returncode == 0 and "intact: 2 events" in ok.stdout

    out_csv, out_json = tmp_path / "a.csv", tmp_path / "a.json"
    assert edgeloop("audit", "export", "-f", "csv", "-o", str(out_csv), *p).returncode == 0
    assert edgeloop("audit", "export", "-f", "json", "-o", str(out_json), *p).returncode == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["action"] for r in rows] == ["user_added", "user_added"]
    records = json.loads(out_json.read_text())
    # The JSON export came after the CSV export, whose own audit event it therefore carries.
    assert [r["action"] for r in records] == ["user_added", "user_added", "audit_exported"]

    with sqlite3.connect(cli_project / "project.db") as conn:
        conn.execute("UPDATE audit_events SET after = '{\"role\": \"admin\"}' WHERE seq = 2")
    broken = edgeloop("audit", "verify", *p)
    assert broken.returncode == 1
    assert "[edited] event #2 (user_added user ann" in broken.stdout


def test_bad_dates_and_db_urls_are_explained(cli_project: Path) -> None:
    bad_date = edgeloop("audit", "export", "--since", "yesterday", "--project", str(cli_project))
    assert bad_date.returncode == 2 and "give a date like" in bad_date.stderr
    bad_db = edgeloop("info", "--project", str(cli_project), "--db", "mysql://x/y")
    assert bad_db.returncode == 2 and "SQLite and PostgreSQL only" in bad_db.stderr


@pytest.mark.postgres
def test_a_project_on_postgresql(tmp_path: Path, postgres_server) -> None:  # type: ignore[no-untyped-def]
    url = postgres_server.create_database("cli_project")
    root = tmp_path / "team"
    created = edgeloop("init", str(root), "--admin", "admin", "--db", url)
    assert created.returncode == 0, created.stderr
    assert json.loads((root / "project.json").read_text())["database"] == url
    assert not (root / "project.db").exists()
    added = edgeloop("users", "add", "eng", "--role", "engineer", "--no-password",
                     "--project", str(root))
    assert added.returncode == 0, added.stderr
    info = edgeloop("info", "--project", str(root))
    assert "Database:        postgresql+psycopg://postgres@127.0.0.1" in info.stdout
    assert "Users:           2" in info.stdout
    assert edgeloop("audit", "verify", "--project", str(root)).returncode == 0


def test_a_usage_error_is_a_message_not_a_traceback(cli_project: Path) -> None:
    wrong = edgeloop("info", "--bogus", "--project", str(cli_project))
    assert wrong.returncode == 2
    assert "No such option: --bogus" in wrong.stderr and "Traceback" not in wrong.stderr
    missing = edgeloop("models", "gate")
    assert missing.returncode == 2 and "Missing argument" in missing.stderr
