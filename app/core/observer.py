"""The observer: a large model that re-checks every pulled capture on the workstation.

The observer is an observer model version of the project: one EdgeLoop trained
(``edgeloop train --kind observer``; its checkpoint is exported to ONNX with two outputs,
logits and the pooled embedding) or one a user supplied (``edgeloop observer import``: an
ONNX file or OpenVINO IR, with a label mapping from its outputs to the project's classes).

:func:`observe_captures` runs it over every capture it has not seen yet, in batches, on one
runtime session for the whole run (ONNX Runtime or OpenVINO, all cores), with images decoded
on a thread pool while the previous batch is inferred. Each capture gets an
:class:`~app.core.models.Observation` (class, confidence, float16 embedding) and its
``observer_class_id`` / ``observer_confidence`` columns, which the review queue and drift read.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import exists, func, insert, select, update

from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.class_names import prediction_class_ids
from app.core.datasets import decode_blob_image
from app.core.db import Database
from app.core.errors import BlobError, InvalidInput
from app.core.export import pack_ir, read_ir, read_onnx_metadata
from app.core.model_store import ModelInfo, find_model, model_info, unpack_artifact
from app.core.models import (
    ArtifactFormat, Capture, ModelKind, ModelStatus, ModelVersion, Observation,
)
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.project_settings import get_setting, put_setting
from app.core.roles import Actor, Permission, authorize
from app.fleet.agent.errors import ReleaseRejected
from app.fleet.agent.manifest import InputSpec
from app.fleet.agent.runtime import preprocess

log = logging.getLogger(__name__)

OBSERVER_SETTING = "observer.model"
"""Project setting naming the observer version to use; unset: the newest observer."""
DEFAULT_BATCH = 64
# How many captures one database page holds: bounded memory, and a commit point.
PAGE = 512
SCORES = ("logits", "probabilities")


@dataclass(frozen=True)
class ObserverSpec:
    """How to read a model's outputs: which are scores, which (if any) is the embedding.

    ``labels`` gives the project class of each score output, ``""`` for outputs the project
    has no class for (their score still counts in the softmax, but predicting one yields no
    class).
    """

    labels: tuple[str, ...]
    scores: str = "logits"
    embedding_output: str | None = "embedding"

    def to_json(self) -> dict[str, Any]:
        return {"scores": self.scores, "embedding_output": self.embedding_output}


@dataclass(frozen=True)
class ObserverOutput:
    """Probabilities (N, classes) and embeddings (N, D) of a batch."""

    probs: np.ndarray
    embeddings: np.ndarray


class ObserverEngine:
    """A loaded observer: uint8 BGR images in, probabilities and embeddings out."""

    def __init__(self, info: ModelInfo, path: Path, format: ArtifactFormat, spec: ObserverSpec,
                 threads: int) -> None:
        self.info, self.spec, self.format = info, spec, format
        try:
            self.input = InputSpec.from_json(info.input_spec)
        except ReleaseRejected as exc:
            raise InvalidInput(f"observer {info.version}: {exc}") from exc
        self._run = (_onnx_session(path, threads) if format is ArtifactFormat.ONNX
                     else _openvino_session(path, threads))

    @property
    def version(self) -> str:
        return self.info.version

    def prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return preprocess(images, self.input)

    def infer(self, batch: np.ndarray) -> ObserverOutput:
        outputs = self._run(batch)
        scores = np.asarray(outputs[0], dtype=np.float32)
        if scores.ndim != 2 or scores.shape[1] != len(self.spec.labels):
            raise InvalidInput(f"observer {self.version} gave scores of shape {scores.shape}, "
                               f"but its label mapping has {len(self.spec.labels)} classes; "
                               "import it again with the right mapping")
        probs = softmax(scores) if self.spec.scores == "logits" else scores
        name = self.spec.embedding_output
        if name and name not in outputs:
            raise InvalidInput(f"observer {self.version} has no output named {name!r}; its "
                               f"outputs are {', '.join(outputs)}")
        embedding = outputs[name] if name else None
        # Without an embedding output the probabilities are the embedding: coarser, but drift
        # on them is still drift on what the observer sees.
        emb = probs if embedding is None else np.asarray(embedding, dtype=np.float32)
        return ObserverOutput(probs, emb.reshape(len(emb), -1))

    def __call__(self, images: Sequence[np.ndarray]) -> ObserverOutput:
        return self.infer(self.prepare(images))


class _Outputs(dict):
    """Outputs by name, with ``[0]`` for the first (the scores)."""

    def __init__(self, names: Sequence[str], values: Sequence[Any]) -> None:
        super().__init__(zip(names, values))
        self.first = values[0]

    def __getitem__(self, key: Any) -> Any:
        return self.first if key == 0 else super().__getitem__(key)


def _onnx_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
        raise InvalidInput(f"{path.name} does not load in ONNX Runtime ({exc})") from exc
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    return lambda batch: _Outputs(names, session.run(None, {input_name: batch}))


def _openvino_session(path: Path, threads: int) -> Any:
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
              "PERFORMANCE_HINT": "THROUGHPUT"}
    try:
        compiled = ov.Core().compile_model(read_ir(path), "CPU", config)
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"{path.name} does not compile on OpenVINO's CPU plugin "
                           f"({str(exc).strip().splitlines()[-1]})") from exc
    request = compiled.create_infer_request()
    names = [next(iter(o.get_names()), str(i)) for i, o in enumerate(compiled.outputs)]

    def run(batch: np.ndarray) -> _Outputs:
        result = request.infer({0: batch})
        return _Outputs(names, [np.array(result[o]) for o in compiled.outputs])
    return run


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


# -- choosing and loading ---------------------------------------------------------------------
def active_observer(db: Database, version: str | None = None) -> ModelInfo:
    """The observer to use: ``version``, else the project setting, else the newest one."""
    with db.read() as session:
        if version is None:
            version = get_setting(session, OBSERVER_SETTING)
        if version is not None:
            row = find_model(session, version)
            if row.kind is not ModelKind.OBSERVER:
                raise InvalidInput(f"model {version} is an {row.kind.value} model, not an "
                                   "observer; pick one `edgeloop models list` shows as observer")
        else:
            row = session.scalar(select(ModelVersion).where(
                ModelVersion.kind == ModelKind.OBSERVER,
                ModelVersion.status != ModelStatus.RETIRED)
                .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()).limit(1))
            if row is None:
                raise InvalidInput("this project has no observer model: train one with "
                                   "`edgeloop train --kind observer` or import one with "
                                   "`edgeloop observer import`")
        return model_info(row)


def use_observer(db: Database, audit: AuditTrail, actor: Actor, version: str) -> ModelInfo:
    """Make ``version`` the project's observer from now on."""
    authorize(db, audit, actor, Permission.TRAIN, "choose the observer")
    info = active_observer(db, version)
    with db.write() as session:
        put_setting(session, audit, actor.name, OBSERVER_SETTING, info.version)
    return info


