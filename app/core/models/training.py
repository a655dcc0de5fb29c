"""Training runs and the model versions they produce, with one artifact per format."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.models.base import Base, JSONType, UTCDateTime, utcnow
from app.core.models.users import enum_column


class ModelKind(str, enum.Enum):
    """The small model that runs on devices, or the large one that checks its work."""

    EDGE = "edge"
    OBSERVER = "observer"


class RunStatus(str, enum.Enum):
    """Life of a training run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TrainingRun(Base):
    """One training: its data, settings, code version, seed and the metrics it reached."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[ModelKind] = mapped_column(enum_column(ModelKind))
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    parent_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", use_alter=True, name="fk_training_runs_parent_model"),
        default=None,
    )
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    status: Mapped[RunStatus] = mapped_column(enum_column(RunStatus), default=RunStatus.QUEUED)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    code_version: Mapped[str] = mapped_column(String(64), default="")
    seed: Mapped[int] = mapped_column(Integer, default=0)
    device: Mapped[str] = mapped_column(String(32), default="cpu")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ModelStatus(str, enum.Enum):
    """Life of a model version, from training to the fleet and out."""

    CANDIDATE = "candidate"
    GATE_PASSED = "gate_passed"
    GATE_FAILED = "gate_failed"
    APPROVED = "approved"
    DEPLOYED = "deployed"
    RETIRED = "retired"


class ModelVersion(Base):
    """A trained model. ``version`` is what devices report (for example "edge-7")."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[ModelKind] = mapped_column(enum_column(ModelKind))
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id"), default=None)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), default=None)
    status: Mapped[ModelStatus] = mapped_column(
        enum_column(ModelStatus), default=ModelStatus.CANDIDATE
    )
    labels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    input_spec: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    gate_verdict: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    artifacts: Mapped[list[ModelArtifact]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="ModelArtifact.id"
    )


class ArtifactFormat(str, enum.Enum):
    """A serialized form of a model version."""

    TORCH = "torch"
    ONNX = "onnx"
    ONNX_INT8 = "onnx_int8"
    OPENVINO = "openvino"
    OPENVINO_INT8 = "openvino_int8"
    # A signed release folder (manifest, signature, artifacts) packed as one tar.
    RELEASE = "release"


class ModelArtifact(Base):
    """One file of a model version in one format, stored as a blob."""

    __tablename__ = "model_artifacts"
    __table_args__ = (UniqueConstraint("model_id", "format", name="uq_model_artifacts_format"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    format: Mapped[ArtifactFormat] = mapped_column(enum_column(ArtifactFormat))
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    model: Mapped[ModelVersion] = relationship(back_populates="artifacts")
