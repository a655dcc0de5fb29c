"""Training runs as the project records them: a frozen dataset version in, a candidate model
version out, with everything needed to reproduce it.

:func:`train_model` resolves the dataset version, builds the network (or fine-tunes a parent
model version), trains it on the version's train split, picks the best epoch on val, scores it
on test, and stores the weights as the model version's torch artifact. The run row records the
dataset version, hyper-parameters, code version, seed, torch device and metrics; the best
weights so far are checkpointed under the project's ``runs/`` folder after every improvement,
so a crash or a cancel leaves the best epoch on disk. A cancelled or failed run is recorded as
such, with the history of the epochs it finished, and no model version is created for it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import select
from torch import nn

import app
from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.captures import record_blob
from app.core.datasets import get_version, load_split
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.fsutil import atomic_write_bytes
from app.core.model_files import ModelFile, dump_model, load_model
from app.core.models import (
    ArtifactFormat, ModelArtifact, ModelKind, ModelStatus, ModelVersion, RunStatus, TrainingRun,
)
from app.core.models.base import utcnow
from app.core.model_store import MEDIA_TYPES
from app.core.nets import ARCHITECTURES, build_net, count_parameters
from app.core.progress import Cancelled, CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize
from app.core.training import TrainConfig, evaluate, input_spec, pick_device, to_tensor, train_classifier

DEFAULT_ARCH = {ModelKind.EDGE: "edgenet", ModelKind.OBSERVER: "observernet"}


@dataclass(frozen=True)
class TrainRequest:
    """What to train: the kind of model, on which data, from what, with which settings."""

    kind: ModelKind = ModelKind.EDGE
    dataset: str = "inspection"  # a dataset version ref: "name@N", or "name" for its newest
    parent: str | None = None  # a model version to fine-tune from
    arch: str | None = None  # default: edgenet for edge models, observernet for observers
    width: float = 1.0
    size: int = 96
    config: TrainConfig = field(default_factory=TrainConfig)
    version: str | None = None  # default: the next free "edge-N" / "observer-N"

    def hyperparameters(self) -> dict[str, Any]:
        return {"arch": self.arch or DEFAULT_ARCH[self.kind], "width": self.width,
                "size": self.size, "parent": self.parent, **self.config.to_json()}


@dataclass(frozen=True)
class TrainOutcome:
    """A finished run and the candidate it produced."""

    run_id: int
    version: str
    metrics: dict[str, Any]


def train_model(db: Database, blobs: BlobStore, audit: AuditTrail, actor: Actor,
                request: TrainRequest, *, runs_dir: Path, clock: Callable[[], datetime] = utcnow,
                progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                device: torch.device | None = None) -> TrainOutcome:
    """Train per ``request``; return the new candidate model version (see module docstring)."""
    authorize(db, audit, actor, Permission.TRAIN, f"train a {request.kind.value} model")
    cancel = cancel or CancelToken()
    device = device or pick_device()
    version = get_version(db, request.dataset)
    labels = list(version.label_schema)
    start = _start_model(db, blobs, request, labels)
    run_id = _open_run(db, audit, actor, request, version.id, start.parent_id, device, clock)
    # The epochs seen so far, kept on a cancelled or failed run's record too (its curves).
    history: list[dict[str, float]] = []

    def report(step: Progress) -> None:
        if "epoch" in step.metrics:
            history.append(dict(step.metrics))
        progress(step)

    try:
        data = {split: load_split(db, blobs, version.id, split, request.size, cancel=cancel)
                for split in ("train", "val", "test")}
        if len(data["train"].labels) == 0 or len(data["val"].labels) == 0:
            raise InvalidInput(f"dataset {version.ref} has an empty train or val split; label "
                               "more captures and freeze a new version")
        checkpoint = _checkpointer(runs_dir / f"run-{run_id}", request, labels)
        result = train_classifier(
            start.model, (data["train"].images, data["train"].labels),
            (data["val"].images, data["val"].labels), request.config,
            progress=report, cancel=cancel, device=device, checkpoint=checkpoint)
        metrics = _metrics(result, data["test"], device)
        progress(Progress("train", 1, 1, f"test accuracy {metrics['test_accuracy']:.3f}"))
        name = _store_candidate(db, blobs, audit, actor, request, run_id, start.parent_id,
                                result.model.to("cpu"), labels, metrics, clock)
    except Cancelled:
        _close_run(db, audit, actor, run_id, RunStatus.CANCELLED, "cancelled by the user",
                   history, clock)
        raise
    except Exception as exc:
        _close_run(db, audit, actor, run_id, RunStatus.FAILED, str(exc) or type(exc).__name__,
                   history, clock)
        raise
    return TrainOutcome(run_id, name, metrics)


@dataclass
class _Start:
    model: nn.Module
    parent_id: int | None


def _start_model(db: Database, blobs: BlobStore, request: TrainRequest,
                 labels: list[str]) -> _Start:
    """A fresh network, or the parent's weights with a head for this label schema."""
    arch = request.arch or DEFAULT_ARCH[request.kind]
    if arch not in ARCHITECTURES:
        raise InvalidInput(f"unknown architecture {arch!r}; choose {' or '.join(ARCHITECTURES)}")
    if request.parent is None:
        return _Start(build_net(arch, len(labels), seed=request.config.seed,
                                width=request.width), None)
    with db.read() as session:
        parent = session.scalar(select(ModelVersion).where(ModelVersion.version == request.parent))
        artifact = None if parent is None else next(
            (a for a in parent.artifacts if a.format is ArtifactFormat.TORCH), None)
        if parent is None or artifact is None:
            raise InvalidInput(f"no model version {request.parent!r} with torch weights to "
                               "fine-tune from; `edgeloop models list` shows them")
        parent_id, sha = parent.id, artifact.blob_sha256
    loaded = load_model(blobs.read_bytes(sha), f"model {request.parent}")
    if loaded.arch != arch:
        raise InvalidInput(f"model {request.parent} is a {loaded.arch}; it cannot be "
                           f"fine-tuned as a {arch}")
    _fit_head(loaded.model, loaded.labels, labels)
    return _Start(loaded.model, parent_id)


