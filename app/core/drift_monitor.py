"""Drift detection: is what the fleet sees now still what the deployed model was trained on?

The reference is a :class:`~app.core.models.DriftBaseline`, built once per (edge model,
observer) from the test split of the dataset the edge model was trained on. Against it,
:func:`measure_drift` measures, per device and fleet-wide, over a time window:

- ``psi_input``: PSI of the devices' own input statistics (brightness, contrast, colour
  channel means; hourly histograms over every frame, not only kept ones), the largest of them;
- ``psi_confidence``: PSI of the edge model's top confidence, same source;
- ``mmd_embedding``: an MMD permutation test between the observer's embeddings of the
  baseline images and of unbiased captures (random samples and imports: captures kept for
  low confidence would look drifted by construction). With a few hundred samples the test
  finds differences too small to matter (one station's belt against the baseline pooled over
  several measured MMD² 0.010-0.018 in the demo; the lighting drift 0.09), so an alert needs
  both p below ``mmd_p_alert`` and MMD² of at least ``mmd_min_effect``;
- ``label_disagreement`` (concept drift): how often reviewed labels disagree with the edge
  model, in the window against the earlier reviewed captures of the same model version.

Every value is stored as a :class:`~app.core.models.DriftMeasurement`; one over its threshold
is an alert, audited as ``drift.alert``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, select

from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.datasets import get_version, load_split
from app.core.db import Database
from app.core.drift_math import histogram, mmd_test, psi, psi_band
from app.core.errors import InvalidInput
from app.core.model_store import ModelInfo, find_model, model_info, unpack_artifact
from app.core.models import (
    Annotation, ArtifactFormat, Capture, CaptureReason, Device, DeviceDriftHour, DriftBaseline,
    DriftMeasurement, ModelKind, ModelStatus, ModelVersion, Observation, TrainingRun, utcnow,
)
from app.core.observer import active_observer, embeddings_of, load_observer, softmax
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize
from app.fleet.agent.drift_stats import BINS, RANGES, image_statistics

Clock = Callable[[], datetime]
INPUT_STATS = ("brightness", "contrast", "blue", "green", "red")
UNBIASED = (CaptureReason.RANDOM_SAMPLE, CaptureReason.EVERY_NTH, CaptureReason.IMPORTED)
FLEET = "fleet"


@dataclass(frozen=True)
class DriftSettings:
    """Thresholds and minimum sample sizes; a statistic on fewer samples is not measured."""

    psi_alert: float = 0.25  # "significant" by the usual PSI bands
    mmd_p_alert: float = 0.01
    mmd_min_effect: float = 0.05
    concept_increase: float = 0.15  # disagreement rate up by this much (absolute)
    min_frames: int = 200
    min_embeddings: int = 40
    min_reviewed: int = 30
    baseline_images: int = 400
    permutations: int = 200


# -- the baseline -----------------------------------------------------------------------------
def build_baseline(
    db: Database,
    blobs: BlobStore,
    *,
    edge: str,
    observer: str | None = None,
    dataset: str | None = None,
    settings: DriftSettings = DriftSettings(),
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> int:
    """Build (or rebuild) the baseline of edge model ``edge``; return its id.

    ``dataset`` defaults to the dataset version ``edge`` was trained on.
    """
    from app.core.runtimes import load_runner

    cancel = cancel or CancelToken()
    with db.read() as session:
        edge_row = find_model(session, edge)
        edge_info = model_info(edge_row)
        if dataset is None:
            run = session.get(TrainingRun, edge_row.training_run_id) if edge_row.training_run_id else None
            if run is None:
                raise InvalidInput(f"model {edge} has no training run to take the baseline "
                                   "data from; give the dataset version")
            dataset = run.dataset_version_id
    version = get_version(db, dataset)
    observer_info = active_observer(db, observer)
    size = int(edge_info.input_spec["height"])
    progress(Progress("baseline", 0, 3, f"loading {version.ref} test images"))
    split = load_split(db, blobs, version.id, "test", size, cancel=cancel)
    if len(split) < settings.min_embeddings:
        split = load_split(db, blobs, version.id, "train", size, cancel=cancel)
    images = split.images[: settings.baseline_images]
    if len(images) == 0:
        raise InvalidInput(f"dataset {version.ref} has no images for a drift baseline")
    stats = [image_statistics(image) for image in images]
    histograms = {name: histogram(np.array([s[name] for s in stats]), *RANGES[name], BINS).tolist()
                  for name in INPUT_STATS}
    progress(Progress("baseline", 1, 3, f"edge model {edge} on {len(images)} images"))
    with tempfile.TemporaryDirectory(prefix="edgeloop-baseline-") as scratch:
        fmt = _edge_format(edge_info)
        path = unpack_artifact(blobs, edge_info.artifact(fmt), Path(scratch) / "edge")
        runner = load_runner(fmt.value, path, spec=edge_info.input_spec, labels=edge_info.labels)
        logits = np.concatenate([runner(images[i:i + 64]) for i in range(0, len(images), 64)])
        confidence = softmax(logits).max(axis=1)
        histograms["confidence"] = histogram(confidence, *RANGES["confidence"], BINS).tolist()
        cancel.check()
        progress(Progress("baseline", 2, 3, f"observer {observer_info.version} embeddings"))
        engine = load_observer(blobs, observer_info, Path(scratch) / "observer")
        obs_size = engine.input.height
        resized = images if obs_size == size else np.stack(
            [_resize(image, obs_size) for image in images])
        embeddings = np.concatenate([engine(resized[i:i + 64]).embeddings
                                     for i in range(0, len(resized), 64)])
    profile = {"n": len(images), "bins": BINS, "ranges": {k: list(v) for k, v in RANGES.items()},
               "histograms": histograms, "dataset": version.ref,
               "mean_confidence": float(confidence.mean())}
    with db.write() as session:
        session.execute(delete(DriftBaseline).where(
            DriftBaseline.edge_model_id == edge_info.id,
            DriftBaseline.observer_model_id == observer_info.id))
        row = DriftBaseline(edge_model_id=edge_info.id, observer_model_id=observer_info.id,
                            dataset_version_id=version.id, profile=profile,
                            embeddings=embeddings.astype("<f2").tobytes(),
                            dims=int(embeddings.shape[1]))
        session.add(row)
        session.flush()
        progress(Progress("baseline", 3, 3, f"baseline of {edge} from {version.ref}"))
        return row.id


def _edge_format(info: ModelInfo) -> ArtifactFormat:
    for fmt in (ArtifactFormat.ONNX, ArtifactFormat.TORCH, ArtifactFormat.RELEASE):
        if fmt in info.artifacts:
            return fmt
    raise InvalidInput(f"model {info.version} has no artifact to run for a baseline")


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


# -- measuring --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    """One drift statistic of one scope (a device id, or ``"fleet"``)."""

    scope: str
    metric: str
    value: float
    threshold: float
    alert: bool
    n: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftReport:
    """Everything one :func:`measure_drift` call measured."""

    edge_model: str
    observer: str
    window_start: datetime
    window_end: datetime
    measurements: list[Measurement]

    @property
    def alerts(self) -> list[Measurement]:
        return [m for m in self.measurements if m.alert]

    def value(self, scope: str, metric: str) -> Measurement | None:
        return next((m for m in self.measurements if m.scope == scope and m.metric == metric),
                    None)


def measure_drift(
    db: Database,
    audit: AuditTrail,
    actor: Actor,
    *,
    since: datetime,
    until: datetime | None = None,
    edge: str | None = None,
    observer: str | None = None,
    settings: DriftSettings = DriftSettings(),
    clock: Clock = utcnow,
) -> DriftReport:
    """Measure drift over captures and device statistics from ``since`` to ``until`` (now)."""
    authorize(db, audit, actor, Permission.VIEW, "measure drift")
    until = until or clock()
    if since >= until:
        raise InvalidInput(f"the drift window starts ({since}) after it ends ({until})")
    with db.read() as session:
        edge_row = _edge_model(session, edge)
        observer_info = active_observer(db, observer)
        baseline = session.scalar(select(DriftBaseline).where(
            DriftBaseline.edge_model_id == edge_row.id,
            DriftBaseline.observer_model_id == observer_info.id))
        if baseline is None:
            raise InvalidInput(f"no drift baseline for {edge_row.version} with observer "
                               f"{observer_info.version}: build it with `edgeloop drift "
                               f"baseline {edge_row.version}`")
        profile = dict(baseline.profile)
        reference = embeddings_of(baseline.embeddings, baseline.dims)
        devices = dict(session.execute(select(Device.id, Device.uid)).all())
        hours = _hours(session, since, until)
        embeddings = _embeddings(session, observer_info.id, baseline.dims, since, until)
        concept = _concept(session, edge_row.version, since, until)
        edge_version = edge_row.version
    measurements: list[Measurement] = []
    scopes: list[tuple[str, list[int]]] = [(devices[d], [d]) for d in sorted(
        set(hours) | set(embeddings) | set(concept)) if d in devices]
    scopes.append((FLEET, sorted(devices)))
    for scope, ids in scopes:
        measurements += _device_stats(scope, [hours[d] for d in ids if d in hours], profile,
                                      settings)
        found = [embeddings[d] for d in ids if d in embeddings]
        if found:
            measurements += _mmd(scope, reference, np.concatenate(found), settings)
        pairs = [concept[d] for d in ids if d in concept]
        if pairs:
            measurements += _concept_drift(scope, pairs, settings)
    report = DriftReport(edge_version, observer_info.version, since, until, measurements)
    _store(db, audit, actor, report, {uid: i for i, uid in devices.items()},
           f"{edge_version}/{observer_info.version}", clock())
    return report


def _edge_model(session: Any, edge: str | None) -> ModelVersion:
    if edge is not None:
        return find_model(session, edge)
    row = session.scalar(select(ModelVersion).where(
        ModelVersion.kind == ModelKind.EDGE, ModelVersion.status == ModelStatus.DEPLOYED)
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()).limit(1))
    if row is None:
        raise InvalidInput("no edge model is deployed: name the edge model to measure against")
    return row


def _hours(session: Any, since: datetime, until: datetime) -> dict[int, list[dict]]:
    """Each device's hourly statistics records that overlap the window."""
    first, last = since.strftime("%Y%m%d%H"), until.strftime("%Y%m%d%H")
    found: dict[int, list[dict]] = {}
    for device_id, record in session.execute(
            select(DeviceDriftHour.device_id, DeviceDriftHour.record)
            .where(DeviceDriftHour.hour >= first, DeviceDriftHour.hour <= last)):
        found.setdefault(device_id, []).append(record)
    return found


