"""The audit report's content: the lineage of every model version and the events of a period.

:func:`build_audit_report` reads the project once and returns plain frozen values (no session,
no ORM rows), so any renderer (the PDF in :mod:`app.core.audit_pdf`, a test) can use them on
any thread. The lineage answers "which data trained which model, who approved it, and where
did it go": per model version its dataset version and split sizes, its training run, its gate
verdict, its approvals and its deployments per device. The events are the audit trail's
events in ``[since, until)``, with a one-line summary of what changed.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.audit import AuditTrail
from app.core.db import Database
from app.core.models import (
    AuditEvent, Dataset, DatasetSample, DatasetVersion, Deployment, Device, ModelVersion,
    Split, TrainingRun, User,
)

Clock = Callable[[], datetime]
APPROVE_ACTION = "model.approve"
# The hyper-parameters an auditor asks about, in the order they are listed.
KEY_HYPERPARAMETERS = ("arch", "width", "size", "epochs", "batch_size", "lr", "weight_decay",
                       "patience", "seed")
DETAILS_LIMIT = 200  # characters of an event's summary; the CSV/JSON export has it whole


@dataclass(frozen=True)
class DatasetLineage:
    """The frozen dataset version a model was trained on, and how many samples each split has."""

    ref: str
    frozen_at: datetime | None
    content_hash: str | None
    split_sizes: tuple[tuple[str, int], ...]  # ("train", 840), ("val", 180), ("test", 180)


@dataclass(frozen=True)
class TrainingLineage:
    """The run that produced a model: who started it, when, how, and from which parent."""

    run_id: int
    status: str
    started_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    hyperparameters: tuple[tuple[str, str], ...]
    parent_model: str | None  # the version it was fine-tuned from
    device: str
    code_version: str


@dataclass(frozen=True)
class Approval:
    """One approval of a model version."""

    by: str
    at: datetime
    note: str


@dataclass(frozen=True)
class DeploymentLine:
    """One device's part of a rollout: its state and when it last changed."""

    rollout_id: int | None
    device_uid: str
    state: str
    at: datetime
    detail: str


@dataclass(frozen=True)
class ModelLineage:
    """Everything the report says about one model version."""

    version: str
    kind: str
    status: str
    created_at: datetime
    test_accuracy: float | None
    gate: str  # the verdict in one sentence
    dataset: DatasetLineage | None
    training: TrainingLineage | None
    approvals: tuple[Approval, ...]
    deployments: tuple[DeploymentLine, ...]


@dataclass(frozen=True)
class ReportEvent:
    """An audit event as the report lists it."""

    seq: int
    at: datetime
    actor: str
    action: str
    object: str
    details: str


@dataclass(frozen=True)
class AuditReportDocument:
    """The whole report: what, for whom, when, the chain's integrity, lineage and events.

    It carries the outcome of the chain check (:class:`app.core.audit.AuditReport`) as
    ``chain_intact`` and ``chain_problems``.
    """

    project_name: str
    prepared_by: str
    generated_at: datetime
    since: datetime | None
    until: datetime | None  # exclusive
    chain_events: int
    chain_intact: bool
    chain_problems: tuple[str, ...]
    lineage: tuple[ModelLineage, ...]
    events: tuple[ReportEvent, ...]


def build_audit_report(db: Database, audit: AuditTrail, since: datetime | None,
                       until: datetime | None, clock: Clock, *, project_name: str,
                       prepared_by: str = "") -> AuditReportDocument:
    """Read the lineage of every model version and the events in ``[since, until)``."""
    generated_at = clock()
    with db.read() as session:
        check = audit.verify(session)
        lineage = _lineage(session, audit)
        events = tuple(report_event(e) for e in audit.events(session, since=since, until=until))
    return AuditReportDocument(
        project_name=project_name, prepared_by=prepared_by, generated_at=generated_at,
        since=since, until=until, chain_events=check.events, chain_intact=check.ok,
        chain_problems=tuple(p.message for p in check.problems), lineage=lineage,
        events=events)


def report_event(event: AuditEvent) -> ReportEvent:
    """An audit event with its before/after summarised on one line."""
    return ReportEvent(event.seq, event.at, event.actor, event.action,
                       f"{event.object_type} {event.object_id}",
                       summarize_change(event.before, event.after))


