"""Scoring every artifact of a model version on a frozen test split, and keeping the scores.

For each format a version has (the torch checkpoint, ONNX, ONNX INT8, OpenVINO, OpenVINO INT8,
and a registered release through the ONNX model it ships), the artifact is unpacked, loaded
in the runtime a device would use (``app.core.runtimes``) and run on the test split of a
dataset version: accuracy, per-class precision and recall, the confusion matrix, latency p50
and p99 of one frame (preprocessing included, on ``threads`` runtime threads), and the size.
An artifact that does not load is recorded as such, with the reason, not skipped: the gate
refuses a version with one. The results go into the artifact's ``metrics`` and a summary
into the version's, so the GUI and ``edgeloop models show`` read them without re-running.

A model whose labels are ordered differently from the dataset (or lack some of its classes)
is scored by name: its outputs are re-ordered to the dataset's label schema, and a class it
does not know is never predicted.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.db import Database
from app.core.errors import EdgeLoopError, InvalidInput
from app.core.evaluation import EvalReport, Latency, confusion_report, measure_latency, predict_logits
from app.core.model_store import ArtifactRef, ModelInfo, find_model, model_info, unpack_artifact
from app.core.models import ArtifactFormat
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize

# Formats a runner exists for; a release runs as the ONNX model it carries.
RUNNER_FORMAT = {
    ArtifactFormat.TORCH: "torch", ArtifactFormat.ONNX: "onnx",
    ArtifactFormat.ONNX_INT8: "onnx_int8", ArtifactFormat.OPENVINO: "openvino",
    ArtifactFormat.OPENVINO_INT8: "openvino_int8", ArtifactFormat.RELEASE: "onnx",
}


@dataclass(frozen=True)
class FormatResult:
    """How one artifact did; ``error`` says why it could not be scored (then nothing else is set)."""

    format: ArtifactFormat
    size: int
    error: str | None = None
    report: EvalReport | None = None
    latency: Latency | None = None

    @property
    def loads(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"loads": self.loads, "size": self.size}
        if self.error is not None:
            data["error"] = self.error
        if self.report is not None:
            data.update(accuracy=round(self.report.accuracy, 4), count=self.report.count,
                        labels=self.report.labels, confusion=self.report.confusion,
                        per_class={name: {"precision": round(c.precision, 4),
                                          "recall": round(c.recall, 4), "support": c.support}
                                   for name, c in self.report.per_class.items()})
        if self.latency is not None:
            data.update(latency_p50_ms=round(self.latency.p50_ms, 3),
                        latency_p99_ms=round(self.latency.p99_ms, 3))
        return data


@dataclass(frozen=True)
class ModelEvaluation:
    """Every scored artifact of one version on one test split."""

    version: str
    dataset: str
    results: dict[ArtifactFormat, FormatResult]

    def summary(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "formats": {
            f.value: {k: v for k, v in r.to_json().items()
                      if k in ("loads", "error", "accuracy", "latency_p50_ms", "size")}
            for f, r in self.results.items()}}


@dataclass(frozen=True)
class TestSet:
    """The labelled images a version is scored on."""

    ref: str
    images: np.ndarray
    labels: np.ndarray
    label_names: list[str]


def load_test_set(db: Database, blobs: BlobStore, dataset_version: str | int, size: int,
                  cancel: CancelToken | None = None) -> TestSet:
    """The test split of a dataset version, at ``size`` pixels."""
    from app.core.datasets import get_version, load_split

    summary = get_version(db, dataset_version)
    split = load_split(db, blobs, summary.id, "test", size, cancel=cancel)
    if len(split) == 0:
        raise InvalidInput(f"dataset {summary.ref} has an empty test split; freeze a version "
                           "with more labelled captures")
    return TestSet(summary.ref, split.images, split.labels, list(split.label_names))


def evaluate_model(
    db: Database,
    blobs: BlobStore,
    audit: AuditTrail,
    actor: Actor,
    version: str,
    *,
    dataset: str | int | None = None,
    formats: tuple[ArtifactFormat, ...] | None = None,
    latency_repeats: int = 200,
    threads: int = 1,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> ModelEvaluation:
    """Score ``formats`` (default: every runnable artifact) of ``version`` on the test split of
    ``dataset`` (default: the version it was trained on); store and return the results."""
    from app.core.compress_service import training_dataset

    authorize(db, audit, actor, Permission.TRAIN, f"evaluate model {version}")
    cancel = cancel or CancelToken()
    with db.read() as session:
        info = model_info(find_model(session, version))
    chosen = [f for f in (formats or tuple(info.artifacts)) if f in RUNNER_FORMAT]
    if not chosen:
        raise InvalidInput(f"model {version} has no artifact to evaluate; train or compress it")
    test = load_test_set(db, blobs, dataset if dataset is not None else training_dataset(db, info),
                         int(info.input_spec.get("height", 0)) or 96, cancel)
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgeloop-evaluate-") as scratch:
        for step, format in enumerate(chosen):
            progress(Progress("evaluate", step, len(chosen), f"{version}: {format.value}"))
            results[format] = score_artifact(blobs, info, info.artifact(format), test,
                                             Path(scratch) / format.value,
                                             latency_repeats=latency_repeats, threads=threads,
                                             cancel=cancel)
    evaluation = ModelEvaluation(version, test.ref, results)
    _store(db, audit, actor, evaluation)
    progress(Progress("evaluate", len(chosen), len(chosen), f"{version}: done"))
    return evaluation


def score_artifact(blobs: BlobStore, info: ModelInfo, ref: ArtifactRef, test: TestSet,
                   folder: Path, *, latency_repeats: int = 200, threads: int = 1,
                   cancel: CancelToken | None = None) -> FormatResult:
    """Load and score one artifact; a load failure becomes the result's ``error``."""
    from app.core.runtimes import load_runner

    try:
        path = unpack_artifact(blobs, ref, folder)
        runner = load_runner(RUNNER_FORMAT[ref.format], path, threads=threads)
    except EdgeLoopError as exc:
        return FormatResult(ref.format, ref.size, error=str(exc))
    logits = predict_logits(runner, test.images, cancel=cancel)
    model_labels = runner.labels or info.labels
    aligned = align_logits(logits, model_labels, test.label_names)
    report = confusion_report(aligned.argmax(axis=1), test.labels, test.label_names)
    latency = measure_latency(runner, test.images[0], repeats=latency_repeats,
                              warmup=min(20, latency_repeats))
    return FormatResult(ref.format, ref.size, report=report, latency=latency)


