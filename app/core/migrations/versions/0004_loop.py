"""the loop: observations, the review queue, drift baselines, pipeline runs, device metadata

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 21:10:16

``captures.device_meta`` is added in place (SQLite's ADD COLUMN), not through a batch copy of
the table, which would drop the capture-count triggers of revision 0002.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.core.models.base
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pipeline_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trigger', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('state', sa.Enum('pending', 'running', 'waiting', 'succeeded', 'skipped', 'failed', 'cancelled', name='pipelinestate', native_enum=False, length=24), nullable=False),
    sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('started_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipeline_runs'))
    )
    with op.batch_alter_table('pipeline_runs', schema=None) as batch_op:
        batch_op.create_index('ix_pipeline_runs_state', ['state', 'id'], unique=False)

    op.create_table('pipeline_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('state', sa.Enum('pending', 'running', 'waiting', 'succeeded', 'skipped', 'failed', 'cancelled', name='pipelinestate', native_enum=False, length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('started_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['pipeline_runs.id'], name=op.f('fk_pipeline_steps_run_id_pipeline_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipeline_steps')),
    sa.UniqueConstraint('run_id', 'name', name='uq_pipeline_steps_name')
    )
    op.create_table('drift_baselines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('edge_model_id', sa.Integer(), nullable=False),
    sa.Column('observer_model_id', sa.Integer(), nullable=True),
    sa.Column('dataset_version_id', sa.Integer(), nullable=False),
    sa.Column('profile', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('embeddings', sa.LargeBinary(), nullable=True),
    sa.Column('dims', sa.Integer(), nullable=False),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dataset_version_id'], ['dataset_versions.id'], name=op.f('fk_drift_baselines_dataset_version_id_dataset_versions')),
    sa.ForeignKeyConstraint(['edge_model_id'], ['model_versions.id'], name=op.f('fk_drift_baselines_edge_model_id_model_versions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['observer_model_id'], ['model_versions.id'], name=op.f('fk_drift_baselines_observer_model_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_baselines')),
    sa.UniqueConstraint('edge_model_id', 'observer_model_id', name='uq_drift_baselines_models')
    )
    op.create_table('observations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('capture_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('observed_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['capture_id'], ['captures.id'], name=op.f('fk_observations_capture_id_captures'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['class_id'], ['label_classes.id'], name=op.f('fk_observations_class_id_label_classes')),
    sa.ForeignKeyConstraint(['model_id'], ['model_versions.id'], name=op.f('fk_observations_model_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observations')),
    sa.UniqueConstraint('capture_id', 'model_id', name='uq_observations_capture_model')
    )
    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.create_index('ix_observations_model', ['model_id', 'capture_id'], unique=False)

    op.create_table('review_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('capture_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('false_negative', 'false_positive', 'disagreement', 'low_confidence', 'spot_check', name='reviewkind', native_enum=False, length=24), nullable=False),
    sa.Column('priority', sa.Float(), nullable=False),
    sa.Column('observer_model_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['capture_id'], ['captures.id'], name=op.f('fk_review_items_capture_id_captures'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['observer_model_id'], ['model_versions.id'], name=op.f('fk_review_items_observer_model_id_model_versions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_review_items_resolved_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_items')),
    sa.UniqueConstraint('capture_id', name='uq_review_items_capture')
    )
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index('ix_review_items_open', ['resolved_at', 'priority'], unique=False)

    op.add_column('captures', sa.Column('device_meta', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))



def downgrade() -> None:
    op.drop_column('captures', 'device_meta')

    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_index('ix_review_items_open')

    op.drop_table('review_items')
    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.drop_index('ix_observations_model')

    op.drop_table('observations')
    op.drop_table('drift_baselines')
    op.drop_table('pipeline_steps')
    with op.batch_alter_table('pipeline_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_pipeline_runs_state')

    op.drop_table('pipeline_runs')
