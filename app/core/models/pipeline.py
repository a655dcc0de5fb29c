"""Runs of the closed loop (pull, observe, review, freeze, train, ... deploy) and their steps."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models.base import Base, JSONType, UTCDateTime, utcnow
from app.core.models.users import enum_column


class PipelineState(str, enum.Enum):
    """Life of a pipeline run or of one of its steps."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # for people: reviews to be done, an approval to be given
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


class PipelineRun(Base):
    """One pass of the loop: why it started, where it is, and what each step handed on.

    ``context`` holds what steps pass to later ones (the frozen dataset version, the trained
    model version, the rollout id), so a run resumed after a crash continues with them.
    """

    __tablename__ = "pipeline_runs"
    __table_args__ = (Index("ix_pipeline_runs_state", "state", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[PipelineState] = mapped_column(enum_column(PipelineState),
                                                 default=PipelineState.PENDING)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    started_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class PipelineStep(Base):
    """One step of a run; a step that succeeded is never run again when the run resumes."""

    __tablename__ = "pipeline_steps"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_pipeline_steps_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(32))
    state: Mapped[PipelineState] = mapped_column(enum_column(PipelineState),
                                                 default=PipelineState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    seconds: Mapped[float | None] = mapped_column(Float, default=None)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
