"""What the observer model made of each capture, and the review queue mined from it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, LargeBinary, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models.base import Base, JSONType, UTCDateTime, utcnow
from app.core.models.users import enum_column


class Observation(Base):
    """One observer model's prediction on one capture, with its embedding.

    ``embedding`` is float16 little-endian bytes (the pooled features of an EdgeLoop observer,
    or the output a user-supplied model names ``embedding``); drift on embeddings reads it.
    """

    __tablename__ = "observations"
    __table_args__ = (
        UniqueConstraint("capture_id", "model_id", name="uq_observations_capture_model"),
        Index("ix_observations_model", "model_id", "capture_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    class_id: Mapped[int | None] = mapped_column(ForeignKey("label_classes.id"), default=None)
    confidence: Mapped[float] = mapped_column(Float)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReviewKind(str, enum.Enum):
    """Why a capture was put in front of a person.

    A *false negative* is an edge "ok" the observer calls a defect (a defect let through); a
    *false positive* is an edge defect the observer calls "ok" (a good part rejected); a
    *disagreement* is two different defect classes; *low confidence* is a capture both models
    agree on but at least one is unsure of; a *spot check* is a capture the device kept at
    random, reviewed to catch what both models are sure of and wrong about.
    """

    FALSE_NEGATIVE = "false_negative"
    FALSE_POSITIVE = "false_positive"
    DISAGREEMENT = "disagreement"
    LOW_CONFIDENCE = "low_confidence"
    SPOT_CHECK = "spot_check"


class ReviewItem(Base):
    """A capture waiting in (or done with) the review queue, highest ``priority`` first."""

    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("capture_id", name="uq_review_items_capture"),
        Index("ix_review_items_open", "resolved_at", "priority"),
        Index("ix_review_items_open_kind", "resolved_at", "kind", "priority"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id", ondelete="CASCADE"))
    kind: Mapped[ReviewKind] = mapped_column(enum_column(ReviewKind))
    priority: Mapped[float] = mapped_column(Float)
    observer_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
