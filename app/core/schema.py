"""Schema versions of a project database: create, upgrade, and refuse a newer one.

Every schema change is an Alembic revision in app/core/migrations/versions. Opening an older
project upgrades it in place; a project whose revision this EdgeLoop does not know was
written by a newer EdgeLoop and is refused, untouched.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.core.db import Database
from app.core.errors import ProjectTooNew

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision this EdgeLoop knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def current_revision(db: Database) -> str | None:
    """The revision the database is at; None for an empty database."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def upgrade(db: Database, target: str = "head") -> tuple[str | None, str]:
    """Bring the database to ``target``; return (revision before, revision after).

    Raises :class:`ProjectTooNew` when the database is at a revision we do not know.
    """
    before = current_revision(db)
    if target == "head" and before == head_revision():
        return before, before
    if before is not None and before not in known_revisions():
        raise ProjectTooNew(
            f"this project's database is at schema revision {before}, written by a newer "
            f"EdgeLoop (this one knows revisions up to {head_revision()}). Open it with that "
            "newer EdgeLoop, or upgrade EdgeLoop on this machine; the project was not changed."
        )
    config = alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, target)
    return before, current_revision(db) or ""
