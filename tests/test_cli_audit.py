"""``edgeloop audit export --format pdf`` as a user runs it (the real console script)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pypdf import PdfReader

from tests.test_cli import edgeloop


def test_export_the_audit_report_as_pdf(tmp_path: Path) -> None:
    root = tmp_path / "p"
    assert edgeloop("init", str(root), "--admin", "admin", "--name", "Line 3").returncode == 0
    p = ["--project", str(root)]
    edgeloop("users", "add", "ann", "--role", "annotator", "--no-password", *p)

    to_terminal = edgeloop("audit", "export", "--format", "pdf", *p)
    assert to_terminal.returncode == 2 and "give it with --out FILE" in to_terminal.stderr
    assert "Traceback" not in to_terminal.stderr and to_terminal.stdout == ""

    out = tmp_path / "audit.pdf"
    # Days around today, so a run that crosses midnight (UTC) still finds its events.
    today = datetime.now(timezone.utc).date()
    first, after = today - timedelta(days=1), today + timedelta(days=2)
    made = edgeloop("audit", "export", "--format", "pdf", "--out", str(out),
                    "--since", str(first), "--until", str(after), *p)
    assert made.returncode == 0, made.stderr
    assert f"Wrote 2 events to {out}." in made.stderr
    reader = PdfReader(out)
    text = "\n".join(page.extract_text() for page in reader.pages)
    for line in ("Audit report", "Project Line 3",
                 f"Period {first} 00:00:00 UTC to {after} 00:00:00 UTC",
                 "Prepared by admin", "The project has no model versions yet.",
                 "user admin", "user ann", f"Page {len(reader.pages)} of {len(reader.pages)}"):
        assert line in text, line

    tomorrow = edgeloop("audit", "export", "-f", "pdf", "-o", str(tmp_path / "none.pdf"),
                        "--since", str(after), *p)
    assert tomorrow.returncode == 0 and "Wrote 0 events" in tomorrow.stderr
    none = "\n".join(page.extract_text() for page in PdfReader(tmp_path / "none.pdf").pages)
    assert "No events were recorded in this period." in none and "user ann" not in none

    refused = edgeloop("audit", "export", "-f", "pdf", "-o", str(tmp_path / "ann.pdf"), *p,
                       user="ann")
    assert refused.returncode == 2 and not (tmp_path / "ann.pdf").exists()

    records = json.loads(edgeloop("audit", "export", "-f", "json", *p).stdout)
    exports = [r for r in records if r["action"] == "audit_exported"]
    assert [(r["object_id"], r["after"]["format"], r["after"]["events"]) for r in exports] == [
        (str(out), "pdf", 2), (str(tmp_path / "none.pdf"), "pdf", 0)]
