"""The model registry as the CLI and GUI list it: every version with its status and results.

:func:`model_summaries` is the registry's one line per version. :func:`model_details` and
:func:`all_model_details` add what ``edgeloop models show`` and the GUI's Models page show
of a version: its lineage (parent, training run, the dataset version it learnt from) and,
per artifact, the scores the evaluation service stored (``app.core.evaluate_service``):
accuracy and its difference from the version's FP32 reference, per-class precision and
recall, the confusion matrix and latency, each with the runtime it was measured on. Nothing
here runs a model: a format never evaluated is shown as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models import (
    ArtifactFormat, DatasetVersion, ModelArtifact, ModelKind, ModelStatus, ModelVersion,
    TrainingRun, User,
)


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


# The runtime each format is scored on (app.core.runtimes): the one a device would use.
RUNTIMES = {
    ArtifactFormat.TORCH: "PyTorch", ArtifactFormat.ONNX: "ONNX Runtime",
    ArtifactFormat.ONNX_INT8: "ONNX Runtime", ArtifactFormat.OPENVINO: "OpenVINO",
    ArtifactFormat.OPENVINO_INT8: "OpenVINO", ArtifactFormat.RELEASE: "ONNX Runtime",
}
INT8_FORMATS = (ArtifactFormat.ONNX_INT8, ArtifactFormat.OPENVINO_INT8)
# The version's own FP32 reference for accuracy deltas: the trained network itself, else its
# plain ONNX export (the same weights).
REFERENCE_FORMATS = (ArtifactFormat.TORCH, ArtifactFormat.ONNX, ArtifactFormat.OPENVINO)
# Best first for "which format to look at": what a release ships, then what it is made from.
PREFERRED_FORMATS = (ArtifactFormat.ONNX_INT8, ArtifactFormat.ONNX, ArtifactFormat.OPENVINO_INT8,
                     ArtifactFormat.OPENVINO, ArtifactFormat.TORCH, ArtifactFormat.RELEASE)


@dataclass(frozen=True)
class ClassMetrics:
    """Precision and recall of one class as stored; ``support``: its test images."""

    precision: float
    recall: float
    support: int


@dataclass(frozen=True)
class FormatMetrics:
    """One artifact of a version and what its stored evaluation says.

    ``evaluated`` is False when the evaluation service never scored it (then only the size
    is known). ``confusion[i][j]`` counts test images of class ``labels[i]`` predicted as
    ``labels[j]``. ``accuracy_delta`` is this format's accuracy minus the version's FP32
    reference (None for the reference itself, or when either was not scored).
    """

    format: ArtifactFormat
    precision: str  # "FP32", "INT8", or "as released" (a release carries either)
    runtime: str
    size: int
    sha256: str
    stored: dict[str, Any]  # the artifact's metrics JSON, as the evaluation service wrote it
    accuracy_delta: float | None = None
    is_reference: bool = False

    @property
    def evaluated(self) -> bool:
        return "loads" in self.stored

    @property
    def loads(self) -> bool:
        return bool(self.stored.get("loads", False))

    @property
    def error(self) -> str | None:
        return self.stored.get("error")

    @property
    def accuracy(self) -> float | None:
        return _number(self.stored.get("accuracy"))

    @property
    def count(self) -> int | None:
        value = self.stored.get("count")
        return int(value) if isinstance(value, int) else None

    @property
    def latency_p50_ms(self) -> float | None:
        return _number(self.stored.get("latency_p50_ms"))

    @property
    def latency_p99_ms(self) -> float | None:
        return _number(self.stored.get("latency_p99_ms"))

    @property
    def dataset(self) -> str | None:
        """The dataset version whose test split it was scored on."""
        return self.stored.get("dataset")

    @property
    def labels(self) -> list[str]:
        return [str(name) for name in self.stored.get("labels", [])]

    @property
    def confusion(self) -> list[list[int]]:
        return [[int(n) for n in row] for row in self.stored.get("confusion", [])]

    @property
    def per_class(self) -> dict[str, ClassMetrics]:
        return {name: ClassMetrics(float(c["precision"]), float(c["recall"]), int(c["support"]))
                for name, c in self.stored.get("per_class", {}).items()}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value == value else None


@dataclass(frozen=True)
class ModelDetails:
    """Everything shown about one version: lineage, stored scores per format, gate verdict."""

    version: str
    kind: ModelKind
    status: ModelStatus
    parent: str | None
    training_run: int | None
    dataset: str | None  # the dataset version it was trained on ("inspection@2")
    labels: list[str]
    input_spec: dict[str, Any]
    metrics: dict[str, Any]  # the version's own metrics, without the evaluation summary
    formats: tuple[FormatMetrics, ...]
    gate_verdict: dict[str, Any] | None
    created_at: datetime
    approved_at: datetime | None
    approved_by: str | None

    @property
    def test_accuracy(self) -> float | None:
        return _accuracy(self.metrics)

    @property
    def gate_reasons(self) -> list[str]:
        """Why the gate failed this version (empty when it passed or never ran)."""
        return list((self.gate_verdict or {}).get("reasons", []))

    def format(self, format: ArtifactFormat) -> FormatMetrics | None:
        return next((f for f in self.formats if f.format is format), None)

    @property
    def scored_formats(self) -> list[FormatMetrics]:
        """Formats with a stored score, best to look at first (:data:`PREFERRED_FORMATS`)."""
        scored = {f.format: f for f in self.formats if f.accuracy is not None}
        return [scored[f] for f in PREFERRED_FORMATS if f in scored]


def model_details(db: Database, version: str) -> ModelDetails:
    """One version's :class:`ModelDetails`; an unknown name is refused with where to look."""
    with db.read() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
        if row is None:  # model_store.find_model's words, without importing torch with it
            raise InvalidInput(f"no model version {version!r} in this project; "
                               "`edgeloop models list` shows them")
        return _details(session, [row])[0]