def observer_spec(info: ModelInfo) -> ObserverSpec:
    """How to read this observer's outputs (user-supplied ones record it at import)."""
    recorded = info.artifacts.get(ArtifactFormat.ONNX) or info.artifacts.get(
        ArtifactFormat.OPENVINO)
    meta = (recorded.metrics.get("observer") if recorded is not None else None) or {}
    return ObserverSpec(tuple(info.labels), meta.get("scores", "logits"),
                        meta.get("embedding_output", "embedding"))


def load_observer(blobs: BlobStore, info: ModelInfo, folder: Path,
                  threads: int | None = None) -> ObserverEngine:
    """Load ``info`` for inference; a torch-only observer is exported to ONNX in ``folder``."""
    threads = threads or os.cpu_count() or 1
    spec = observer_spec(info)
    for fmt in (ArtifactFormat.ONNX, ArtifactFormat.OPENVINO):
        if fmt in info.artifacts:
            path = unpack_artifact(blobs, info.artifact(fmt), Path(folder) / fmt.value)
            return ObserverEngine(info, path, fmt, spec, threads)
    path = export_observer_onnx(blobs, info, Path(folder) / "observer.onnx")
    return ObserverEngine(info, path, ArtifactFormat.ONNX, spec, threads)


def export_observer_onnx(blobs: BlobStore, info: ModelInfo, path: Path) -> Path:
    """Export a trained observer's checkpoint as ONNX with outputs ``logits`` and ``embedding``."""
    from torch import nn

    from app.core.export import export_onnx
    from app.core.model_files import load_model

    checkpoint = load_model(blobs.read_bytes(info.artifact(ArtifactFormat.TORCH).sha256),
                            f"checkpoint of {info.version}")
    net = checkpoint.model
    if not hasattr(net, "embed") or not hasattr(net, "head"):
        raise InvalidInput(f"{info.version}'s network has no embedding to export")

    class WithEmbedding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> Any:
            features = self.net.embed(x)
            return self.net.head(features), features

    size = int(info.input_spec["height"]), int(info.input_spec["width"])
    path.parent.mkdir(parents=True, exist_ok=True)
    return export_onnx(WithEmbedding(), path, *size, input_spec=info.input_spec,
                       labels=info.labels, output_names=("logits", "embedding"))