def _fit_head(model: nn.Module, old: list[str], new: list[str]) -> None:
    """Give ``model`` a head for ``new`` labels, keeping the rows of classes it already knew."""
    if old == new:
        return
    head: nn.Linear = model.head  # type: ignore[assignment]
    fresh = nn.Linear(head.in_features, len(new))
    with torch.no_grad():
        for row, name in enumerate(new):
            if name in old:
                fresh.weight[row] = head.weight[old.index(name)]
                fresh.bias[row] = head.bias[old.index(name)]
    model.head = fresh


def _open_run(db: Database, audit: AuditTrail, actor: Actor, request: TrainRequest,
              dataset_version_id: int, parent_id: int | None, device: torch.device,
              clock: Callable[[], datetime]) -> int:
    with db.write() as session:
        run = TrainingRun(kind=request.kind, dataset_version_id=dataset_version_id,
                          parent_model_id=parent_id, started_by_id=actor.user_id,
                          status=RunStatus.RUNNING, hyperparameters=request.hyperparameters(),
                          code_version=code_version(), seed=request.config.seed,
                          device=str(device), started_at=clock())
        session.add(run)
        session.flush()
        audit.append(session, actor=actor.name, action="train.start", object_type="training_run",
                     object_id=run.id, after={"dataset": request.dataset,
                                              **request.hyperparameters()})
        return run.id


def _close_run(db: Database, audit: AuditTrail, actor: Actor, run_id: int, status: RunStatus,
               error: str, history: list[dict[str, float]],
               clock: Callable[[], datetime]) -> None:
    with db.write() as session:
        run = session.get(TrainingRun, run_id)
        run.status, run.error, run.finished_at = status, error[:2000], clock()
        if history:
            run.metrics = {"epochs_run": len(history), "history": history}
        audit.append(session, actor=actor.name, action=f"train.{status.value}",
                     object_type="training_run", object_id=run_id, after={"error": error[:500]})