def summarize_change(before: dict[str, Any] | None, after: dict[str, Any] | None,
                     limit: int = DETAILS_LIMIT) -> str:
    """``key: old -> new`` for changed keys, ``key=value`` for the rest, cut at ``limit``."""
    before, after = before or {}, after or {}
    parts = []
    for key, value in after.items():
        if key in before and before[key] != value:
            parts.append(f"{key}: {_short(before[key])} -> {_short(value)}")
        else:
            parts.append(f"{key}={_short(value)}")
    parts += [f"{key}: was {_short(value)}" for key, value in before.items() if key not in after]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def _lineage(session: Session, audit: AuditTrail) -> tuple[ModelLineage, ...]:
    models = list(session.scalars(select(ModelVersion)
                                  .order_by(ModelVersion.created_at, ModelVersion.id)))
    users = dict(session.execute(select(User.id, User.name)).all())
    names = {m.id: m.version for m in models}
    runs = {r.id: r for r in session.scalars(select(TrainingRun))}
    datasets = _datasets(session)
    approvals = _approvals(session, audit)
    deployments = _deployments(session)
    lines = []
    for model in models:
        run = runs.get(model.training_run_id) if model.training_run_id else None
        recorded = approvals.get(model.version, [])
        if not recorded and model.approved_at is not None:
            # Registered as an already approved release (``edgeloop releases add``): the
            # approval is the row's, with no separate approval event to quote.
            recorded = [Approval(users.get(model.approved_by_id, "unknown"), model.approved_at,
                                 "registered as a signed release")]
        lines.append(ModelLineage(
            version=model.version, kind=model.kind.value, status=model.status.value,
            created_at=model.created_at, test_accuracy=_accuracy(model.metrics),
            gate=gate_sentence(model.gate_verdict),
            dataset=datasets.get(run.dataset_version_id) if run else None,
            training=_training(run, users, names) if run else None,
            approvals=tuple(recorded), deployments=tuple(deployments.get(model.id, []))))
    return tuple(lines)


def _datasets(session: Session) -> dict[int, DatasetLineage]:
    sizes: dict[int, dict[str, int]] = defaultdict(dict)
    for version_id, split, count in session.execute(
            select(DatasetSample.version_id, DatasetSample.split, func.count())
            .group_by(DatasetSample.version_id, DatasetSample.split)):
        sizes[version_id][split.value] = count
    found = {}
    for version, name in session.execute(
            select(DatasetVersion, Dataset.name).join(Dataset,
                                                      Dataset.id == DatasetVersion.dataset_id)):
        found[version.id] = DatasetLineage(
            ref=f"{name}@{version.number}", frozen_at=version.frozen_at,
            content_hash=version.content_hash,
            split_sizes=tuple((s.value, sizes[version.id].get(s.value, 0)) for s in Split))
    return found


def _training(run: TrainingRun, users: dict[int, str], names: dict[int, str]) -> TrainingLineage:
    return TrainingLineage(
        run_id=run.id, status=run.status.value,
        started_by=users.get(run.started_by_id) if run.started_by_id else None,
        started_at=run.started_at, finished_at=run.finished_at,
        hyperparameters=key_hyperparameters(run.hyperparameters or {}),
        parent_model=names.get(run.parent_model_id) if run.parent_model_id else None,
        device=run.device, code_version=run.code_version)


def key_hyperparameters(values: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The settings worth a line in a report, with augmentation as its non-zero strengths."""
    picked = [(key, _short(values[key])) for key in KEY_HYPERPARAMETERS if key in values]
    augment = values.get("augment")
    if isinstance(augment, dict):
        on = [f"{k} {v:g}" for k, v in augment.items() if isinstance(v, (int, float)) and v]
        picked.append(("augment", ", ".join(on) or "none"))
    return tuple(picked)


def _approvals(session: Session, audit: AuditTrail) -> dict[str, list[Approval]]:
    found: dict[str, list[Approval]] = defaultdict(list)
    for event in audit.events(session, action=APPROVE_ACTION):
        note = str((event.after or {}).get("note", ""))
        found[event.object_id].append(Approval(event.actor, event.at, note))
    return found


def _deployments(session: Session) -> dict[int, list[DeploymentLine]]:
    found: dict[int, list[DeploymentLine]] = defaultdict(list)
    for deployment, uid in session.execute(
            select(Deployment, Device.uid).join(Device, Device.id == Deployment.device_id)
            .order_by(Deployment.created_at, Deployment.id)):
        when = deployment.finished_at or deployment.started_at or deployment.created_at
        found[deployment.model_id].append(DeploymentLine(
            deployment.rollout_id, uid, deployment.state.value, when, deployment.detail))
    return found


def gate_sentence(verdict: dict[str, Any] | None) -> str:
    """A stored gate verdict in one sentence, with the reasons when it failed."""
    if verdict is None:
        return "not run"
    against = verdict.get("baseline") or "no baseline (loading and budget checks only)"
    if verdict.get("passed"):
        return f"passed on {verdict.get('dataset')} against {against}"
    reasons = "; ".join(verdict.get("reasons") or []) or "no reason recorded"
    return f"FAILED on {verdict.get('dataset')} against {against}: {reasons}"


def _accuracy(metrics: dict[str, Any] | None) -> float | None:
    value = (metrics or {}).get("test_accuracy")
    return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else None
