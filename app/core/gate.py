"""The validation gate: may this candidate replace the model the fleet runs?

A candidate passes only when, on the same frozen test split:

- every one of its artifacts loads in its runtime;
- it has an ONNX model to ship (the release's ONNX Runtime artifact);
- each format it would ship (ONNX Runtime: INT8 if made, else FP32; OpenVINO likewise) is no
  less accurate than the baseline, beyond ``accuracy_tolerance``;
- each class's recall is no lower than the baseline's beyond ``recall_tolerance`` (a better
  average must not hide a defect class it stopped finding);
- the shipped formats meet the latency (p50, one frame, preprocessing included) and size
  budgets, when set.

The baseline is the deployed model of the same kind (or one named), scored on the same split
through what it ships. Without one, only the budgets and the loading checks apply, and the
verdict says so. The verdict (every check, with numbers, and the reasons for a failure) is
stored on the version with its status (``gate_passed`` or ``gate_failed``) and audited.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.evaluate_service import FormatResult, ModelEvaluation, evaluate_model
from app.core.model_store import FROZEN_STATUSES, deployed_model, find_model
from app.core.models import ArtifactFormat, ModelStatus
from app.core.progress import CancelToken, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize

# What a release carries for each device runtime, best first.
SHIPPED = {"onnxruntime": (ArtifactFormat.ONNX_INT8, ArtifactFormat.ONNX),
           "openvino": (ArtifactFormat.OPENVINO_INT8, ArtifactFormat.OPENVINO)}
# How the baseline is run: what it ships if it was released, else its best local format.
BASELINE_FORMATS = (ArtifactFormat.RELEASE, ArtifactFormat.ONNX_INT8, ArtifactFormat.ONNX,
                    ArtifactFormat.TORCH)


@dataclass(frozen=True)
class GateBudget:
    """How much worse than the baseline a candidate may be, and its absolute budgets."""

    accuracy_tolerance: float = 0.0
    recall_tolerance: float = 0.02
    max_latency_ms: float | None = None
    max_size_bytes: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.accuracy_tolerance <= 1 or not 0 <= self.recall_tolerance <= 1:
            raise InvalidInput("gate tolerances are shares from 0 to 1 (0.02 = 2 points)")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise InvalidInput("the latency budget must be a positive number of milliseconds")
        if self.max_size_bytes is not None and self.max_size_bytes <= 0:
            raise InvalidInput("the size budget must be a positive number of bytes")


@dataclass(frozen=True)
class Check:
    """One comparison the gate made."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateVerdict:
    """The gate's decision, every check behind it, and the reasons when it failed."""

    version: str
    passed: bool
    dataset: str
    baseline: str | None
    budget: GateBudget
    checks: list[Check] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [c.detail for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "dataset": self.dataset, "baseline": self.baseline,
                "budget": asdict(self.budget), "reasons": self.reasons,
                "checks": [asdict(c) for c in self.checks]}


