"""Migrations: from empty to head on both databases, upgrades on open, newer refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from app.core import schema
from app.core.errors import ProjectTooNew
from app.core.models import Base
from app.core.project import Project, open_project


def test_migrations_from_empty_build_exactly_the_models(project: Project) -> None:
    assert schema.current_revision(project.db) == schema.head_revision()
    with project.db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"migrations and models disagree: {diff}"


def test_project_from_a_newer_edgeloop_is_refused_untouched(
    sqlite_project: Project, tmp_path: Path
) -> None:
    with sqlite_project.db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed9999'"))
    sqlite_project.close()
    with pytest.raises(ProjectTooNew, match="newer EdgeLoop") as err:
        open_project(sqlite_project.root)
    assert "f00dfeed9999" in str(err.value)
    # Refused means untouched: the revision is still the unknown one.
    reopened = sqlite_project.root / "project.db"
    import sqlite3

    with sqlite3.connect(reopened) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            "f00dfeed9999",
        )


def test_older_project_is_upgraded_on_open_with_its_data(project: Project) -> None:
    from alembic import command

    from app.core.captures import counts_by_device_and_class

    config = schema.alembic_config()
    with project.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    assert schema.current_revision(project.db) == "0001"
    with project.db.engine.begin() as conn:  # data written by the older EdgeLoop
        conn.execute(text("INSERT INTO devices (uid, name, enrollment, advertised, first_seen) "
                          "VALUES ('cam-1', '', 'enrolled', '{}', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO blobs (sha256, size, media_type, created_at) "
                          "VALUES (:s, 1, 'image/png', '2026-01-01 00:00:00')"), {"s": "e" * 64})
        for i in range(3):
            conn.execute(text(
                "INSERT INTO captures (device_id, device_capture_id, blob_sha256, captured_at, "
                "imported_at, reason, review_status) VALUES (1, :c, :s, '2026-01-01 00:00:00', "
                "'2026-01-01 00:00:00', 'manual', 'unreviewed')"), {"c": f"c{i}", "s": "e" * 64})
    project.close()

    reopened = open_project(project.root, db_url=None if project.db.is_sqlite else str(
        project.db.url.render_as_string(hide_password=False)))
    try:
        assert schema.current_revision(reopened.db) == schema.head_revision()
        with reopened.db.read() as s:
            assert counts_by_device_and_class(s) == {(1, None): 3}
            from app.core.models import AuditEvent
            from sqlalchemy import select

            upgraded = s.scalar(select(AuditEvent).where(AuditEvent.action == "schema_upgraded"))
            assert upgraded.before == {"revision": "0001"}
            assert upgraded.after == {"revision": schema.head_revision()}
            assert reopened.audit.verify(s).ok
    finally:
        reopened.close()