def ensure_onnx(db: Database, blobs: BlobStore, audit: AuditTrail, actor: Actor,
                info: ModelInfo) -> ModelInfo:
    """A trained observer's ONNX export (logits and embedding), made once and kept as its
    ONNX artifact: exporting takes seconds, as long as observing a thousand captures."""
    if ArtifactFormat.ONNX in info.artifacts or ArtifactFormat.OPENVINO in info.artifacts:
        return info
    with tempfile.TemporaryDirectory(prefix="edgeloop-observer-export-") as scratch:
        data = export_observer_onnx(blobs, info, Path(scratch) / "observer.onnx").read_bytes()
    from app.core.model_store import store_artifact

    with db.write() as session:
        row = find_model(session, info.version)
        if not any(a.format is ArtifactFormat.ONNX for a in row.artifacts):
            store_artifact(session, blobs, audit, actor, row, ArtifactFormat.ONNX, data,
                           {"observer": observer_spec(info).to_json()})
        session.flush()
        return model_info(row)


# -- running over captures --------------------------------------------------------------------
@dataclass(frozen=True)
class ObserveOutcome:
    """What a run of the observer did."""

    observer: str
    observer_id: int
    observed: int
    unreadable: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.observed / self.seconds if self.seconds > 0 else 0.0


def observe_captures(
    db: Database,
    blobs: BlobStore,
    audit: AuditTrail,
    actor: Actor,
    *,
    observer: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    limit: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> ObserveOutcome:
    """Run the observer over every capture it has not observed yet (at most ``limit``).

    A capture whose image cannot be read is logged, counted as unreadable and left for the
    next run; the others are committed a page at a time, so a cancelled run keeps its work.
    """
    authorize(db, audit, actor, Permission.TRAIN, "run the observer")
    if batch_size < 1:
        raise InvalidInput(f"batch size must be at least 1, not {batch_size}")
    cancel = cancel or CancelToken()
    info = active_observer(db, observer)
    with db.read() as session:
        class_ids = prediction_class_ids(session)  # old names of renamed classes too
        todo = session.scalar(select(func.count(Capture.id)).where(_unobserved(info.id)))
    total = min(todo or 0, limit) if limit is not None else (todo or 0)
    started = time.perf_counter()
    done = unreadable = 0
    if total == 0:
        return ObserveOutcome(info.version, info.id, 0, 0, 0.0)
    info = ensure_onnx(db, blobs, audit, actor, info)
    with tempfile.TemporaryDirectory(prefix="edgeloop-observer-") as scratch, \
            ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1),
                               thread_name_prefix="observer-decode") as pool:
        engine = load_observer(blobs, info, Path(scratch), threads)
        size = engine.input.height
        after = 0
        while done + unreadable < total:
            cancel.check()
            page = _page(db, info.id, after, min(PAGE, total - done - unreadable))
            if not page:
                break
            after = page[-1][0]
            rows, bad = _observe_page(engine, pool, blobs, page, size, batch_size, cancel)
            _store(db, info, rows, class_ids)
            done += len(rows)
            unreadable += bad
            progress(Progress("observe", done + unreadable, total,
                              f"{done} captures observed by {info.version}"))
    seconds = time.perf_counter() - started
    outcome = ObserveOutcome(info.version, info.id, done, unreadable, seconds)
    with db.write() as session:
        audit.append(session, actor=actor.name, action="observer.run", object_type="model_version",
                     object_id=info.version,
                     after={"observed": done, "unreadable": unreadable,
                            "seconds": round(seconds, 2)})
    return outcome


def _unobserved(model_id: int) -> Any:
    return ~exists().where(Observation.capture_id == Capture.id, Observation.model_id == model_id)


def _page(db: Database, model_id: int, after: int, count: int) -> list[tuple[int, str]]:
    with db.read() as session:
        return [tuple(r) for r in session.execute(
            select(Capture.id, Capture.blob_sha256)
            .where(Capture.id > after, _unobserved(model_id))
            .order_by(Capture.id).limit(count)).all()]


def _observe_page(engine: ObserverEngine, pool: ThreadPoolExecutor, blobs: BlobStore,
                  page: list[tuple[int, str]], size: int, batch_size: int,
                  cancel: CancelToken) -> tuple[list[tuple[int, int, float, bytes]], int]:
    """(capture id, class index, confidence, embedding bytes) per readable capture, and the
    count of unreadable ones. Decoding of batch k+1 runs while batch k is inferred."""

    def decode(item: tuple[int, str]) -> np.ndarray | None:
        capture_id, sha = item
        try:
            return decode_blob_image(blobs, sha, size, f"capture {capture_id}")
        except BlobError as exc:
            log.warning("observer skips %s", exc)
            return None

    batches = [page[i:i + batch_size] for i in range(0, len(page), batch_size)]
    # map submits every batch at once: the pool decodes ahead while this thread infers.
    pending = pool.map(lambda b: list(map(decode, b)), batches)
    rows: list[tuple[int, int, float, bytes]] = []
    bad = 0
    for items, images in zip(batches, pending):
        cancel.check()
        kept = [(item, image) for item, image in zip(items, images) if image is not None]
        bad += len(items) - len(kept)
        if not kept:
            continue
        out = engine([image for _, image in kept])
        top = out.probs.argmax(axis=1)
        embeddings = out.embeddings.astype("<f2")
        for i, ((capture_id, _), _) in enumerate(kept):
            rows.append((capture_id, int(top[i]), float(out.probs[i, top[i]]),
                         embeddings[i].tobytes()))
    return rows, bad


