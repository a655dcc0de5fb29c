"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 09:15:25.913906

Every table of the first release. The audit chain's head row is created here, so appenders
always find it to lock.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

import app.core.models.base

GENESIS_HASH = "0" * 64

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=64), nullable=False),
    sa.Column('object_id', sa.String(length=128), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_events_hash'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)

    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('media_type', sa.String(length=64), nullable=False),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_blobs'))
    )
    op.create_table('datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_datasets_name'))
    )
    op.create_table('devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('address', sa.String(length=255), nullable=True),
    sa.Column('ssh_port', sa.Integer(), nullable=True),
    sa.Column('host_key_fingerprint', sa.String(length=128), nullable=True),
    sa.Column('enrollment', sa.Enum('discovered', 'enrolled', 'forgotten', name='enrollmentstate', native_enum=False, length=24), nullable=False),
    sa.Column('agent_version', sa.String(length=64), nullable=True),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('hardware', sa.String(length=128), nullable=True),
    sa.Column('advertised', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('capture_cursor', sa.String(length=255), nullable=True),
    sa.Column('first_seen', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('enrolled_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices')),
    sa.UniqueConstraint('uid', name=op.f('uq_devices_uid'))
    )
    op.create_table('label_classes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('color', sa.String(length=9), nullable=False),
    sa.Column('retired', sa.Boolean(), nullable=False),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_classes')),
    sa.UniqueConstraint('name', name=op.f('uq_label_classes_name'))
    )
    op.create_table('project_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_project_settings'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.Enum('admin', 'engineer', 'annotator', name='role', native_enum=False, length=24), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('captures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('device_capture_id', sa.String(length=128), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('captured_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('imported_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Enum('low_confidence', 'random_sample', 'every_nth', 'manual', 'imported', name='capturereason', native_enum=False, length=24), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('edge_class_id', sa.Integer(), nullable=True),
    sa.Column('edge_confidence', sa.Float(), nullable=True),
    sa.Column('observer_class_id', sa.Integer(), nullable=True),
    sa.Column('observer_confidence', sa.Float(), nullable=True),
    sa.Column('review_status', sa.Enum('unreviewed', 'queued', 'reviewed', 'skipped', name='reviewstatus', native_enum=False, length=24), nullable=False),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256'], name=op.f('fk_captures_blob_sha256_blobs')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_captures_device_id_devices')),
    sa.ForeignKeyConstraint(['edge_class_id'], ['label_classes.id'], name=op.f('fk_captures_edge_class_id_label_classes')),
    sa.ForeignKeyConstraint(['observer_class_id'], ['label_classes.id'], name=op.f('fk_captures_observer_class_id_label_classes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_captures')),
    sa.UniqueConstraint('device_id', 'device_capture_id', name='uq_captures_device_capture')
    )
    with op.batch_alter_table('captures', schema=None) as batch_op:
        batch_op.create_index('ix_captures_blob', ['blob_sha256'], unique=False)
        batch_op.create_index('ix_captures_captured_at', ['captured_at'], unique=False)
        batch_op.create_index('ix_captures_device_class', ['device_id', 'edge_class_id'], unique=False)
        batch_op.create_index('ix_captures_review_queue', ['device_id', 'review_status', 'edge_confidence', 'id'], unique=False)

    op.create_table('dataset_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('frozen_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('split_seed', sa.Integer(), nullable=False),
    sa.Column('label_schema', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_dataset_versions_created_by_id_users')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_dataset_versions_dataset_id_datasets')),
    sa.ForeignKeyConstraint(['parent_id'], ['dataset_versions.id'], name=op.f('fk_dataset_versions_parent_id_dataset_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_versions')),
    sa.UniqueConstraint('dataset_id', 'number', name='uq_dataset_versions_number')
    )
    op.create_table('drift_measurements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('alert', sa.Boolean(), nullable=False),
    sa.Column('window_start', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('window_end', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('baseline', sa.String(length=128), nullable=False),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('measured_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_drift_measurements_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_measurements'))
    )
    with op.batch_alter_table('drift_measurements', schema=None) as batch_op:
        batch_op.create_index('ix_drift_device_metric', ['device_id', 'metric', 'window_end'], unique=False)

    op.create_table('annotations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('capture_id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=True),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.Enum('human', 'model_assisted', 'imported', name='annotationsource', native_enum=False, length=24), nullable=False),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('superseded', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_annotations_author_id_users')),
    sa.ForeignKeyConstraint(['capture_id'], ['captures.id'], name=op.f('fk_annotations_capture_id_captures'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['class_id'], ['label_classes.id'], name=op.f('fk_annotations_class_id_label_classes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotations'))
    )
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotations_capture_id'), ['capture_id'], unique=False)

    op.create_table('dataset_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('capture_id', sa.Integer(), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('split', sa.Enum('train', 'val', 'test', name='split', native_enum=False, length=24), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=True),
    sa.Column('boxes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256'], name=op.f('fk_dataset_samples_blob_sha256_blobs')),
    sa.ForeignKeyConstraint(['capture_id'], ['captures.id'], name=op.f('fk_dataset_samples_capture_id_captures')),
    sa.ForeignKeyConstraint(['class_id'], ['label_classes.id'], name=op.f('fk_dataset_samples_class_id_label_classes')),
    sa.ForeignKeyConstraint(['version_id'], ['dataset_versions.id'], name=op.f('fk_dataset_samples_version_id_dataset_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_samples')),
    sa.UniqueConstraint('version_id', 'capture_id', name='uq_dataset_samples_capture')
    )
    with op.batch_alter_table('dataset_samples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_samples_version_id'), ['version_id'], unique=False)

    op.create_table('training_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('edge', 'observer', name='modelkind', native_enum=False, length=24), nullable=False),
    sa.Column('dataset_version_id', sa.Integer(), nullable=False),
    sa.Column('parent_model_id', sa.Integer(), nullable=True),
    sa.Column('started_by_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('queued', 'running', 'succeeded', 'failed', 'cancelled', name='runstatus', native_enum=False, length=24), nullable=False),
    sa.Column('hyperparameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('code_version', sa.String(length=64), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('device', sa.String(length=32), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dataset_version_id'], ['dataset_versions.id'], name=op.f('fk_training_runs_dataset_version_id_dataset_versions')),
    sa.ForeignKeyConstraint(['started_by_id'], ['users.id'], name=op.f('fk_training_runs_started_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_runs'))
    )
    op.create_table('annotation_boxes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('annotation_id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('x', sa.Float(), nullable=False),
    sa.Column('y', sa.Float(), nullable=False),
    sa.Column('width', sa.Float(), nullable=False),
    sa.Column('height', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['annotation_id'], ['annotations.id'], name=op.f('fk_annotation_boxes_annotation_id_annotations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['class_id'], ['label_classes.id'], name=op.f('fk_annotation_boxes_class_id_label_classes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotation_boxes'))
    )
    with op.batch_alter_table('annotation_boxes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotation_boxes_annotation_id'), ['annotation_id'], unique=False)

    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.Enum('edge', 'observer', name='modelkind', native_enum=False, length=24), nullable=False),
    sa.Column('training_run_id', sa.Integer(), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('candidate', 'gate_passed', 'gate_failed', 'approved', 'deployed', 'retired', name='modelstatus', native_enum=False, length=24), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('input_spec', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('gate_verdict', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('approved_by_id', sa.Integer(), nullable=True),
    sa.Column('approved_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['approved_by_id'], ['users.id'], name=op.f('fk_model_versions_approved_by_id_users')),
    sa.ForeignKeyConstraint(['parent_id'], ['model_versions.id'], name=op.f('fk_model_versions_parent_id_model_versions')),
    sa.ForeignKeyConstraint(['training_run_id'], ['training_runs.id'], name=op.f('fk_model_versions_training_run_id_training_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('version', name=op.f('uq_model_versions_version'))
    )
    # training_runs and model_versions refer to each other: add this side once both exist.
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.create_foreign_key(
            'fk_training_runs_parent_model', 'model_versions', ['parent_model_id'], ['id']
        )
    op.create_table('model_artifacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('format', sa.Enum('torch', 'onnx', 'onnx_int8', 'openvino', 'openvino_int8', name='artifactformat', native_enum=False, length=24), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256'], name=op.f('fk_model_artifacts_blob_sha256_blobs')),
    sa.ForeignKeyConstraint(['model_id'], ['model_versions.id'], name=op.f('fk_model_artifacts_model_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_artifacts')),
    sa.UniqueConstraint('model_id', 'format', name='uq_model_artifacts_format')
    )
    op.create_table('rollouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('started_by_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('planned', 'running', 'halted', 'completed', 'rolled_back', name='rolloutstate', native_enum=False, length=24), nullable=False),
    sa.Column('stages', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('current_stage', sa.Integer(), nullable=False),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['model_versions.id'], name=op.f('fk_rollouts_model_id_model_versions')),
    sa.ForeignKeyConstraint(['started_by_id'], ['users.id'], name=op.f('fk_rollouts_started_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollouts'))
    )
    op.create_table('deployments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=True),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('pending', 'uploading', 'activating', 'healthy', 'failed', 'rolled_back', name='deploymentstate', native_enum=False, length=24), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', app.core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', app.core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('detail', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_deployments_device_id_devices')),
    sa.ForeignKeyConstraint(['model_id'], ['model_versions.id'], name=op.f('fk_deployments_model_id_model_versions')),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_deployments_rollout_id_rollouts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployments'))
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index('ix_deployments_device', ['device_id', 'created_at'], unique=False)
    audit_head = sa.table(
        'audit_head', sa.column('id'), sa.column('seq'), sa.column('hash'), sa.column('count')
    )
    op.bulk_insert(audit_head, [{'id': 1, 'seq': 0, 'hash': GENESIS_HASH, 'count': 0}])


def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_constraint('fk_training_runs_parent_model', type_='foreignkey')
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index('ix_deployments_device')

    op.drop_table('deployments')
    op.drop_table('rollouts')
    op.drop_table('model_artifacts')
    op.drop_table('model_versions')
    with op.batch_alter_table('annotation_boxes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotation_boxes_annotation_id'))

    op.drop_table('annotation_boxes')
    op.drop_table('training_runs')
    with op.batch_alter_table('dataset_samples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_samples_version_id'))

    op.drop_table('dataset_samples')
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotations_capture_id'))

    op.drop_table('annotations')
    with op.batch_alter_table('drift_measurements', schema=None) as batch_op:
        batch_op.drop_index('ix_drift_device_metric')

    op.drop_table('drift_measurements')
    op.drop_table('dataset_versions')
    with op.batch_alter_table('captures', schema=None) as batch_op:
        batch_op.drop_index('ix_captures_review_queue')
        batch_op.drop_index('ix_captures_device_class')
        batch_op.drop_index('ix_captures_captured_at')
        batch_op.drop_index('ix_captures_blob')

    op.drop_table('captures')
    op.drop_table('users')
    op.drop_table('project_settings')
    op.drop_table('label_classes')
    op.drop_table('devices')
    op.drop_table('datasets')
    op.drop_table('blobs')
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    op.drop_table('audit_events')
