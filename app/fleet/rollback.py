"""Rolling a rollout back by hand: every device it updated goes back to its previous release.

:func:`roll_back_rollout` halts the rollout if it still runs, waits for the devices in flight
to finish their step, then, for each device the release reached, asks the agent to switch
back (``ctl rollback``: the agent self-tests its previous release before switching) and
watches the device report that release healthy for the rollout's health window. Each device's
deployment ends ROLLED_BACK, or FAILED with the reason (an offline device, a device with no
previous release); the rollout ends ROLLED_BACK when every device went back, and stays
HALTED otherwise, so the roll back can be run again once the devices answer. Every step is
audited.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select

from app.core.errors import InvalidInput
from app.core.models import (
    Deployment, DeploymentState, Device, ModelStatus, ModelVersion, RolloutState,
)
from app.core.progress import Cancelled, CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize
from app.fleet.context import FleetContext, enrolled_address, find_device
from app.fleet.deploy import (
    Sleep, UnhealthyDevice, find_rollout, record_halt, rollout_bounds, rollout_model_version,
    wait_healthy,
)
from app.fleet.errors import DeviceUnreachable, FleetError, reason
from app.fleet.rollout_plan import HealthBounds
from app.fleet.ssh import DeviceConnection

IN_FLIGHT = (DeploymentState.UPLOADING, DeploymentState.ACTIVATING)
# Deployments that may have left the release active on the device (a failed one may have
# failed after activation, with the device's own switch back failing too).
REACHED = (DeploymentState.HEALTHY, *IN_FLIGHT, DeploymentState.FAILED)
# Beyond the health timeout, how long the devices in flight may take to finish their step.
SETTLE_SLACK_S = 60.0


@dataclass(frozen=True)
class RollbackOutcome:
    """How one device's roll back ended: ``running`` is the version it runs afterwards, when
    known; ``changed`` is False when there was nothing to do."""

    uid: str
    state: DeploymentState
    detail: str
    running: str | None = None
    changed: bool = True


@dataclass(frozen=True)
class RollbackResult:
    """The rollout's state afterwards and each device's outcome."""

    rollout_id: int
    version: str
    state: RolloutState
    outcomes: tuple[RollbackOutcome, ...]

    @property
    def failed(self) -> list[RollbackOutcome]:
        return [o for o in self.outcomes if o.changed and o.state is DeploymentState.FAILED]


def roll_back_rollout(ctx: FleetContext, actor: Actor, rollout_id: int, reason_text: str, *,
                      concurrency: int = 4, progress: ProgressFn = no_progress,
                      cancel: CancelToken | None = None,
                      sleep: Sleep = time.sleep) -> RollbackResult:
    """Halt ``rollout_id`` and put every device it updated back on its previous release."""
    authorize(ctx.db, ctx.audit, actor, Permission.DEPLOY, f"roll back rollout {rollout_id}")
    cancel = cancel or CancelToken()
    why = reason_text.strip() or "rolled back by hand"
    with ctx.db.write() as session:
        rollout = find_rollout(session, rollout_id)
        if rollout.state is RolloutState.ROLLED_BACK:
            raise InvalidInput(f"rollout {rollout_id} is rolled back already")
        if rollout.state is RolloutState.RUNNING:
            record_halt(ctx, session, rollout, actor.name, f"rolling back: {why}")
        version = rollout_model_version(session, rollout)
        bounds = rollout_bounds(rollout)
        ctx.audit.append(session, actor=actor.name, action="rollout.rollback_start",
                         object_type="rollout", object_id=rollout_id,
                         after={"version": version, "reason": why[:2000]})
    _wait_for_devices_in_flight(ctx, rollout_id, bounds, progress, cancel)
    with ctx.db.read() as session:
        targets = _reached(session, rollout_id)
    progress(Progress("rollback", 0, len(targets),
                      f"rolling {len(targets)} device(s) back from {version}"))
    outcomes = _roll_back_many(ctx, actor, version, targets, bounds, concurrency, cancel, sleep)
    progress(Progress("rollback", len(targets), len(targets), "rolled back"))
    return _conclude(ctx, actor, rollout_id, version, why, outcomes)


def _wait_for_devices_in_flight(ctx: FleetContext, rollout_id: int, bounds: HealthBounds,
                                progress: ProgressFn, cancel: CancelToken) -> None:
    """A halt stops new stages, not the devices being updated: let them finish, so the roll
    back does not race their last steps. A deployment left in flight by a process that died
    would never finish: past the health timeout, go on and ask the device itself."""
    deadline = time.monotonic() + bounds.timeout_s + SETTLE_SLACK_S
    while time.monotonic() < deadline:
        cancel.check()
        with ctx.db.read() as session:
            busy = list(session.scalars(select(Deployment.id).where(
                Deployment.rollout_id == rollout_id, Deployment.state.in_(IN_FLIGHT))))
        if not busy:
            return
        progress(Progress("rollback", 0, 0, f"waiting for {len(busy)} device(s) in flight"))
        cancel.wait(min(1.0, bounds.poll_interval_s))


def _reached(session, rollout_id: int) -> list[tuple[int, str, DeploymentState]]:  # type: ignore[no-untyped-def]
    rows = session.execute(
        select(Deployment.id, Device.uid, Deployment.state)
        .join(Device, Device.id == Deployment.device_id)
        .where(Deployment.rollout_id == rollout_id, Deployment.state.in_(REACHED))
        .order_by(Deployment.stage, Device.uid)).all()
    return [(deployment_id, uid, state) for deployment_id, uid, state in rows]


def _roll_back_many(ctx: FleetContext, actor: Actor, version: str,
                    targets: Sequence[tuple[int, str, DeploymentState]], bounds: HealthBounds,
                    concurrency: int, cancel: CancelToken, sleep: Sleep) -> list[RollbackOutcome]:
    if not targets:
        return []
    lock = threading.Lock()  # one audit/DB writer at a time keeps SQLite writers short

    def one(target: tuple[int, str, DeploymentState]) -> RollbackOutcome:
        return roll_back_device(ctx, actor, version, *target, bounds, cancel, sleep, lock)

    with ThreadPoolExecutor(max_workers=max(1, concurrency),
                            thread_name_prefix="rollback") as pool:
        return list(pool.map(one, targets))


def roll_back_device(ctx: FleetContext, actor: Actor, version: str, deployment_id: int,
                     uid: str, prior: DeploymentState, bounds: HealthBounds,
                     cancel: CancelToken, sleep: Sleep,
                     lock: threading.Lock | None = None) -> RollbackOutcome:
    """Put one device that ran ``version`` back on its previous release; record each step."""
    lock = lock or threading.Lock()

    def mark(state: DeploymentState, detail: str, *, error: str | None = None,
             running: str | None = None, action: str | None = None) -> RollbackOutcome:
        with lock, ctx.db.write() as session:
            deployment = session.get(Deployment, deployment_id)
            deployment.state, deployment.detail, deployment.error = state, detail[:255], error
            if state in (DeploymentState.ROLLED_BACK, DeploymentState.FAILED):
                deployment.finished_at = ctx.clock()
            if running is not None:
                find_device(session, uid).model_version = running
            ctx.audit.append(session, actor=actor.name, action=action or f"rollback.{state.value}",
                             object_type="device", object_id=uid,
                             after={"deployment": deployment_id, "version": version,
                                    "detail": detail[:500], "running": running,
                                    **({"error": error[:1000]} if error else {})})
        return RollbackOutcome(uid, state, detail, running)

    try:
        with ctx.db.read() as session:
            address = enrolled_address(find_device(session, uid))
        with DeviceConnection.connect(address, ctx.identity) as conn:
            status = conn.agent("ctl", "status")
            current, previous = status.get("current"), status.get("previous")
            if current != version:
                if prior is DeploymentState.FAILED:  # it never kept the release: nothing to do
                    return RollbackOutcome(uid, prior, f"not on {version}", current, changed=False)
                return mark(DeploymentState.ROLLED_BACK,
                            f"already off {version}: runs {current or 'no model'}",
                            running=current)
            if not previous or previous == version:
                return mark(DeploymentState.FAILED, f"still on {version}: the device keeps no "
                            "previous release to go back to", error="no previous release")
            # ACTIVATING again (the previous release this time): in flight until it is healthy.
            mark(DeploymentState.ACTIVATING, f"rolling back to {previous}",
                 action="rollback.start")
            try:
                cancel.check()
                conn.agent("ctl", "rollback")
                wait_healthy(conn, previous, bounds, cancel, sleep)
            except UnhealthyDevice as exc:
                return mark(DeploymentState.FAILED, f"back on {previous} but not healthy: {exc}",
                            error=str(exc), running=previous)
            except Cancelled:
                # Not left in flight (a later roll back would wait for it): as it was, and the
                # next roll back asks the device where it stands.
                mark(prior, f"roll back to {previous} cancelled; roll back again",
                     action="rollback.cancelled")
                raise
            return mark(DeploymentState.ROLLED_BACK, f"rolled back to {previous}; healthy",
                        running=previous)
    except DeviceUnreachable as exc:
        return mark(DeploymentState.FAILED, f"unreachable, not rolled back: {reason(exc)}; "
                    "roll back again when it is online", error=reason(exc))
    except (FleetError, InvalidInput) as exc:  # InvalidInput: no known address
        return mark(DeploymentState.FAILED, f"not rolled back: {reason(exc)}", error=reason(exc))


def _conclude(ctx: FleetContext, actor: Actor, rollout_id: int, version: str, why: str,
              outcomes: Sequence[RollbackOutcome]) -> RollbackResult:
    failed = [o for o in outcomes if o.changed and o.state is DeploymentState.FAILED]
    with ctx.db.write() as session:
        rollout = find_rollout(session, rollout_id)
        if failed:
            record_halt(ctx, session, rollout, actor.name, "roll back incomplete: " + "; ".join(
                f"{o.uid}: {o.detail}" for o in failed))
        else:
            rollout.state, rollout.finished_at = RolloutState.ROLLED_BACK, ctx.clock()
            for waiting in session.scalars(select(Deployment).where(
                    Deployment.rollout_id == rollout_id,
                    Deployment.state == DeploymentState.PENDING)):
                waiting.detail = "never sent: the rollout was rolled back"
        _restore_model_statuses(ctx, session, actor, version,
                                {o.running for o in outcomes if o.running and o.changed
                                 and o.state is DeploymentState.ROLLED_BACK})
        ctx.audit.append(session, actor=actor.name, action="rollout.rollback",
                         object_type="rollout", object_id=rollout_id,
                         after={"version": version, "reason": why[:2000],
                                "state": rollout.state.value,
                                "outcomes": {o.uid: o.state.value for o in outcomes}})
        return RollbackResult(rollout_id, version, rollout.state, tuple(outcomes))


def _restore_model_statuses(ctx: FleetContext, session, actor: Actor, version: str,  # type: ignore[no-untyped-def]
                            restored: set[str]) -> None:
    """Keep "deployed" meaning "some device runs it": the rolled back version stops being
    deployed when no device runs it any more, and a retired version devices went back to is
    deployed again. (Gates judge candidates against the deployed model.)"""
    running = set(session.scalars(select(Device.model_version).where(
        Device.model_version.is_not(None))))
    changes = [(version, ModelStatus.DEPLOYED, ModelStatus.APPROVED, version not in running)]
    changes += [(old, ModelStatus.RETIRED, ModelStatus.DEPLOYED, True) for old in restored]
    for name, before, after, applies in changes:
        model = session.scalar(select(ModelVersion).where(ModelVersion.version == name))
        if model is None or model.status is not before or not applies:
            continue
        model.status = after
        ctx.audit.append(session, actor=actor.name, action="model.status",
                         object_type="model_version", object_id=name,
                         before={"status": before.value},
                         after={"status": after.value, "why": f"rollback of {version}"})