def align_logits(logits: np.ndarray, model_labels: list[str], schema: list[str]) -> np.ndarray:
    """``logits`` (columns in ``model_labels`` order) re-ordered to ``schema``; a class of the
    schema the model does not know gets -inf, so it is never predicted."""
    if logits.shape[1] != len(model_labels):
        raise InvalidInput(f"the model gives {logits.shape[1]} outputs for "
                           f"{len(model_labels)} labels")
    if list(model_labels) == list(schema):
        return logits
    shared = set(model_labels) & set(schema)
    if not shared:
        raise InvalidInput(f"the model's labels {model_labels} share no class with the "
                           f"dataset's {schema}")
    out = np.full((len(logits), len(schema)), -np.inf, dtype=np.float32)
    for column, name in enumerate(schema):
        if name in model_labels:
            out[:, column] = logits[:, model_labels.index(name)]
    return out


def _store(db: Database, audit: AuditTrail, actor: Actor, evaluation: ModelEvaluation) -> None:
    with db.write() as session:
        row = find_model(session, evaluation.version)
        for artifact in row.artifacts:
            result = evaluation.results.get(artifact.format)
            if result is not None:
                artifact.metrics = {**result.to_json(), "dataset": evaluation.dataset}
        row.metrics = {**(row.metrics or {}), "evaluation": evaluation.summary()}
        audit.append(session, actor=actor.name, action="model.evaluate",
                     object_type="model_version", object_id=evaluation.version,
                     after=evaluation.summary())
