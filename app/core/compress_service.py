"""Compressing a model version into the formats devices run, and pruning it into a new one.

``compress_model`` takes a version's torch checkpoint and stores, as artifacts of the same
version: ONNX carrying its input spec and labels, ONNX Runtime INT8 (static QDQ), OpenVINO IR
and OpenVINO INT8 (NNCF). INT8 is calibrated on images of the training split of the dataset
version the model was trained on, prepared the way the device prepares frames
(``app.core.quantize``). Nothing is checked for accuracy here: ``app.core.evaluate_service``
scores every artifact and ``app.core.gate`` decides.

``prune_model`` removes channels from a copy and fine-tunes it briefly; the result is a new
candidate version (parent: the source) with its own training run, so lineage stays whole.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.model_files import ModelFile, dump_model, load_model
from app.core.model_store import (
    ModelInfo, check_mutable, find_model, model_info, store_artifact,
)
from app.core.models import (
    ArtifactFormat, ModelStatus, ModelVersion, RunStatus, TrainingRun, utcnow,
)
from app.core.progress import Cancelled, CancelToken, Progress, ProgressFn, no_progress
from app.core.quantize import OrtInt8Settings
from app.core.roles import Actor, Permission, authorize

COMPRESSED_FORMATS = (ArtifactFormat.ONNX, ArtifactFormat.ONNX_INT8, ArtifactFormat.OPENVINO,
                      ArtifactFormat.OPENVINO_INT8)
# Each INT8 format is made from its FP32 sibling.
_NEEDS = {ArtifactFormat.ONNX_INT8: ArtifactFormat.ONNX,
          ArtifactFormat.OPENVINO: ArtifactFormat.ONNX,
          ArtifactFormat.OPENVINO_INT8: ArtifactFormat.OPENVINO}


@dataclass(frozen=True)
class CompressRequest:
    """Which formats to make and how to calibrate INT8."""

    formats: tuple[ArtifactFormat, ...] = COMPRESSED_FORMATS
    calibration_images: int = 300
    ort: OrtInt8Settings = field(default_factory=OrtInt8Settings)
    nncf_preset: str = "performance"
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"formats": [f.value for f in self.formats],
                "calibration_images": self.calibration_images, "ort": self.ort.to_json(),
                "nncf_preset": self.nncf_preset, "seed": self.seed}


@dataclass(frozen=True)
class CompressOutcome:
    """The artifacts a compression stored: format -> size in bytes."""

    version: str
    sizes: dict[str, int]


def compress_model(
    db: Database,
    blobs: BlobStore,
    audit: AuditTrail,
    actor: Actor,
    version: str,
    request: CompressRequest = CompressRequest(),
    *,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> CompressOutcome:
    """Export and quantize ``version`` into ``request.formats``; each becomes an artifact."""
    authorize(db, audit, actor, Permission.TRAIN, f"compress model {version}")
    cancel = cancel or CancelToken()
    formats = _with_prerequisites(request.formats)
    with db.read() as session:
        row = find_model(session, version)
        check_mutable(row, "be compressed again")
        info = model_info(row)
    checkpoint = load_model(blobs.read_bytes(info.artifact(ArtifactFormat.TORCH).sha256),
                            f"model {version}")
    # Only INT8 formats read calibration images; the others get an empty array.
    calibration = np.zeros((0, 1, 1, 3), dtype=np.uint8)
    if {ArtifactFormat.ONNX_INT8, ArtifactFormat.OPENVINO_INT8} & set(formats):
        calibration = calibration_images(db, blobs, info, request.calibration_images,
                                         request.seed, cancel)
    made: dict[ArtifactFormat, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="edgeloop-compress-") as scratch:
        folder = Path(scratch)
        for step, format in enumerate(formats):
            cancel.check()
            progress(Progress("compress", step, len(formats), f"{version}: {format.value}"))
            made[format] = _make(format, checkpoint, info, folder, calibration, request,
                                 progress, cancel)
    with db.write() as session:
        row = find_model(session, version)
        check_mutable(row, "be compressed again")
        for format in formats:
            store_artifact(session, blobs, audit, actor, row, format, made[format])
        audit.append(session, actor=actor.name, action="model.compress",
                     object_type="model_version", object_id=version,
                     after={**request.to_json(), "formats": [f.value for f in formats],
                            "sizes": {f.value: len(d) for f, d in made.items()}})
    progress(Progress("compress", len(formats), len(formats), f"{version}: done"))
    return CompressOutcome(version, {f.value: len(d) for f, d in made.items()})


def _with_prerequisites(formats: Sequence[ArtifactFormat]) -> list[ArtifactFormat]:
    """``formats`` plus the FP32 files they are made from, in the order they are made."""
    unknown = [f for f in formats if f not in COMPRESSED_FORMATS]
    if unknown or not formats:
        raise InvalidInput(f"cannot compress to {', '.join(f.value for f in unknown) or 'nothing'}"
                           f"; choose from {', '.join(f.value for f in COMPRESSED_FORMATS)}")
    wanted = set(formats)
    changed = True
    while changed:
        needed = {_NEEDS[f] for f in wanted if f in _NEEDS}
        changed = not needed <= wanted
        wanted |= needed
    return [f for f in COMPRESSED_FORMATS if f in wanted]


def _make(format: ArtifactFormat, checkpoint: ModelFile, info: ModelInfo, folder: Path,
          calibration: np.ndarray, request: CompressRequest, progress: ProgressFn,
          cancel: CancelToken) -> bytes:
    """One format's bytes, written beside its FP32 source in ``folder``."""
    from app.core.export import export_onnx, export_openvino, pack_ir
    from app.core.quantize import quantize_onnx, quantize_openvino

    size = int(info.input_spec["height"]), int(info.input_spec["width"])
    onnx_path, xml_path = folder / "model.onnx", folder / "model.xml"
    if format is ArtifactFormat.ONNX:
        export_onnx(checkpoint.model, onnx_path, *size, input_spec=info.input_spec,
                    labels=info.labels)
        return onnx_path.read_bytes()
    if format is ArtifactFormat.ONNX_INT8:
        out = quantize_onnx(onnx_path, folder / "model.int8.onnx", calibration, request.ort,
                            progress=progress, cancel=cancel)
        return out.read_bytes()
    if format is ArtifactFormat.OPENVINO:
        return pack_ir(export_openvino(onnx_path, xml_path))
    return pack_ir(quantize_openvino(xml_path, folder / "int8" / "model.xml", calibration,
                                     preset=request.nncf_preset, subset_size=len(calibration),
                                     progress=progress, cancel=cancel))


