"""``edgeloop init`` and ``edgeloop info``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import DbOpt, ProjectOpt, open_from_cli, stdin_is_tty
from app.core.project import default_admin_name, init_project, project_info


def init(
    path: Annotated[Path, typer.Argument(help="New or empty folder for the project.")],
    admin: Annotated[
        str | None, typer.Option(help="Name of the first admin (default: your login name).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name of the project.")] = None,
    db: DbOpt = None,
    password: Annotated[
        bool,
        typer.Option(
            "--password/--no-password",
            help="Ask for the admin's password (asked by default on a terminal).",
        ),
    ] = True,
) -> None:
    """Create a project: its folder, database, blob store and first admin."""
    admin_name = admin or default_admin_name()
    secret = None
    if password and stdin_is_tty():
        secret = typer.prompt(
            f"Password for {admin_name}", hide_input=True, confirmation_prompt=True
        )
    with init_project(path, admin=admin_name, admin_password=secret, name=name, db_url=db) as p:
        typer.echo(f"Created project {p.name!r} at {p.root} (admin: {admin_name}).")


def info(project: ProjectOpt = Path("."), db: DbOpt = None) -> None:
    """Show a project's database, schema version and what it holds."""
    with open_from_cli(project, db) as p:
        i = project_info(p)
    lines = [
        ("Project", f"{i.name} ({i.id})"),
        ("Folder", str(i.root)),
        ("Database", i.database),
        ("Schema revision", i.schema_revision or "-"),
        ("EdgeLoop", i.edgeloop_version),
        ("Users", i.users),
        ("Devices", i.devices),
        ("Captures", i.captures),
        ("Label classes", i.label_classes),
        ("Model versions", i.model_versions),
        ("Audit events", i.audit_events),
        ("Blobs", f"{i.blobs} ({i.blob_bytes / 1e6:.1f} MB)"),
    ]
    for key, value in lines:
        typer.echo(f"{key + ':':17}{value}")
