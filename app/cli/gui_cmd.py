"""``edgeloop gui``: the desktop app on a project."""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli.common import DbOpt, ProjectOpt, UserOpt


def gui(
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Open the desktop app on a project (sign-in first, unless the user has no password)."""
    from app.cli.longwork import cancel_on_ctrl_c
    from app.ui.app import run_gui

    with cancel_on_ctrl_c("the app") as stop:
        status = run_gui(project, user=user, db_url=db, stop=stop)
    raise typer.Exit(status)
