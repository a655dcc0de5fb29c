"""Options every command shares, opening the project, and turning errors into messages."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from app.core.project import Project, default_admin_name, open_project
from app.core.roles import Actor
from app.core.users import actor_named

ProjectOpt = Annotated[
    Path,
    typer.Option(
        "--project", "-p", envvar="EDGELOOP_PROJECT",
        help="Project folder (default: the current folder).",
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", envvar="EDGELOOP_DB",
        help="Database URL, e.g. postgresql+psycopg://user@host/edgeloop (default: the project's).",
    ),
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user", "-u", envvar="EDGELOOP_USER",
        help="Act as this project user (default: your login name).",
    ),
]


def open_from_cli(project: Path, db: str | None) -> Project:
    return open_project(project, db_url=db)


def acting_user(project: Project, user: str | None) -> Actor:
    return actor_named(project.db, user or default_admin_name())


def echo_table(headers: list[str], rows: list[list[object]]) -> None:
    """Print rows as an aligned plain-text table."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def stdin_is_tty() -> bool:
    return os.isatty(0)


def format_time(moment: datetime | None) -> str:
    """A stored (UTC) time as the tables show it, or "-"."""
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def format_age(moment: datetime | None, now: datetime) -> str:
    """How long ago ``moment`` was, coarsely: "12s ago", "5m ago", "3h ago", "2d ago"."""
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
