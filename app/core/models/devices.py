"""Edge devices: what discovery proposed and what enrollment confirmed."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models.base import Base, JSONType, UTCDateTime, utcnow
from app.core.models.users import enum_column


class EnrollmentState(str, enum.Enum):
    """Where a device stands: seen on the network, trusted, or deliberately dropped."""

    DISCOVERED = "discovered"
    ENROLLED = "enrolled"
    FORGOTTEN = "forgotten"


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
