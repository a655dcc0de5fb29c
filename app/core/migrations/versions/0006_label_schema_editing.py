"""label schema editing: class aliases, restated and resolving annotations, version class ids

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 02:00:00

- ``label_class_aliases``: old names of renamed classes and names of merged classes, so a
  device still reporting them maps to the class they mean now.
- ``annotations.replaces_id`` (the annotation a class merge restated) and
  ``annotations.resolves_conflict`` (an engineer's final label over a conflict). Added in
  place (ADD COLUMN), not through a batch copy of the table: on SQLite the copy would drop
  the old table, whose foreign-key cascade would take every annotation box with it.
- ``dataset_versions.label_class_ids``: the class id of each name of the version's label
  schema, so a rename never changes what an old version's samples are called. Versions
  frozen before this revision are filled in from the current names, which are still the
  names they were frozen with (no EdgeLoop before this revision could rename a class).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.core.models.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "label_class_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("created_at", app.core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["class_id"], ["label_classes.id"],
                                name=op.f("fk_label_class_aliases_class_id_label_classes"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_class_aliases")),
        sa.UniqueConstraint("name", name=op.f("uq_label_class_aliases_name")),
    )
    op.add_column("annotations", sa.Column("replaces_id", sa.Integer(), nullable=True))
    op.add_column("annotations", sa.Column("resolves_conflict", sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    op.add_column("dataset_versions", sa.Column("label_class_ids", _JSON, nullable=True))

    bind = op.get_bind()
    classes = sa.table("label_classes", sa.column("id", sa.Integer),
                       sa.column("name", sa.String))
    versions = sa.table("dataset_versions", sa.column("id", sa.Integer),
                        sa.column("label_schema", _JSON), sa.column("label_class_ids", _JSON))
    ids = dict(bind.execute(sa.select(classes.c.name, classes.c.id)).all())
    for version_id, schema in bind.execute(
            sa.select(versions.c.id, versions.c.label_schema)).all():
        names = list(schema or [])
        if all(name in ids for name in names):
            bind.execute(versions.update().where(versions.c.id == version_id)
                         .values(label_class_ids=[ids[name] for name in names]))


def downgrade() -> None:
    op.drop_column("dataset_versions", "label_class_ids")
    op.drop_column("annotations", "resolves_conflict")
    op.drop_column("annotations", "replaces_id")
    op.drop_table("label_class_aliases")
