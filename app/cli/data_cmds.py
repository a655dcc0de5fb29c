"""``edgeloop retention purge`` and ``edgeloop blobs verify|collect``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import DbOpt, ProjectOpt, UserOpt, acting_user, open_from_cli
from app.core.errors import InvalidInput
from app.core.retention import (
    collect_orphan_files, purge_captures_older_than, purge_device_captures,
)

retention_app = typer.Typer(help="Delete captures by device or age.", no_args_is_help=True)
blobs_app = typer.Typer(help="Check and tidy the blob store.", no_args_is_help=True)


@retention_app.command("purge")
def purge(
    device: Annotated[str | None, typer.Option(help="Delete every capture of this device.")] = None,
    older_than: Annotated[
        int | None, typer.Option(help="Delete captures older than this many days.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Delete captures (and blobs nothing uses any more). Audited."""
    if (device is None) == (older_than is None):
        raise InvalidInput("give exactly one of --device UID or --older-than DAYS")
    what = f"all captures of device {device}" if device else f"captures older than {older_than} days"
    if not yes and not typer.confirm(f"Delete {what}?"):
        raise typer.Exit(1)
    with open_from_cli(project, db) as p:
        actor = acting_user(p, user)
        if device is not None:
            result = purge_device_captures(p.db, p.blobs, p.audit, actor, device)
        else:
            assert older_than is not None
            result = purge_captures_older_than(p.db, p.blobs, p.audit, actor, older_than,
                                               clock=p.clock)
    typer.echo(
        f"Deleted {result.captures_deleted} captures and {result.blobs_deleted} blobs "
        f"({result.bytes_freed / 1e6:.1f} MB)."
    )
    if result.captures_kept_in_datasets:
        typer.echo(f"Kept {result.captures_kept_in_datasets} captures that frozen dataset "
                   "versions use.")


@blobs_app.command("verify")
def verify(project: ProjectOpt = Path("."), db: DbOpt = None) -> None:
    """Re-hash every blob and report those whose content changed."""
    with open_from_cli(project, db) as p:
        problems = p.blobs.verify()
    if not problems:
        typer.echo("All blobs match their sha256.")
        return
    for problem in problems:
        typer.echo(f"CORRUPT {problem.sha256}: content now hashes to {problem.actual}")
    raise typer.Exit(1)


@blobs_app.command("collect")
def collect(project: ProjectOpt = Path("."), db: DbOpt = None) -> None:
    """Delete blob files that no database row names (left by crashes)."""
    with open_from_cli(project, db) as p:
        removed = collect_orphan_files(p.db, p.blobs)
    typer.echo(f"Removed {removed} orphan blob files.")
