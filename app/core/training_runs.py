"""Past training runs as the GUI lists them: what each trained, from what, how it ended.

A run is a row of ``training_runs``: a training or fine-tune (app.core.train_service) or the
fine-tune of a pruning (app.core.compress_service, recognised by its ``prune_ratio``). The
summary carries the run's per-epoch history when the run stored one (every training does,
finished, cancelled or failed), so its curves can be drawn again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.core.db import Database
from app.core.models import (
    Dataset, DatasetVersion, ModelKind, ModelVersion, RunStatus, TrainingRun, User,
)


@dataclass(frozen=True)
class RunSummary:
    """One training run, detached from the session."""

    id: int
    kind: ModelKind
    purpose: str  # "train", "fine-tune" or "prune"
    dataset: str  # "name@N"
    parent: str | None  # the model version it started from
    status: RunStatus
    started_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    model_version: str | None  # the candidate it produced
    test_accuracy: float | None
    error: str | None
    history: list[dict[str, float]] = field(default_factory=list)


def training_runs(db: Database, limit: int = 500) -> list[RunSummary]:
    """The newest ``limit`` runs, newest first."""
    with db.read() as session:
        runs = list(session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc())
                                    .limit(limit)))
        datasets = {vid: f"{name}@{number}" for vid, name, number in session.execute(
            select(DatasetVersion.id, Dataset.name, DatasetVersion.number)
            .join(Dataset, Dataset.id == DatasetVersion.dataset_id))}
        versions = dict(session.execute(select(ModelVersion.id, ModelVersion.version)).all())
        produced = dict(session.execute(
            select(ModelVersion.training_run_id, ModelVersion.version)
            .where(ModelVersion.training_run_id.is_not(None))).all())
        users = dict(session.execute(select(User.id, User.name)).all())
        return [_summary(run, datasets, versions, produced, users) for run in runs]


def _summary(run: TrainingRun, datasets: dict[int, str], versions: dict[int, str],
             produced: dict[int, str], users: dict[int, str]) -> RunSummary:
    metrics: dict[str, Any] = dict(run.metrics or {})
    hyper = run.hyperparameters or {}
    purpose = ("prune" if "prune_ratio" in hyper
               else "fine-tune" if run.parent_model_id is not None else "train")
    history = metrics.get("history")
    return RunSummary(
        id=run.id, kind=run.kind, purpose=purpose,
        dataset=datasets.get(run.dataset_version_id, "?"),
        parent=versions.get(run.parent_model_id) if run.parent_model_id else None,
        status=run.status,
        started_by=users.get(run.started_by_id) if run.started_by_id else None,
        started_at=run.started_at, finished_at=run.finished_at,
        model_version=produced.get(run.id), test_accuracy=_number(metrics.get("test_accuracy")),
        error=run.error, history=list(history) if isinstance(history, list) else [])


def _number(value: Any) -> float | None:
    # NaN (a dataset version without a test split) reads as "no score".
    return float(value) if isinstance(value, (int, float)) and value == value else None