def all_model_details(db: Database, kind: ModelKind | None = None) -> list[ModelDetails]:
    """:class:`ModelDetails` of every version (of ``kind``), newest first."""
    query = (select(ModelVersion).options(selectinload(ModelVersion.artifacts))
             .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()))
    if kind is not None:
        query = query.where(ModelVersion.kind == kind)
    with db.read() as session:
        return _details(session, list(session.scalars(query)))


def _details(session: Session, rows: list[ModelVersion]) -> list[ModelDetails]:
    # A few lookups for all rows at once, not a query per row.
    parent_ids = {r.parent_id for r in rows if r.parent_id is not None}
    names = dict(session.execute(select(ModelVersion.id, ModelVersion.version)
                                 .where(ModelVersion.id.in_(parent_ids))).all())
    run_ids = {r.training_run_id for r in rows if r.training_run_id is not None}
    datasets = {run_id: f"{dataset.dataset.name}@{dataset.number}" for run_id, dataset in
                session.execute(select(TrainingRun.id, DatasetVersion)
                                .join(DatasetVersion,
                                      DatasetVersion.id == TrainingRun.dataset_version_id)
                                .where(TrainingRun.id.in_(run_ids))).all()}
    approver_ids = {r.approved_by_id for r in rows if r.approved_by_id is not None}
    approvers = dict(session.execute(select(User.id, User.name)
                                     .where(User.id.in_(approver_ids))).all())
    return [ModelDetails(
        version=r.version, kind=r.kind, status=r.status,
        parent=names.get(r.parent_id) if r.parent_id is not None else None,
        training_run=r.training_run_id,
        dataset=datasets.get(r.training_run_id) if r.training_run_id is not None else None,
        labels=list(r.labels or []), input_spec=dict(r.input_spec or {}),
        metrics={k: v for k, v in (r.metrics or {}).items() if k != "evaluation"},
        formats=_format_metrics(r.artifacts), gate_verdict=r.gate_verdict,
        created_at=r.created_at, approved_at=r.approved_at,
        approved_by=approvers.get(r.approved_by_id) if r.approved_by_id is not None else None,
    ) for r in rows]


def _format_metrics(artifacts: list[ModelArtifact]) -> tuple[FormatMetrics, ...]:
    plain = [FormatMetrics(a.format, _precision(a.format), RUNTIMES.get(a.format, "-"), a.size,
                           a.blob_sha256, dict(a.metrics or {})) for a in artifacts]
    by_format = {f.format: f for f in plain}
    reference = next((by_format[f] for f in REFERENCE_FORMATS
                      if f in by_format and by_format[f].accuracy is not None), None)
    if reference is None:
        return tuple(plain)
    base = reference.accuracy
    assert base is not None
    # A delta only against a score on the same test split: a different split is no reference.
    return tuple(FormatMetrics(
        f.format, f.precision, f.runtime, f.size, f.sha256, f.stored,
        accuracy_delta=(f.accuracy - base if f.accuracy is not None and f is not reference
                        and f.dataset == reference.dataset else None),
        is_reference=f is reference) for f in plain)


def _precision(format: ArtifactFormat) -> str:
    if format is ArtifactFormat.RELEASE:
        return "as released"
    return "INT8" if format in INT8_FORMATS else "FP32"
