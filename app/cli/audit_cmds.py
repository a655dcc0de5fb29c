"""``edgeloop audit verify|export`` (export: CSV, JSON or the PDF audit report)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import DbOpt, ProjectOpt, UserOpt, acting_user, open_from_cli
from app.core.audit_export import ExportFormat, export_audit
from app.core.errors import InvalidInput

audit_app = typer.Typer(help="Check and export the audit trail.", no_args_is_help=True)


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
    """Export audit events as CSV or JSON, or the audit report (model lineage and the
    period's events) as PDF to --out. The export itself is audited."""
    start, end = _parse_day(since, "--since"), _parse_day(until, "--until")
    if fmt is ExportFormat.PDF and out is None:
        raise InvalidInput("--format pdf writes a file: give it with --out FILE "
                           "(for example --out audit.pdf)")
    with open_from_cli(project, db) as p:
        count = export_audit(p.db, p.audit, acting_user(p, user), fmt,
                             sys.stdout if out is None else out, since=start, until=end,
                             project_name=p.name, clock=p.clock)
    if out is not None:
        typer.echo(f"Wrote {count} events to {out}.", err=True)
