"""``edgeloop users add|list|role``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import DbOpt, ProjectOpt, UserOpt, acting_user, echo_table, open_from_cli
from app.core.models import Role
from app.core.users import add_user, list_users, set_role

users_app = typer.Typer(help="Manage the project's users and their roles.", no_args_is_help=True)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Login name of the new user.")],
    role: Annotated[Role, typer.Option(help="admin, engineer or annotator.")],
    full_name: Annotated[str, typer.Option(help="Name shown in reports.")] = "",
    password: Annotated[
        bool, typer.Option("--password/--no-password", help="Ask for the new user's password.")
    ] = True,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Add a user (admins only)."""
    with open_from_cli(project, db) as p:
        actor = acting_user(p, user)
        secret = (
            typer.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
            if password else None
        )
        add_user(p.db, p.audit, actor, name, role, secret, full_name)
    typer.echo(f"Added {name} as {role.value}.")


@users_app.command("role")
def role(
    name: Annotated[str, typer.Argument(help="User whose role changes.")],
    new_role: Annotated[Role, typer.Argument(metavar="ROLE", help="admin, engineer or annotator.")],
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Change a user's role (admins only)."""
    with open_from_cli(project, db) as p:
        set_role(p.db, p.audit, acting_user(p, user), name, new_role)
    typer.echo(f"{name} is now {new_role.value}.")


@users_app.command("list")
def list_(project: ProjectOpt = Path("."), db: DbOpt = None) -> None:
    """List users with their roles."""
    with open_from_cli(project, db) as p:
        users = list_users(p.db)
    echo_table(
        ["NAME", "ROLE", "ACTIVE", "PASSWORD", "CREATED"],
        [
            [u.name, u.role.value, "yes" if u.active else "no",
             "set" if u.password_hash else "none", u.created_at.strftime("%Y-%m-%d %H:%M")]
            for u in users
        ],
    )
