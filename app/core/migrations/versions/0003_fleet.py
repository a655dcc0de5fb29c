"""fleet: health history, device drift hours, quarantined captures, the device SSH user

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:18:52

New columns on ``devices`` are added in place (SQLite's ADD COLUMN, with a server default for
rows that exist), not through a batch copy of the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

import app.core.models.base

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device_drift_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('hour', sa.String(length=10), nullable=False),
    sa.Column('record', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('received_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_drift_hours_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_drift_hours')),
    sa.UniqueConstraint('device_id', 'hour', name='uq_device_drift_hours_device_hour')
    )
    op.create_table('device_health_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('fps', sa.Float(), nullable=True),
    sa.Column('latency_p50_ms', sa.Float(), nullable=True),
    sa.Column('latency_p99_ms', sa.Float(), nullable=True),
    sa.Column('cpu_percent', sa.Float(), nullable=True),
    sa.Column('memory_mb', sa.Float(), nullable=True),
    sa.Column('disk_free_mb', sa.Float(), nullable=True),
    sa.Column('errors', sa.Integer(), nullable=True),
    sa.Column('spool_captures', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_health_samples_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_health_samples'))
    )
    with op.batch_alter_table('device_health_samples', schema=None) as batch_op:
        batch_op.create_index('ix_device_health_samples_device_at', ['device_id', 'at'], unique=False)

    op.create_table('quarantined_captures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('device_capture_id', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('quarantined_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('held_on_device', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_quarantined_captures_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantined_captures')),
    sa.UniqueConstraint('device_id', 'device_capture_id', name='uq_quarantined_captures_device_capture')
    )
    op.add_column('devices', sa.Column('ssh_user', sa.String(length=64), nullable=False,
                                       server_default='edgeloop'))
    op.add_column('devices', sa.Column('health', sa.Enum('unknown', 'healthy', 'degraded', 'stale', 'offline', name='devicehealth', native_enum=False, length=24), nullable=False, server_default='unknown'))
    op.add_column('devices', sa.Column('last_status_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    for column in ('last_status_at', 'health', 'ssh_user'):
        op.drop_column('devices', column)

    op.drop_table('quarantined_captures')
    with op.batch_alter_table('device_health_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_device_health_samples_device_at')

    op.drop_table('device_health_samples')
    op.drop_table('device_drift_hours')
