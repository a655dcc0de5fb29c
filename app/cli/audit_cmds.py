"""``edgeloop audit verify|export``."""

from __future__ import annotations

import enum
import io
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import DbOpt, ProjectOpt, UserOpt, acting_user, open_from_cli
from app.core.audit import write_csv, write_json
from app.core.errors import InvalidInput
from app.core.fsutil import atomic_write_text
from app.core.roles import Permission, authorize

audit_app = typer.Typer(help="Check and export the audit trail.", no_args_is_help=True)


class ExportFormat(str, enum.Enum):
    CSV = "csv"
    JSON = "json"


def _parse_day(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{option} {value!r}: give a date like 2026-11-23") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@audit_app.command("verify")
def verify(project: ProjectOpt = Path("."), db: DbOpt = None) -> None:
    """Check the hash chain; name every edited, deleted or reordered event."""
    with open_from_cli(project, db) as p, p.db.read() as session:
        report = p.audit.verify(session)
    if report.ok:
        typer.echo(f"Audit trail intact: {report.events} events, hash chain verified.")
        return
    typer.echo(f"Audit trail BROKEN: {len(report.problems)} problem(s) in {report.events} events:")
    for problem in report.problems:
        typer.echo(f"  [{problem.kind}] {problem.message}")
    raise typer.Exit(1)


@audit_app.command("export")
def export(
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f")] = ExportFormat.CSV,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: stdout).")] = None,
    since: Annotated[str | None, typer.Option(help="First day (ISO date), inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="Last moment (ISO date), exclusive.")] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Export audit events as CSV or JSON (the export itself is audited)."""
    start, end = _parse_day(since, "--since"), _parse_day(until, "--until")
    with open_from_cli(project, db) as p:
        actor = acting_user(p, user)
        authorize(p.db, p.audit, actor, Permission.EXPORT_AUDIT, "audit export")
        writer = write_csv if fmt is ExportFormat.CSV else write_json
        buffer = io.StringIO()
        with p.db.read() as session:
            count = writer(p.audit.events(session, since=start, until=end), buffer)
        if out is None:
            sys.stdout.write(buffer.getvalue())
        else:
            atomic_write_text(out, buffer.getvalue())
        with p.db.write() as session:
            p.audit.append(
                session, actor=actor.name, action="audit_exported", object_type="audit",
                object_id=str(out or "stdout"),
                after={"format": fmt.value, "events": count, "since": since, "until": until},
            )
    if out is not None:
        typer.echo(f"Wrote {count} events to {out}.", err=True)
