"""Exporting the audit trail (CSV, JSON or the PDF report), and recording that it was exported.

One function for the CLI and the GUI alike: it checks the actor may export, writes the file
atomically (or the text to a stream), then appends an ``audit_exported`` event naming the
format, the period and how many events went out. The export's own event is therefore not
in the file it wrote, but in every export after it.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

from app.core.audit import AuditTrail, write_csv, write_json
from app.core.audit_pdf import write_audit_pdf
from app.core.audit_report import build_audit_report
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.fsutil import atomic_write_text
from app.core.models import utcnow
from app.core.roles import Actor, Permission, authorize

EXPORT_ACTION = "audit_exported"


class ExportFormat(str, enum.Enum):
    """What an audit export is written as."""

    CSV = "csv"
    JSON = "json"
    PDF = "pdf"  # the report: model lineage and the period's events


def export_audit(db: Database, audit: AuditTrail, actor: Actor, fmt: ExportFormat,
                 out: Path | TextIO, *, since: datetime | None = None,
                 until: datetime | None = None, project_name: str = "",
                 clock: Callable[[], datetime] = utcnow) -> int:
    """Write the events in ``[since, until)`` to ``out`` as ``fmt``; audit it; return how many.

    ``out`` is a file path, or for CSV and JSON also a text stream (the CLI's stdout). A PDF
    needs a path.
    """
    authorize(db, audit, actor, Permission.EXPORT_AUDIT, "export the audit log")
    if fmt is ExportFormat.PDF:
        if not isinstance(out, Path):
            raise InvalidInput("a PDF report cannot be written to the terminal; give a file "
                               "with --out FILE")
        report = build_audit_report(db, audit, since, until, clock, project_name=project_name,
                                    prepared_by=actor.name)
        write_audit_pdf(report, out)
        count = len(report.events)
        extra = {"models": len(report.lineage)}
    else:
        writer = write_csv if fmt is ExportFormat.CSV else write_json
        buffer = io.StringIO()
        with db.read() as session:
            count = writer(audit.events(session, since=since, until=until), buffer)
        if isinstance(out, Path):
            atomic_write_text(out, buffer.getvalue())
        else:
            out.write(buffer.getvalue())
        extra = {}
    with db.write() as session:
        audit.append(session, actor=actor.name, action=EXPORT_ACTION, object_type="audit",
                     object_id=str(out) if isinstance(out, Path) else "stdout",
                     after={"format": fmt.value, "events": count, **extra,
                            "since": since.isoformat() if since else None,
                            "until": until.isoformat() if until else None})
    return count
