"""Captures: images a device kept, with what its edge model and the observer made of them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from typing import Any

from sqlalchemy.orm import Mapped, mapped_column

from app.core.models.base import Base, JSONType, UTCDateTime, utcnow
from app.core.models.users import enum_column


class CaptureReason(str, enum.Enum):
    """Why the device kept this frame."""

    LOW_CONFIDENCE = "low_confidence"
    RANDOM_SAMPLE = "random_sample"
    EVERY_NTH = "every_nth"
    MANUAL = "manual"
    IMPORTED = "imported"


class ReviewStatus(str, enum.Enum):
    """Where a capture stands in human review."""

    UNREVIEWED = "unreviewed"
    QUEUED = "queued"
    REVIEWED = "reviewed"
    SKIPPED = "skipped"


class Capture(Base):
    """One captured image (a blob) and its metadata from the device's sidecar.

    ``device_capture_id`` is the name the device gave it; with ``device_id`` it is unique, which
    is what makes a resumed pull import nothing twice.
    """

    __tablename__ = "captures"
    __table_args__ = (
        UniqueConstraint("device_id", "device_capture_id", name="uq_captures_device_capture"),
        # The review queue: one device, unreviewed, lowest confidence first, paged.
        Index("ix_captures_review_queue", "device_id", "review_status", "edge_confidence", "id"),
        # Counts by device and class read this index alone.
        Index("ix_captures_device_class", "device_id", "edge_class_id"),
        Index("ix_captures_captured_at", "captured_at"),
        # Browsing one device's captures newest first (the Data page), in index order.
        Index("ix_captures_device_time", "device_id", "captured_at", "id"),
        Index("ix_captures_blob", "blob_sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    device_capture_id: Mapped[str] = mapped_column(String(128))
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[CaptureReason] = mapped_column(enum_column(CaptureReason))
    model_version: Mapped[str | None] = mapped_column(String(64), default=None)
    edge_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_classes.id"), default=None)
    edge_confidence: Mapped[float | None] = mapped_column(Float, default=None)
    observer_class_id: Mapped[int | None] = mapped_column(
        ForeignKey("label_classes.id"), default=None
    )
    observer_confidence: Mapped[float | None] = mapped_column(Float, default=None)
    review_status: Mapped[ReviewStatus] = mapped_column(
        enum_column(ReviewStatus), default=ReviewStatus.UNREVIEWED
    )
    # Sidecar fields beyond the ones above, as the device sent them: the edge model's class
    # probabilities, the frame source, and for simulated devices the generator's ground truth.
    device_meta: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)


class QuarantinedCapture(Base):
    """A capture a pull refused (bad sidecar, wrong hash, unsafe name, undecodable image).

    It was not imported and the device keeps it (in its quarantine folder); this row says
    why, so an engineer can look at the device. Unique per device and device capture id, so
    a capture refused twice is one row.
    """

    __tablename__ = "quarantined_captures"
    __table_args__ = (
        UniqueConstraint("device_id", "device_capture_id",
                         name="uq_quarantined_captures_device_capture"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    device_capture_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    quarantined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Whether the device confirmed it moved the capture to its quarantine folder; until it
    # has, every acknowledgement asks it again, so an ack can never delete it.
    held_on_device: Mapped[bool] = mapped_column(Boolean, default=False)


class CaptureCount(Base):
    """How many captures each device has per edge-predicted class, kept exact by triggers.

    Counting a million captures by group takes ~90 ms on SQLite (bench/db_scale.py); this
    table answers the same question at once. Database triggers (migration 0002) update it on
    every insert, delete and re-classification, whoever writes. ``class_key`` is the edge class
    id, or 0 for captures without a prediction (a key column cannot be NULL).
    """

    __tablename__ = "capture_counts"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    class_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