def calibration_images(db: Database, blobs: BlobStore, info: ModelInfo, count: int, seed: int,
                       cancel: CancelToken | None = None) -> np.ndarray:
    """``count`` images of the training split the model learnt from (seeded choice)."""
    from app.core.datasets import load_split

    if count < 1:
        raise InvalidInput(f"calibration needs at least one image, not {count}")
    dataset_version_id = training_dataset(db, info)
    train = load_split(db, blobs, dataset_version_id, "train", int(info.input_spec["height"]),
                       cancel=cancel)
    if len(train) == 0:
        raise InvalidInput(f"the training split of model {info.version}'s dataset is empty; "
                           "there is nothing to calibrate INT8 on")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(train), size=min(count, len(train)), replace=False))
    return train.images[chosen]


def training_dataset(db: Database, info: ModelInfo) -> int:
    """The id of the dataset version ``info`` was trained on."""
    if info.training_run_id is None:
        raise InvalidInput(f"model {info.version} has no training run in this project (was it "
                           "registered from a release?), so there is no dataset to use")
    with db.read() as session:
        run = session.get(TrainingRun, info.training_run_id)
        return int(run.dataset_version_id)


@dataclass(frozen=True)
class PruneOutcome:
    """The new, pruned version and what pruning did."""

    version: str
    run_id: int
    report: dict[str, Any]


