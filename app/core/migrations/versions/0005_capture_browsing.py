"""an index for browsing one device's captures newest first

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 00:10:00

The Data page pages through captures by ``(captured_at, id)`` descending. Unfiltered, and
filtered by class, status, reason or time, ``ix_captures_captured_at`` serves it. Filtered by
device (the filter an engineer uses most), SQLite read the device's captures through
``ix_captures_review_queue`` and sorted them all: 430 ms a page at 1M captures over 20
devices; with this index it reads the page in order (a few ms). The index is created in
place (``op.create_index``, no batch copy of the table), so the capture-count triggers of
revision 0002 stay.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_captures_device_time", "captures", ["device_id", "captured_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_captures_device_time", table_name="captures")