def _embeddings(session: Any, observer_id: int, dims: int, since: datetime,
                until: datetime) -> dict[int, np.ndarray]:
    rows = session.execute(
        select(Capture.device_id, Observation.embedding)
        .join(Observation, and_(Observation.capture_id == Capture.id,
                                Observation.model_id == observer_id))
        .where(Capture.captured_at >= since, Capture.captured_at < until,
               Capture.reason.in_(UNBIASED), Observation.embedding.is_not(None))).all()
    grouped: dict[int, list[bytes]] = {}
    for device_id, blob in rows:
        if len(blob) == dims * 2:
            grouped.setdefault(device_id, []).append(blob)
    return {d: embeddings_of(b"".join(blobs), dims) for d, blobs in grouped.items()}


def _concept(session: Any, edge_version: str, since: datetime,
             until: datetime) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per device: (disagreed?, in the window?) of each reviewed capture the model predicted."""
    newest = (select(Annotation.capture_id, func.max(Annotation.id).label("id"))
              .where(Annotation.superseded.is_(False), Annotation.class_id.is_not(None))
              .group_by(Annotation.capture_id).subquery())
    rows = session.execute(
        select(Capture.device_id, Capture.edge_class_id, Annotation.class_id, Capture.captured_at)
        .join(newest, newest.c.capture_id == Capture.id)
        .join(Annotation, Annotation.id == newest.c.id)
        .where(Capture.model_version == edge_version, Capture.captured_at < until,
               Capture.edge_class_id.is_not(None))).all()
    grouped: dict[int, list[tuple[bool, bool]]] = {}
    for device_id, edge_class, label, at in rows:
        grouped.setdefault(device_id, []).append((edge_class != label, at >= since))
    return {d: (np.array([p[0] for p in v]), np.array([p[1] for p in v]))
            for d, v in grouped.items()}


def _device_stats(scope: str, records: Sequence[list[dict]], profile: dict[str, Any],
                  settings: DriftSettings) -> list[Measurement]:
    totals: dict[str, np.ndarray] = {}
    frames = 0
    for device_records in records:
        for record in device_records:
            frames += int(record.get("n", 0))
            for name, hist in (record.get("histograms") or {}).items():
                counts = np.asarray(hist.get("counts", []), dtype=np.int64)
                if len(counts) == BINS:
                    totals[name] = totals.get(name, np.zeros(BINS, dtype=np.int64)) + counts
    if frames < settings.min_frames:
        return []
    base = profile["histograms"]
    values = {name: psi(np.asarray(base[name]), totals[name]) for name in INPUT_STATS
              if name in totals and totals[name].sum() > 0}
    found: list[Measurement] = []
    if values:
        worst = max(values, key=values.__getitem__)
        found.append(Measurement(scope, "psi_input", values[worst], settings.psi_alert,
                                 values[worst] > settings.psi_alert, frames,
                                 {"worst": worst, "band": psi_band(values[worst]),
                                  "by_statistic": {k: round(v, 4) for k, v in values.items()}}))
    if "confidence" in totals and totals["confidence"].sum() > 0:
        value = psi(np.asarray(base["confidence"]), totals["confidence"])
        found.append(Measurement(scope, "psi_confidence", value, settings.psi_alert,
                                 value > settings.psi_alert, frames, {"band": psi_band(value)}))
    return found


def _mmd(scope: str, reference: np.ndarray, current: np.ndarray,
         settings: DriftSettings) -> list[Measurement]:
    if len(current) < settings.min_embeddings or len(reference) < settings.min_embeddings:
        return []
    result = mmd_test(reference, current, permutations=settings.permutations)
    alert = result.p_value < settings.mmd_p_alert and result.mmd2 >= settings.mmd_min_effect
    return [Measurement(scope, "mmd_embedding", result.mmd2, settings.mmd_min_effect, alert,
                        len(current),
                        {"p_value": result.p_value, "p_threshold": settings.mmd_p_alert,
                         "bandwidth": result.bandwidth,
                         "reference": result.n_reference})]


def _concept_drift(scope: str, pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                   settings: DriftSettings) -> list[Measurement]:
    disagreed = np.concatenate([p[0] for p in pairs])
    recent = np.concatenate([p[1] for p in pairs])
    now, before = disagreed[recent], disagreed[~recent]
    if len(now) < settings.min_reviewed:
        return []
    rate = float(now.mean())
    if len(before) < settings.min_reviewed:
        return [Measurement(scope, "label_disagreement", rate, settings.concept_increase, False,
                            len(now), {"reference": None,
                                       "note": "no earlier reviewed captures to compare with"})]
    reference = float(before.mean())
    return [Measurement(scope, "label_disagreement", rate, settings.concept_increase,
                        rate - reference > settings.concept_increase, len(now),
                        {"reference": reference, "reference_n": int(len(before))})]


def _store(db: Database, audit: AuditTrail, actor: Actor, report: DriftReport,
           device_ids: dict[str, int], baseline: str, now: datetime) -> None:
    with db.write() as session:
        for m in report.measurements:
            session.add(DriftMeasurement(
                device_id=device_ids.get(m.scope), metric=m.metric, value=float(m.value),
                threshold=m.threshold, alert=m.alert, window_start=report.window_start,
                window_end=report.window_end, baseline=baseline,
                details={**m.details, "n": m.n}, measured_at=now))
            if m.alert:
                audit.append(session, actor=actor.name, action="drift.alert",
                             object_type="device" if m.scope != FLEET else "fleet",
                             object_id=m.scope,
                             after={"metric": m.metric, "value": round(float(m.value), 4),
                                    "threshold": m.threshold, "n": m.n})


def recent_alerts(db: Database, since: datetime) -> list[DriftMeasurement]:
    """Drift alerts measured since ``since``, newest first."""
    with db.read() as session:
        rows = list(session.scalars(select(DriftMeasurement).where(
            DriftMeasurement.alert.is_(True), DriftMeasurement.measured_at >= since)
            .order_by(DriftMeasurement.measured_at.desc())))
        session.expunge_all()
        return rows