def prune_model(
    db: Database,
    blobs: BlobStore,
    audit: AuditTrail,
    actor: Actor,
    version: str,
    ratio: float,
    *,
    finetune_epochs: int = 3,
    new_version: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> PruneOutcome:
    """Prune ``ratio`` of the channels of ``version`` and fine-tune: a new candidate version."""
    from app.core.compress import finetune_config, prune_and_finetune
    from app.core.datasets import load_split
    from app.core.train_service import code_version, next_version_name
    from app.core.training import TrainConfig

    authorize(db, audit, actor, Permission.TRAIN, f"prune model {version}")
    cancel = cancel or CancelToken()
    with db.read() as session:
        source_row = find_model(session, version)
        source, kind = model_info(source_row), source_row.kind
    dataset_id = training_dataset(db, source)
    checkpoint = load_model(blobs.read_bytes(source.artifact(ArtifactFormat.TORCH).sha256),
                            f"model {version}")
    config = finetune_config(TrainConfig(), finetune_epochs)
    hyper = {"prune_ratio": ratio, "source": version, "arch": checkpoint.arch,
             **checkpoint.arch_kwargs, **config.to_json()}
    with db.write() as session:
        run = TrainingRun(kind=kind, dataset_version_id=dataset_id, parent_model_id=source.id,
                          started_by_id=actor.user_id, status=RunStatus.RUNNING,
                          hyperparameters=hyper, code_version=code_version(), seed=config.seed,
                          device="cpu", started_at=clock())
        session.add(run)
        session.flush()
        run_id = run.id
        audit.append(session, actor=actor.name, action="model.prune.start",
                     object_type="training_run", object_id=run_id, after=hyper)
    try:
        size = int(source.input_spec["height"])
        train = load_split(db, blobs, dataset_id, "train", size, cancel=cancel)
        val = load_split(db, blobs, dataset_id, "val", size, cancel=cancel)
        pruned, report = prune_and_finetune(
            checkpoint.model, ratio, (train.images, train.labels), (val.images, val.labels),
            config, progress=progress, cancel=cancel)
    except Exception as exc:  # recorded on the run, then raised on
        status = RunStatus.CANCELLED if isinstance(exc, Cancelled) else RunStatus.FAILED
        with db.write() as session:
            run = session.get(TrainingRun, run_id)
            error = str(exc) or type(exc).__name__
            run.status, run.error, run.finished_at = status, error[:2000], clock()
            audit.append(session, actor=actor.name, action=f"model.prune.{status.value}",
                         object_type="training_run", object_id=run_id,
                         after={"error": str(exc)[:500]})
        raise
    data = dump_model(ModelFile(pruned, checkpoint.arch, checkpoint.labels,
                                checkpoint.input_spec, checkpoint.arch_kwargs, pruned=True))
    metrics = {k: (round(v, 4) if isinstance(v, float) else v)
               for k, v in report.to_json().items()}
    with db.write() as session:
        name = new_version or next_version_name(session, kind)
        if session.scalar(select(ModelVersion.id).where(ModelVersion.version == name)):
            raise InvalidInput(f"model version {name!r} exists already; choose another name")
        row = ModelVersion(version=name, kind=kind, training_run_id=run_id, parent_id=source.id,
                           status=ModelStatus.CANDIDATE, labels=list(checkpoint.labels),
                           input_spec=dict(checkpoint.input_spec),
                           metrics={"val_accuracy": metrics["val_accuracy_after"],
                                    "parameters": metrics["parameters_after"], "pruning": metrics})
        session.add(row)
        session.flush()
        store_artifact(session, blobs, audit, actor, row, ArtifactFormat.TORCH, data)
        run = session.get(TrainingRun, run_id)
        run.status, run.metrics, run.finished_at = RunStatus.SUCCEEDED, metrics, clock()
        audit.append(session, actor=actor.name, action="model.prune.succeeded",
                     object_type="model_version", object_id=name,
                     after={"source": version, **metrics})
    return PruneOutcome(name, run_id, metrics)
