"""Drift measurements: one statistic, per device or fleet-wide, over a time window."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String
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