def _checkpointer(folder: Path, request: TrainRequest,
                  labels: list[str]) -> Callable[[int, nn.Module, dict[str, float]], None]:
    arch = request.arch or DEFAULT_ARCH[request.kind]

    def save(epoch: int, model: nn.Module, record: dict[str, float]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # A copy on CPU: the training model stays on its device and in train mode.
        weights = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
        snapshot = build_net(arch, len(labels), width=request.width)
        snapshot.load_state_dict(weights)
        spec = input_spec(request.size)
        atomic_write_bytes(folder / "best.pt", dump_model(
            ModelFile(snapshot, arch, labels, spec, {"width": request.width})))
    return save


def _metrics(result: Any, test: Any, device: torch.device) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "best_epoch": result.best_epoch, "val_accuracy": round(result.best_val_accuracy, 4),
        "epochs_run": len(result.history), "history": result.history,
        "seconds": round(result.seconds, 1),
        "images_per_second": round(result.images_per_second, 1),
        "parameters": count_parameters(result.model),
    }
    if len(test.labels):
        _, accuracy = evaluate(result.model, to_tensor(test.images),
                               torch.as_tensor(test.labels, dtype=torch.long))
        metrics["test_accuracy"] = round(accuracy, 4)
    else:
        metrics["test_accuracy"] = float("nan")
    return metrics


def _store_candidate(db: Database, blobs: BlobStore, audit: AuditTrail, actor: Actor,
                     request: TrainRequest, run_id: int, parent_id: int | None,
                     model: nn.Module, labels: list[str], metrics: dict[str, Any],
                     clock: Callable[[], datetime]) -> str:
    arch = request.arch or DEFAULT_ARCH[request.kind]
    spec = input_spec(request.size)
    data = dump_model(ModelFile(model, arch, labels, spec, {"width": request.width}))
    sha = blobs.put_bytes(data)
    with db.write() as session:
        name = request.version or next_version_name(session, request.kind)
        if session.scalar(select(ModelVersion.id).where(ModelVersion.version == name)):
            raise InvalidInput(f"model version {name!r} exists already; choose another name")
        record_blob(session, sha, len(data), MEDIA_TYPES[ArtifactFormat.TORCH])
        model_row = ModelVersion(version=name, kind=request.kind, training_run_id=run_id,
                                 parent_id=parent_id, status=ModelStatus.CANDIDATE,
                                 labels=labels, input_spec=spec,
                                 metrics={k: v for k, v in metrics.items() if k != "history"})
        model_row.artifacts.append(ModelArtifact(format=ArtifactFormat.TORCH, blob_sha256=sha,
                                                 size=len(data)))
        session.add(model_row)
        run = session.get(TrainingRun, run_id)
        run.status, run.metrics, run.finished_at = RunStatus.SUCCEEDED, metrics, clock()
        audit.append(session, actor=actor.name, action="train.succeeded",
                     object_type="training_run", object_id=run_id,
                     after={"model_version": name, "val_accuracy": metrics["val_accuracy"],
                            "test_accuracy": metrics["test_accuracy"]})
    return name


def next_version_name(session: Any, kind: ModelKind) -> str:
    """``edge-N`` / ``observer-N`` with N one above the highest used so far."""
    prefix = f"{kind.value}-"
    numbers = [int(m.group(1)) for v in session.scalars(
        select(ModelVersion.version).where(ModelVersion.version.like(f"{prefix}%")))
        if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", v))]
    return f"{prefix}{max(numbers, default=0) + 1}"


def code_version() -> str:
    """The EdgeLoop version, and the git commit when running from a checkout."""
    source = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{app.__version__}+{commit}" if commit else app.__version__
