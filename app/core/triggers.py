"""When the loop should run again: on request, on a schedule, on new labels, on drift, on new code.

:func:`due_trigger` looks at the project and says which trigger fires now, if any, in a fixed
order (a person's request first). The settings live in the project (``loop.triggers``) so
every workstation of a team sees the same; :func:`request_run` is the "retrain now" button.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.core.audit import AuditTrail
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models import (
    Annotation, DatasetVersion, DriftMeasurement, ModelKind, ModelStatus, ModelVersion,
    PipelineRun, ProjectSetting, TrainingRun, utcnow,
)
from app.core.project_settings import get_setting, put_setting
from app.core.roles import Actor, Permission, authorize

Clock = Callable[[], datetime]
SETTINGS_KEY = "loop.triggers"
REQUEST_KEY = "loop.request"


@dataclass(frozen=True)
class TriggerSettings:
    """Which triggers are on. ``None`` switches a numeric trigger off."""

    schedule_hours: float | None = None
    min_new_labels: int | None = 200
    on_drift_alert: bool = True
    on_code_change: bool = False  # off by default: every EdgeLoop upgrade would retrain
    auto_approve: bool = False

    def __post_init__(self) -> None:
        if self.schedule_hours is not None and self.schedule_hours <= 0:
            raise InvalidInput(f"schedule_hours must be above 0, not {self.schedule_hours}")
        if self.min_new_labels is not None and self.min_new_labels < 1:
            raise InvalidInput(f"min_new_labels must be at least 1, not {self.min_new_labels}")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TriggerSettings:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"unknown loop trigger settings {sorted(unknown)}; known: "
                               f"{sorted(known)}")
        return cls(**data)


@dataclass(frozen=True)
class Trigger:
    """A reason to run the loop now."""

    name: str
    reason: str


def load_settings(db: Database) -> TriggerSettings:
    with db.read() as session:
        return TriggerSettings.from_json(dict(get_setting(session, SETTINGS_KEY, {})))


def save_settings(db: Database, audit: AuditTrail, actor: Actor, settings: TriggerSettings) -> None:
    authorize(db, audit, actor, Permission.TRAIN, "change the loop's triggers")
    with db.write() as session:
        put_setting(session, audit, actor.name, SETTINGS_KEY, asdict(settings))


def request_run(db: Database, audit: AuditTrail, actor: Actor, reason: str = "",
                clock: Clock = utcnow) -> None:
    """Ask for a run at the next check (what "retrain now" does)."""
    authorize(db, audit, actor, Permission.TRAIN, "request a loop run")
    value = {"by": actor.name, "reason": reason[:500], "at": clock().isoformat()}
    with db.write() as session:
        put_setting(session, audit, actor.name, REQUEST_KEY, value)


def clear_request(db: Database) -> None:
    with db.write() as session:
        row = session.get(ProjectSetting, REQUEST_KEY)
        if row is not None:
            session.delete(row)


def due_trigger(db: Database, settings: TriggerSettings, *, code_version: str,
                now: datetime) -> Trigger | None:
    """The first trigger that fires now, or None."""
    with db.read() as session:
        request = session.get(ProjectSetting, REQUEST_KEY)
        if request is not None:
            value = request.value or {}
            return Trigger("request", f"requested by {value.get('by')}: {value.get('reason', '')}")
        last = session.scalar(select(func.max(PipelineRun.created_at)))
        if settings.schedule_hours is not None:
            if last is None or now - last >= timedelta(hours=settings.schedule_hours):
                return Trigger("schedule", f"every {settings.schedule_hours:g} h")
        if settings.min_new_labels is not None:
            new = labels_since_last_freeze(session)
            if new >= settings.min_new_labels:
                return Trigger("labels", f"{new} new reviewed labels "
                                         f"(threshold {settings.min_new_labels})")
        if settings.on_drift_alert:
            alert = session.scalar(select(DriftMeasurement).where(
                DriftMeasurement.alert.is_(True),
                DriftMeasurement.measured_at > (last or datetime.min.replace(tzinfo=now.tzinfo)))
                .order_by(DriftMeasurement.measured_at.desc()).limit(1))
            if alert is not None:
                return Trigger("drift", f"{alert.metric} = {alert.value:.3f} over "
                                        f"{alert.threshold:g} ({alert.baseline})")
        if settings.on_code_change:
            trained_with = _deployed_code_version(session)
            if trained_with is not None and trained_with != code_version:
                return Trigger("code", f"the deployed model was trained by {trained_with}, "
                                       f"this is {code_version}")
    return None


def labels_since_last_freeze(session: Any) -> int:
    """Current labels made after the newest dataset version was frozen (all, if none was)."""
    frozen = session.scalar(select(func.max(DatasetVersion.frozen_at)))
    query = select(func.count(Annotation.id)).where(Annotation.superseded.is_(False),
                                                    Annotation.class_id.is_not(None))
    if frozen is not None:
        query = query.where(Annotation.created_at > frozen)
    return session.scalar(query) or 0


def _deployed_code_version(session: Any) -> str | None:
    return session.scalar(
        select(TrainingRun.code_version).join(ModelVersion,
                                              ModelVersion.training_run_id == TrainingRun.id)
        .where(ModelVersion.kind == ModelKind.EDGE, ModelVersion.status == ModelStatus.DEPLOYED)
        .order_by(ModelVersion.created_at.desc()).limit(1))
