"""Read-only views of the fleet for display: the device table, quarantined captures, rollouts.

The CLI prints them and the GUI can show them; nothing here writes or connects to a device.
Each view is a frozen dataclass built in one read transaction, so a caller never holds a
session or a live row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.captures import counts_by_device_and_class
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models.devices import GENERATOR_HARDWARE
from app.core.models import (
    AuditEvent, Deployment, DeploymentState, Device, DeviceHealth, EnrollmentState,
    ModelVersion, QuarantinedCapture, Rollout, RolloutState, User,
)
from app.fleet.context import find_device
from app.fleet.deploy import rollout_model_version, stage_count


@dataclass(frozen=True)
class DeviceRow:
    """One device as the device table shows it."""

    uid: str
    name: str
    enrollment: EnrollmentState
    health: DeviceHealth
    address: str | None
    port: int | None
    model_version: str | None
    agent_version: str | None
    last_seen: datetime | None
    captures: int
    quarantined: int
    install_version: str | None = None  # the release of the device's latest deployment
    install_state: DeploymentState | None = None  # and where that deployment stands
    generated: bool = False  # not a device: the source of captures the generator made

    @property
    def enrollment_text(self) -> str:
        return "generated data" if self.generated else self.enrollment.value

    @property
    def health_text(self) -> str:
        return "-" if self.generated else self.health.value

    @property
    def install_status(self) -> str | None:
        """The latest deployment in words ("edge-3 healthy", "edge-4 rolled back"); None if
        no release was ever deployed to the device."""
        if self.install_version is None or self.install_state is None:
            return None
        return f"{self.install_version} {self.install_state.value.replace('_', ' ')}"


@dataclass(frozen=True)
class QuarantineRow:
    """A capture a pull refused, and why."""

    uid: str
    capture_id: str
    reason: str
    size: int
    quarantined_at: datetime
    held_on_device: bool


@dataclass(frozen=True)
class DeploymentRow:
    """One device's part of a rollout."""

    uid: str
    stage: int
    state: DeploymentState
    detail: str
    error: str | None


@dataclass(frozen=True)
class RolloutView:
    """A rollout, its stages and every device's deployment in it."""

    id: int
    version: str
    state: RolloutState
    current_stage: int
    stage_count: int
    started_by: str | None
    created_at: datetime
    finished_at: datetime | None
    halt_reason: str | None
    deployments: tuple[DeploymentRow, ...]

    @property
    def stage_shown(self) -> int:
        """The stage in progress (or the one that halted, or the last one), counted from 1."""
        return min(self.current_stage + 1, self.stage_count)


def device_rows(db: Database) -> list[DeviceRow]:
    """Every device the project knows, by uid, with its capture and quarantine counts."""
    with db.read() as session:
        captures: Counter[int] = Counter()
        for (device_id, _class), count in counts_by_device_and_class(session).items():
            captures[device_id] += count
        quarantined = dict(session.execute(
            select(QuarantinedCapture.device_id, func.count())
            .group_by(QuarantinedCapture.device_id)).all())
        installs = _latest_deployments(session)
        return [DeviceRow(d.uid, d.name, d.enrollment, d.health, d.address, d.ssh_port,
                          d.model_version, d.agent_version, d.last_seen,
                          captures[d.id], quarantined.get(d.id, 0),
                          *installs.get(d.id, (None, None)),
                          generated=d.hardware == GENERATOR_HARDWARE)
                for d in session.scalars(select(Device).order_by(Device.uid))]


def _latest_deployments(session: Session) -> dict[int, tuple[str, DeploymentState]]:
    """Each device's newest deployment (highest id: ids grow as rollouts plan them):
    device id -> (model version, state)."""
    newest = (select(func.max(Deployment.id).label("id"))
              .group_by(Deployment.device_id).subquery())
    rows = session.execute(
        select(Deployment.device_id, ModelVersion.version, Deployment.state)
        .join(newest, newest.c.id == Deployment.id)
        .join(ModelVersion, ModelVersion.id == Deployment.model_id)).all()
    return {device_id: (version, state) for device_id, version, state in rows}


def quarantined_captures(db: Database, uid: str | None = None) -> list[QuarantineRow]:
    """Quarantined captures of one device (or all), newest first."""
    with db.read() as session:
        query = (select(QuarantinedCapture, Device.uid)
                 .join(Device, Device.id == QuarantinedCapture.device_id)
                 .order_by(QuarantinedCapture.quarantined_at.desc(), QuarantinedCapture.id.desc()))
        if uid is not None:
            query = query.where(QuarantinedCapture.device_id == find_device(session, uid).id)
        return [QuarantineRow(device_uid, q.device_capture_id, q.reason, q.size,
                              q.quarantined_at, q.held_on_device)
                for q, device_uid in session.execute(query).all()]


def rollout_view(db: Database, rollout_id: int | None = None) -> RolloutView:
    """One rollout (the newest when ``rollout_id`` is None), or an error saying what exists."""
    with db.read() as session:
        if rollout_id is None:
            rollout = session.scalar(select(Rollout).order_by(Rollout.id.desc()).limit(1))
            if rollout is None:
                raise InvalidInput("no rollouts yet; start one with `edgeloop deploy VERSION`")
        else:
            rollout = session.get(Rollout, rollout_id)
            if rollout is None:
                raise InvalidInput(f"no rollout {rollout_id}; `edgeloop rollout list` "
                                   "lists them")
        return _view(session, rollout)


def recent_rollouts(db: Database, limit: int = 20) -> list[RolloutView]:
    """The newest ``limit`` rollouts, newest first."""
    with db.read() as session:
        rollouts = session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(limit))
        return [_view(session, rollout) for rollout in rollouts]


def running_rollouts(db: Database) -> list[int]:
    """The ids of the rollouts still running, oldest first."""
    with db.read() as session:
        return list(session.scalars(select(Rollout.id).where(
            Rollout.state == RolloutState.RUNNING).order_by(Rollout.id)))


def _view(session: Session, rollout: Rollout) -> RolloutView:
    starter = session.get(User, rollout.started_by_id) if rollout.started_by_id else None
    rows = session.execute(
        select(Deployment, Device.uid).join(Device, Device.id == Deployment.device_id)
        .where(Deployment.rollout_id == rollout.id)
        .order_by(Deployment.stage, Device.uid)).all()
    deployments = tuple(DeploymentRow(uid, d.stage, d.state, d.detail, d.error)
                        for d, uid in rows)
    return RolloutView(rollout.id, rollout_model_version(session, rollout), rollout.state,
                       rollout.current_stage, stage_count(rollout),
                       starter.name if starter else None, rollout.created_at,
                       rollout.finished_at, _halt_reason(session, rollout), deployments)


def _halt_reason(session: Session, rollout: Rollout) -> str | None:
    if rollout.state is not RolloutState.HALTED:
        return None
    after = session.scalar(
        select(AuditEvent.after).where(AuditEvent.action == "rollout.halt",
                                       AuditEvent.object_type == "rollout",
                                       AuditEvent.object_id == str(rollout.id))
        .order_by(AuditEvent.seq.desc()).limit(1))
    return (after or {}).get("reason")
