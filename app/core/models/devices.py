"""Edge devices: what discovery proposed and what enrollment confirmed."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models.base import Base, JSONType, UTCDateTime, utcnow
from app.core.models.users import enum_column


GENERATOR_HARDWARE = "synthetic"
"""The hardware of the "device" that captures made by the scene generator belong to."""


class EnrollmentState(str, enum.Enum):
    """Where a device stands: seen on the network, trusted, or deliberately dropped."""

    DISCOVERED = "discovered"
    ENROLLED = "enrolled"
    FORGOTTEN = "forgotten"


class DeviceHealth(str, enum.Enum):
    """What the last status polls said: healthy, degraded (errors, low fps), stale (status
    file not updated), offline (unreachable), or not yet polled."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    STALE = "stale"
    OFFLINE = "offline"


class Device(Base):
    """One edge device. ``uid`` is the id it advertises; nothing else from mDNS is trusted."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    address: Mapped[str | None] = mapped_column(String(255), default=None)
    ssh_port: Mapped[int | None] = mapped_column(Integer, default=None)
    host_key_fingerprint: Mapped[str | None] = mapped_column(String(128), default=None)
    enrollment: Mapped[EnrollmentState] = mapped_column(
        enum_column(EnrollmentState), default=EnrollmentState.DISCOVERED
    )
    agent_version: Mapped[str | None] = mapped_column(String(64), default=None)
    model_version: Mapped[str | None] = mapped_column(String(64), default=None)
    hardware: Mapped[str | None] = mapped_column(String(128), default=None)
    advertised: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    capture_cursor: Mapped[str | None] = mapped_column(String(255), default=None)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The SSH account on the device ("edgeloop" on the packaged image and the simulator).
    ssh_user: Mapped[str] = mapped_column(String(64), default="edgeloop")
    health: Mapped[DeviceHealth] = mapped_column(
        enum_column(DeviceHealth), default=DeviceHealth.UNKNOWN
    )
    last_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class HealthSample(Base):
    """One poll of a device's status file: the history behind the fleet charts."""

    __tablename__ = "device_health_samples"
    __table_args__ = (Index("ix_device_health_samples_device_at", "device_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    model_version: Mapped[str | None] = mapped_column(String(64), default=None)
    fps: Mapped[float | None] = mapped_column(Float, default=None)
    latency_p50_ms: Mapped[float | None] = mapped_column(Float, default=None)
    latency_p99_ms: Mapped[float | None] = mapped_column(Float, default=None)
    cpu_percent: Mapped[float | None] = mapped_column(Float, default=None)
    memory_mb: Mapped[float | None] = mapped_column(Float, default=None)
    disk_free_mb: Mapped[float | None] = mapped_column(Float, default=None)
    errors: Mapped[int | None] = mapped_column(Integer, default=None)
    spool_captures: Mapped[int | None] = mapped_column(Integer, default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class DeviceDriftHour(Base):
    """A device's hourly drift statistics as the agent wrote them (confidence and input
    histograms); the current hour is replaced as it fills up."""

    __tablename__ = "device_drift_hours"
    __table_args__ = (UniqueConstraint("device_id", "hour", name="uq_device_drift_hours_device_hour"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    hour: Mapped[str] = mapped_column(String(10))  # YYYYmmddHH, UTC
    record: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
