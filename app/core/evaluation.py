"""Scoring a model artifact as the device runs it: accuracy, per-class figures, latency, size.

Everything goes through a runner (``app.core.runtimes``), so preprocessing and runtime
settings are the device's. Latency is measured at batch 1 (a device classifies one frame at
a time) after a warm-up, as medians and 99th percentiles, because one slow run on a busy
machine says little and a mean hides the tail a line operator notices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from app.core.errors import InvalidInput
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.runtimes import Runner


@dataclass(frozen=True)
class ClassScore:
    """Precision and recall of one class; ``support`` is how many test images have it."""

    precision: float
    recall: float
    support: int


@dataclass(frozen=True)
class EvalReport:
    """How a model did on a labelled test set.

    ``confusion[i][j]`` counts images of class ``i`` predicted as class ``j``; a class never
    predicted has precision 0 (not NaN), so reports stay valid JSON.
    """

    accuracy: float
    count: int
    labels: list[str]
    per_class: dict[str, ClassScore]
    confusion: list[list[int]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def confusion_report(predicted: np.ndarray, truth: np.ndarray, label_names: Sequence[str]) -> EvalReport:
    """The :class:`EvalReport` of predicted vs true class ids."""
    n = len(label_names)
    predicted, truth = np.asarray(predicted, dtype=np.int64), np.asarray(truth, dtype=np.int64)
    if predicted.shape != truth.shape:
        raise InvalidInput(f"{len(predicted)} predictions for {len(truth)} labels")
    if len(truth) and (truth.min() < 0 or truth.max() >= n):
        raise InvalidInput(f"labels must be class ids from 0 to {n - 1} "
                           f"(there are {n} label names)")
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    per_class = {}
    for i, name in enumerate(label_names):
        predicted_i, actual_i = int(matrix[:, i].sum()), int(matrix[i].sum())
        per_class[name] = ClassScore(
            precision=float(matrix[i, i] / predicted_i) if predicted_i else 0.0,
            recall=float(matrix[i, i] / actual_i) if actual_i else 0.0,
            support=actual_i,
        )
    accuracy = float(np.trace(matrix) / len(truth)) if len(truth) else 0.0
    return EvalReport(accuracy, len(truth), list(label_names), per_class, matrix.tolist())


def predict_logits(
    runner: Runner,
    images: np.ndarray,
    *,
    batch: int = 32,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Logits of every image, ``batch`` at a time (the runtimes give the same per image)."""
    outputs = []
    for start in range(0, len(images), batch):
        if cancel is not None:
            cancel.check()
        outputs.append(runner(images[start:start + batch]))
        progress(Progress("evaluate", min(start + batch, len(images)), len(images),
                          f"{runner.format}: {min(start + batch, len(images))} images"))
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


def evaluate_runner(
    runner: Runner,
    images: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    *,
    batch: int = 32,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> EvalReport:
    """Score ``runner`` on uint8 NHWC BGR ``images`` with true class ids ``labels``."""
    if len(images) != len(labels):
        raise InvalidInput(f"{len(images)} images but {len(labels)} labels: give one label "
                           "per image")
    if len(images) == 0:
        raise InvalidInput("the test set is empty: give at least one labelled image")
    logits = predict_logits(runner, images, batch=batch, progress=progress, cancel=cancel)
    if logits.shape[1] != len(label_names):
        raise InvalidInput(f"{runner.path.name} gives {logits.shape[1]} outputs for "
                           f"{len(label_names)} label names")
    return confusion_report(logits.argmax(axis=1), np.asarray(labels), label_names)


class Latency(NamedTuple):
    """Milliseconds per call at batch 1: median and 99th percentile."""

    p50_ms: float
    p99_ms: float


def latency_samples(fn: Callable[[], object], repeats: int, warmup: int) -> np.ndarray:
    """Milliseconds of each of ``repeats`` timed calls of ``fn``, after ``warmup`` untimed."""
    for _ in range(warmup):
        fn()
    samples = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        samples[i] = (time.perf_counter() - start) * 1000
    return samples


def summarize(samples: np.ndarray) -> Latency:
    return Latency(float(np.percentile(samples, 50)), float(np.percentile(samples, 99)))


def measure_latency(
    runner: Runner,
    image: np.ndarray,
    repeats: int = 200,
    *,
    warmup: int = 20,
    include_preprocessing: bool = True,
) -> Latency:
    """Latency of one frame through ``runner``: the device's per-frame cost by default, or
    with ``include_preprocessing=False`` the runtime call alone on a prepared tensor."""
    if repeats < 1:
        raise InvalidInput(f"repeats must be at least 1, not {repeats}")
    frame = np.asarray(image)[None] if np.asarray(image).ndim == 3 else np.asarray(image)[:1]
    if include_preprocessing:
        return summarize(latency_samples(lambda: runner(frame), repeats, warmup))
    tensor = runner.prepare(frame)
    return summarize(latency_samples(lambda: runner.infer(tensor), repeats, warmup))


def artifact_files(path: Path) -> list[Path]:
    """The files an artifact is made of: an OpenVINO ``.xml`` brings its ``.bin``."""
    path = Path(path)
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


def artifact_size(path: Path) -> int:
    """Bytes on disk of the artifact at ``path``, all its files together."""
    try:
        return sum(p.stat().st_size for p in artifact_files(path))
    except FileNotFoundError as exc:
        raise InvalidInput(f"{Path(exc.filename).name} is missing: cannot size "
                           f"{Path(path).name}") from exc