def _store(db: Database, info: ModelInfo, rows: list[tuple[int, int, float, bytes]],
           class_ids: dict[str, int]) -> None:
    if not rows:
        return
    labels = info.labels
    ids = [class_ids.get(labels[k]) if labels[k] else None for _, k, _, _ in rows]
    with db.write() as session:
        session.execute(insert(Observation), [
            {"capture_id": c, "model_id": info.id, "class_id": ids[i], "confidence": conf,
             "embedding": emb} for i, (c, _, conf, emb) in enumerate(rows)])
        session.execute(update(Capture), [
            {"id": c, "observer_class_id": ids[i], "observer_confidence": conf}
            for i, (c, _, conf, _) in enumerate(rows)])


def embeddings_of(blobs: bytes | None, dims: int) -> np.ndarray:
    """Decode embeddings stored as float16 bytes into an (N, dims) float32 array."""
    if not blobs:
        return np.zeros((0, dims), dtype=np.float32)
    return np.frombuffer(blobs, dtype="<f2").astype(np.float32).reshape(-1, dims)


# -- importing a user's model -----------------------------------------------------------------
def import_observer(
    db: Database,
    blobs: BlobStore,
    audit: AuditTrail,
    actor: Actor,
    path: Path,
    *,
    labels: Sequence[str],
    input_spec: dict[str, Any] | None = None,
    scores: str = "logits",
    embedding_output: str | None = None,
    version: str | None = None,
) -> ModelInfo:
    """Register a user-supplied ONNX file or OpenVINO IR (.xml) as an observer version.

    ``labels`` maps each score output to a project class name (``""``: no class). The model
    is loaded and run on one blank image before anything is stored, so a file that does not
    load, or whose outputs do not match the mapping, is refused with the reason.
    """
    authorize(db, audit, actor, Permission.TRAIN, "import an observer model")
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist: give an .onnx file or an OpenVINO .xml")
    if scores not in SCORES:
        raise InvalidInput(f"scores must be one of {', '.join(SCORES)}, not {scores!r}")
    suffix = path.suffix.lower()
    if suffix not in (".onnx", ".xml"):
        raise InvalidInput(f"{path.name}: an observer is an .onnx file or an OpenVINO .xml")
    fmt = ArtifactFormat.ONNX if suffix == ".onnx" else ArtifactFormat.OPENVINO
    if input_spec is None and fmt is ArtifactFormat.ONNX:
        input_spec = read_onnx_metadata(path).input_spec
    if input_spec is None:
        raise InvalidInput(f"{path.name} carries no input spec: give the input size "
                           "(--size) and normalisation")
    spec = ObserverSpec(tuple(labels), scores, embedding_output)
    from app.core.train_service import next_version_name

    with db.read() as session:
        known = set(prediction_class_ids(session))
        name = version or next_version_name(session, ModelKind.OBSERVER)
    unknown = sorted({label for label in labels if label and label not in known})
    if unknown:
        raise InvalidInput(f"the label mapping names classes this project lacks: "
                           f"{', '.join(unknown)}; map them to existing classes or to \"\"")
    probe = ModelInfo(0, name, ModelStatus.CANDIDATE, list(labels), dict(input_spec), None, {})
    engine = ObserverEngine(probe, path, fmt, spec, 1)
    blank = np.zeros((engine.input.height, engine.input.width, 3), dtype=np.uint8)
    out = engine([blank])
    data = path.read_bytes() if fmt is ArtifactFormat.ONNX else pack_ir(path)
    from app.core.model_store import store_artifact

    with db.write() as session:
        if session.scalar(select(ModelVersion.id).where(ModelVersion.version == name)):
            raise InvalidInput(f"model version {name!r} exists; pick another --version")
        row = ModelVersion(version=name, kind=ModelKind.OBSERVER, labels=list(labels),
                           input_spec=dict(input_spec),
                           metrics={"source": path.name, "embedding_dims":
                                    int(out.embeddings.shape[1])})
        session.add(row)
        session.flush()
        store_artifact(session, blobs, audit, actor, row, fmt, data,
                       {"observer": spec.to_json()})
        audit.append(session, actor=actor.name, action="observer.import",
                     object_type="model_version", object_id=name,
                     after={"file": path.name, "labels": list(labels), **spec.to_json()})
        session.flush()
        return model_info(row)
