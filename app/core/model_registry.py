"""The model registry as the CLI and GUI list it: every version with its status and results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.core.db import Database
from app.core.models import ModelKind, ModelStatus, ModelVersion


@dataclass(frozen=True)
class ModelSummary:
    """One model version, detached from the session."""

    version: str
    kind: ModelKind
    status: ModelStatus
    test_accuracy: float | None
    formats: tuple[str, ...]
    created_at: datetime
    metrics: dict[str, Any]
    gate_verdict: dict[str, Any] | None

    @property
    def gate_reasons(self) -> list[str]:
        """Why the gate failed this version (empty when it passed or never ran)."""
        return list((self.gate_verdict or {}).get("reasons", []))


def model_summaries(db: Database, kind: ModelKind | None = None) -> list[ModelSummary]:
    """Every model version (of ``kind``), newest first."""
    query = select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
    if kind is not None:
        query = query.where(ModelVersion.kind == kind)
    with db.read() as session:
        return [ModelSummary(m.version, m.kind, m.status, _accuracy(m.metrics),
                             tuple(a.format.value for a in m.artifacts), m.created_at,
                             dict(m.metrics or {}), m.gate_verdict)
                for m in session.scalars(query)]


def _accuracy(metrics: dict[str, Any] | None) -> float | None:
    value = (metrics or {}).get("test_accuracy")
    return float(value) if isinstance(value, (int, float)) and value == value else None
