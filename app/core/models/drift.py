"""Drift measurements: one statistic, per device or fleet-wide, over a time window."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models.base import Base, JSONType, UTCDateTime, utcnow


class DriftMeasurement(Base):
    """A drift statistic (PSI of confidence, MMD of embeddings, ...) against the baseline.

    ``device_id`` is empty for a fleet-wide measurement.
    """

    __tablename__ = "drift_measurements"
    __table_args__ = (Index("ix_drift_device_metric", "device_id", "metric", "window_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"), default=None)
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float, default=None)
    alert: Mapped[bool] = mapped_column(Boolean, default=False)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    baseline: Mapped[str] = mapped_column(String(128), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DriftBaseline(Base):
    """What "no drift" looks like for one edge model: measured on the data it was trained on.

    ``profile`` holds histograms (the device's input statistics and the edge model's top
    confidence) over the training dataset's test split; ``embeddings`` the observer's
    embeddings of the same images (float16 rows of ``dims`` columns), the reference for the
    MMD test. Built once per (edge model, observer model) pair.
    """

    __tablename__ = "drift_baselines"
    __table_args__ = (
        UniqueConstraint("edge_model_id", "observer_model_id", name="uq_drift_baselines_models"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edge_model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    observer_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), default=None)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    profile: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    embeddings: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    dims: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
