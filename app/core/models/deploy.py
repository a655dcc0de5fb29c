"""Rollouts of a model version to the fleet, and each device's deployment within one."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.models.base import Base, JSONType, UTCDateTime, utcnow
from app.core.models.users import enum_column


class RolloutState(str, enum.Enum):
    """Life of a staged rollout."""

    PLANNED = "planned"
    RUNNING = "running"
    HALTED = "halted"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"


class Rollout(Base):
    """A release going out in stages (canary, a share, all)."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    state: Mapped[RolloutState] = mapped_column(
        enum_column(RolloutState), default=RolloutState.PLANNED
    )
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    current_stage: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="rollout", order_by="Deployment.id"
    )


class DeploymentState(str, enum.Enum):
    """Life of one release on one device."""

    PENDING = "pending"
    UPLOADING = "uploading"
    ACTIVATING = "activating"
    HEALTHY = "healthy"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class Deployment(Base):
    """One device's part of a rollout."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_device", "device_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int | None] = mapped_column(ForeignKey("rollouts.id"), default=None)
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    stage: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[DeploymentState] = mapped_column(
        enum_column(DeploymentState), default=DeploymentState.PENDING
    )
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    detail: Mapped[str] = mapped_column(String(255), default="")

    rollout: Mapped[Rollout | None] = relationship(back_populates="deployments")