def run_gate(
    db: Database,
    blobs: BlobStore,
    audit: AuditTrail,
    actor: Actor,
    version: str,
    budget: GateBudget = GateBudget(),
    *,
    baseline: str | None = None,
    latency_repeats: int = 200,
    threads: int = 1,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> GateVerdict:
    """Evaluate ``version`` and its baseline on the same test split and decide; stored."""
    authorize(db, audit, actor, Permission.TRAIN, f"run the gate on model {version}")
    with db.read() as session:
        row = find_model(session, version)
        if row.status in FROZEN_STATUSES:
            raise InvalidInput(f"model {version} is {row.status.value} already; the gate is "
                               "for candidates")
        kind = row.kind
        base_row = (find_model(session, baseline) if baseline is not None
                    else deployed_model(session, kind))
        if base_row is not None and base_row.id == row.id:
            raise InvalidInput(f"model {version} cannot be its own baseline")
        base_name = None if base_row is None else base_row.version
        base_format = None if base_row is None else next(
            (f for f in BASELINE_FORMATS if any(a.format is f for a in base_row.artifacts)), None)
    if base_row is not None and base_format is None:
        raise InvalidInput(f"baseline {base_name} has no artifact that can be run")
    candidate = evaluate_model(db, blobs, audit, actor, version, latency_repeats=latency_repeats,
                               threads=threads, progress=progress, cancel=cancel)
    base = None
    if base_name is not None and base_format is not None:
        base = evaluate_model(db, blobs, audit, actor, base_name, dataset=candidate.dataset,
                              formats=(base_format,), latency_repeats=latency_repeats,
                              threads=threads, progress=progress, cancel=cancel)
    verdict = decide(candidate, base, budget)
    _store(db, audit, actor, verdict)
    return verdict


def decide(candidate: ModelEvaluation, baseline: ModelEvaluation | None,
           budget: GateBudget) -> GateVerdict:
    """The verdict on ``candidate`` against ``baseline`` (None: no deployed model)."""
    checks = [Check(f"loads:{fmt.value}", result.loads,
                    f"{fmt.value} loads" if result.loads
                    else f"{candidate.version} {fmt.value} does not load: {result.error}")
              for fmt, result in candidate.results.items()]
    shipped = {runtime: next((candidate.results[f] for f in formats
                              if f in candidate.results and candidate.results[f].loads), None)
               for runtime, formats in SHIPPED.items()}
    if shipped["onnxruntime"] is None:
        checks.append(Check("ships:onnx", False, f"{candidate.version} has no loadable ONNX "
                            f"model to ship; run `edgeloop compress {candidate.version}`"))
    base_result = None
    if baseline is not None:
        base_result = next(iter(baseline.results.values()))
        if not base_result.loads:
            checks.append(Check("baseline", False, f"baseline {baseline.version} could not "
                                f"be scored: {base_result.error}"))
            base_result = None
    else:
        checks.append(Check("baseline", True, "no deployed model to compare with: only the "
                            "budgets and loading were checked"))
    for result in (r for r in shipped.values() if r is not None):
        if base_result is not None and baseline is not None:
            checks += _compare(candidate.version, result, baseline.version, base_result, budget)
        checks += _budgets(candidate.version, result, budget)
    passed = all(c.passed for c in checks)
    return GateVerdict(candidate.version, passed, candidate.dataset,
                       None if baseline is None else baseline.version, budget, checks)


def _compare(name: str, result: FormatResult, base_name: str, base: FormatResult,
             budget: GateBudget) -> list[Check]:
    assert result.report is not None and base.report is not None
    fmt = result.format.value
    ours, theirs = result.report.accuracy, base.report.accuracy
    checks = [Check(f"accuracy:{fmt}", ours >= theirs - budget.accuracy_tolerance - 1e-9,
                    f"{name} {fmt} accuracy {ours:.3f} vs {theirs:.3f} for {base_name} "
                    f"(tolerance {budget.accuracy_tolerance:.3f})")]
    for label, score in result.report.per_class.items():
        other = base.report.per_class.get(label)
        if other is None or score.support == 0:
            continue
        checks.append(Check(
            f"recall:{fmt}:{label}", score.recall >= other.recall - budget.recall_tolerance - 1e-9,
            f"{name} {fmt} recall of {label} {score.recall:.3f} vs {other.recall:.3f} for "
            f"{base_name} (tolerance {budget.recall_tolerance:.3f}, {score.support} images)"))
    return checks


def _budgets(name: str, result: FormatResult, budget: GateBudget) -> list[Check]:
    fmt = result.format.value
    checks = []
    if budget.max_latency_ms is not None and result.latency is not None:
        p50 = result.latency.p50_ms
        checks.append(Check(f"latency:{fmt}", p50 <= budget.max_latency_ms,
                            f"{name} {fmt} p50 latency {p50:.2f} ms (budget "
                            f"{budget.max_latency_ms:g} ms)"))
    if budget.max_size_bytes is not None:
        checks.append(Check(f"size:{fmt}", result.size <= budget.max_size_bytes,
                            f"{name} {fmt} is {result.size:,} bytes (budget "
                            f"{budget.max_size_bytes:,} bytes)"))
    return checks


def _store(db: Database, audit: AuditTrail, actor: Actor, verdict: GateVerdict) -> None:
    with db.write() as session:
        row = find_model(session, verdict.version)
        before = row.status.value
        row.gate_verdict = verdict.to_json()
        row.status = ModelStatus.GATE_PASSED if verdict.passed else ModelStatus.GATE_FAILED
        audit.append(session, actor=actor.name, action="model.gate",
                     object_type="model_version", object_id=verdict.version,
                     before={"status": before},
                     after={"status": row.status.value, "baseline": verdict.baseline,
                            "dataset": verdict.dataset, "reasons": verdict.reasons})
