"""capture counts by device and class, kept by triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:25:00

The count of captures by device and class read 1M rows in ~90 ms on SQLite; the dashboards
ask for it constantly. ``capture_counts`` holds the answer, backfilled here and kept exact by
row triggers on ``captures`` (insert, delete, and a change of device or edge class).

Note for later migrations: a SQLite batch operation on ``captures`` copies the table and
drops its triggers; such a migration must create these triggers again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER captures_count_insert AFTER INSERT ON captures
    BEGIN
        INSERT INTO capture_counts (device_id, class_key, count)
        VALUES (NEW.device_id, COALESCE(NEW.edge_class_id, 0), 1)
        ON CONFLICT (device_id, class_key) DO UPDATE SET count = count + 1;
    END
    """,
    """
    CREATE TRIGGER captures_count_delete AFTER DELETE ON captures
    BEGIN
        UPDATE capture_counts SET count = count - 1
        WHERE device_id = OLD.device_id AND class_key = COALESCE(OLD.edge_class_id, 0);
    END
    """,
    """
    CREATE TRIGGER captures_count_update AFTER UPDATE OF device_id, edge_class_id ON captures
    BEGIN
        UPDATE capture_counts SET count = count - 1
        WHERE device_id = OLD.device_id AND class_key = COALESCE(OLD.edge_class_id, 0);
        INSERT INTO capture_counts (device_id, class_key, count)
        VALUES (NEW.device_id, COALESCE(NEW.edge_class_id, 0), 1)
        ON CONFLICT (device_id, class_key) DO UPDATE SET count = count + 1;
    END
    """,
]

_POSTGRES_TRIGGERS = [
    """
    CREATE FUNCTION capture_counts_apply() RETURNS trigger AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE capture_counts SET count = count - 1
            WHERE device_id = OLD.device_id AND class_key = COALESCE(OLD.edge_class_id, 0);
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO capture_counts (device_id, class_key, count)
            VALUES (NEW.device_id, COALESCE(NEW.edge_class_id, 0), 1)
            ON CONFLICT (device_id, class_key) DO UPDATE SET count = capture_counts.count + 1;
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER captures_count AFTER INSERT OR DELETE OR UPDATE OF device_id, edge_class_id
    ON captures FOR EACH ROW EXECUTE FUNCTION capture_counts_apply()
    """,
]


def upgrade() -> None:
    op.create_table(
        "capture_counts",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("class_key", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_capture_counts_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "class_key", name=op.f("pk_capture_counts")),
    )
    op.execute(
        "INSERT INTO capture_counts (device_id, class_key, count) "
        "SELECT device_id, COALESCE(edge_class_id, 0), COUNT(*) FROM captures "
        "GROUP BY device_id, COALESCE(edge_class_id, 0)"
    )
    triggers = _POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER captures_count ON captures")
        op.execute("DROP FUNCTION capture_counts_apply()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER captures_count_{name}")
    op.drop_table("capture_counts")
