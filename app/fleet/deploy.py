"""Staged rollouts: a release goes to canaries, then a share, then all, healthy at each step.

Every step is a :class:`Deployment` row and an audit event. Per device (:func:`deploy_one`):
check free disk, stream the release (``ctl receive``: the agent verifies, activates and
self-tests it, switching back by itself on failure), then watch its status for the health
window (:class:`HealthBounds`); an unhealthy device is told to roll back. A stage completes
when every reachable device in it is healthy; any failure halts the rollout, and the stages
after it are not started. A device that is offline keeps a pending deployment, delivered by
:func:`deliver_pending` when it is reachable again. Rolling a rollout back by hand is
:mod:`app.fleet.rollback`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.core.errors import EdgeLoopError, InvalidInput
from app.core.models import (
    Deployment, DeploymentState, Device, ModelStatus, ModelVersion, Rollout, RolloutState,
)
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize
from app.fleet.context import FleetContext, enrolled_address, find_device
from app.fleet.errors import DeviceCommandFailed, DeviceUnreachable, FleetError
from app.fleet.pull import enrolled_uids
from app.fleet.releases import StoredRelease, load_release
from app.fleet.rollout_plan import DEFAULT_SHARES, HealthBounds, plan_stages
from app.fleet.ssh import DeviceConnection

DISK_MARGIN = 3  # staging copy + installed copy + slack
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class DeployOutcome:
    """How one device's deployment ended."""

    uid: str
    state: DeploymentState
    detail: str


class UnhealthyDevice(EdgeLoopError):
    """The device did not meet the health bounds after activation (internal)."""


def start_rollout(ctx: FleetContext, actor: Actor, version: str, *,
                  targets: Sequence[str] | None = None, canary: Sequence[str] = (),
                  shares: Sequence[float] = DEFAULT_SHARES,
                  bounds: HealthBounds = HealthBounds()) -> int:
    """Create a rollout of ``version`` with one pending deployment per target device."""
    authorize(ctx.db, ctx.audit, actor, Permission.DEPLOY, f"release {version}")
    release = load_release(ctx, version)
    uids = list(targets) if targets else enrolled_uids(ctx)
    stages = plan_stages(uids, canary, shares)
    with ctx.db.write() as session:
        model = session.get(ModelVersion, release.model_id)
        assert model is not None
        if model.status not in (ModelStatus.APPROVED, ModelStatus.DEPLOYED):
            raise InvalidInput(f"{version} is {model.status.value}, not approved; only an "
                               "approved model may be deployed")
        devices = {}
        for uid in uids:
            devices[uid] = find_device(session, uid)
            enrolled_address(devices[uid])  # refuses a device that is not enrolled
        rollout = Rollout(model_id=release.model_id, started_by_id=actor.user_id,
                          state=RolloutState.RUNNING, current_stage=0,
                          stages=[{"devices": stage} for stage in stages]
                          + [{"bounds": bounds.to_json()}])
        session.add(rollout)
        session.flush()
        for number, stage in enumerate(stages):
            for uid in stage:
                session.add(Deployment(rollout_id=rollout.id, model_id=release.model_id,
                                       device_id=devices[uid].id, stage=number,
                                       detail="waiting for its stage"))
        ctx.audit.append(session, actor=actor.name, action="rollout.start", object_type="rollout",
                         object_id=rollout.id, after={"version": version, "stages": stages,
                                                      "bounds": bounds.to_json()})
        return rollout.id


def rollout_bounds(rollout: Rollout) -> HealthBounds:
    """The health bounds stored with a rollout (the last entry of its stages list)."""
    for entry in rollout.stages:
        if "bounds" in entry:
            return HealthBounds.from_json(entry["bounds"])
    return HealthBounds()


def stage_count(rollout: Rollout) -> int:
    return sum(1 for entry in rollout.stages if "devices" in entry)


def run_rollout(ctx: FleetContext, actor: Actor, rollout_id: int, *, concurrency: int = 4,
                progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                sleep: Sleep = time.sleep) -> RolloutState:
    """Run the rollout's stages from where it stands; return its state afterwards."""
    authorize(ctx.db, ctx.audit, actor, Permission.DEPLOY, f"rollout {rollout_id}")
    cancel = cancel or CancelToken()
    while True:
        cancel.check()
        with ctx.db.read() as session:
            rollout = find_rollout(session, rollout_id)
            if rollout.state is not RolloutState.RUNNING:
                return rollout.state
            stage, total = rollout.current_stage, stage_count(rollout)
            bounds = rollout_bounds(rollout)
            if stage >= total:
                break
            release = load_release(ctx, rollout_model_version(session, rollout))
            pending = _pending(session, rollout_id, stage)
        progress(Progress("deploy", stage, total, f"stage {stage + 1} of {total}: "
                          f"{len(pending)} device(s)"))
        outcomes = _deploy_many(ctx, actor, release, pending, bounds, concurrency, cancel, sleep)
        failed = [o for o in outcomes if o.state in (DeploymentState.FAILED,
                                                      DeploymentState.ROLLED_BACK)]
        with ctx.db.write() as session:
            rollout = find_rollout(session, rollout_id)
            if rollout.state is not RolloutState.RUNNING:
                # Halted or rolled back by hand while the stage ran: keep what the user did.
                return rollout.state
            if failed:
                record_halt(ctx, session, rollout, actor.name,
                            "; ".join(f"{o.uid}: {o.detail}" for o in failed))
                return rollout.state
            rollout.current_stage = stage + 1
            ctx.audit.append(session, actor=actor.name, action="rollout.stage_done",
                             object_type="rollout", object_id=rollout_id,
                             after={"stage": stage, "outcomes": {o.uid: o.state.value
                                                                 for o in outcomes}})
    return _finish_if_done(ctx, actor, rollout_id)


def deliver_pending(ctx: FleetContext, actor: Actor, rollout_id: int, *, concurrency: int = 4,
                    cancel: CancelToken | None = None,
                    sleep: Sleep = time.sleep) -> list[DeployOutcome]:
    """Deliver a running rollout's release to devices that were offline in stages already
    passed; completes the rollout when none is left."""
    authorize(ctx.db, ctx.audit, actor, Permission.DEPLOY, f"rollout {rollout_id}")
    with ctx.db.read() as session:
        rollout = find_rollout(session, rollout_id)
        if rollout.state is not RolloutState.RUNNING:
            return []
        release = load_release(ctx, rollout_model_version(session, rollout))
        pending = [d for stage in range(min(rollout.current_stage, stage_count(rollout)))
                   for d in _pending(session, rollout_id, stage)]
        bounds = rollout_bounds(rollout)
    outcomes = _deploy_many(ctx, actor, release, pending, bounds, concurrency,
                            cancel or CancelToken(), sleep)
    if any(o.state in (DeploymentState.FAILED, DeploymentState.ROLLED_BACK) for o in outcomes):
        with ctx.db.write() as session:
            rollout = find_rollout(session, rollout_id)
            if rollout.state is RolloutState.RUNNING:  # not halted meanwhile by hand
                record_halt(ctx, session, rollout, actor.name, "a returning device failed: "
                            + "; ".join(f"{o.uid}: {o.detail}" for o in outcomes
                                        if o.state is not DeploymentState.HEALTHY))
    else:
        _finish_if_done(ctx, actor, rollout_id)
    return outcomes


def halt_rollout(ctx: FleetContext, actor: Actor, rollout_id: int, reason: str) -> None:
    """Stop a rollout by hand: no further stage starts; deployed devices keep the release."""
    authorize(ctx.db, ctx.audit, actor, Permission.DEPLOY, f"rollout {rollout_id}")
    with ctx.db.write() as session:
        rollout = find_rollout(session, rollout_id)
        if rollout.state is not RolloutState.RUNNING:
            raise InvalidInput(f"rollout {rollout_id} is {rollout.state.value}, not running")
        record_halt(ctx, session, rollout, actor.name, reason or "halted by hand")


def rollout_model_version(session, rollout: Rollout) -> str:  # type: ignore[no-untyped-def]
    model = session.get(ModelVersion, rollout.model_id)
    return model.version


def find_rollout(session, rollout_id: int) -> Rollout:  # type: ignore[no-untyped-def]
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise InvalidInput(f"no rollout {rollout_id}; `edgeloop rollout status` lists them")
    return rollout


def _pending(session, rollout_id: int, stage: int) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    rows = session.execute(
        select(Deployment.id, Device.uid).join(Device, Device.id == Deployment.device_id)
        .where(Deployment.rollout_id == rollout_id, Deployment.stage == stage,
               Deployment.state == DeploymentState.PENDING).order_by(Device.uid)).all()
    return [(deployment_id, uid) for deployment_id, uid in rows]


def record_halt(ctx: FleetContext, session, rollout: Rollout, actor: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    """Mark the rollout halted, with the reason in the audit trail (where views read it)."""
    rollout.state = RolloutState.HALTED
    rollout.finished_at = ctx.clock()
    ctx.audit.append(session, actor=actor, action="rollout.halt", object_type="rollout",
                     object_id=rollout.id, after={"reason": reason[:2000]})


def _finish_if_done(ctx: FleetContext, actor: Actor, rollout_id: int) -> RolloutState:
    with ctx.db.write() as session:
        rollout = find_rollout(session, rollout_id)
        if rollout.state is not RolloutState.RUNNING or rollout.current_stage < stage_count(rollout):
            return rollout.state
        waiting = session.scalar(select(Deployment.id).where(
            Deployment.rollout_id == rollout_id, Deployment.state == DeploymentState.PENDING)
            .limit(1))
        if waiting is None:
            rollout.state = RolloutState.COMPLETED
            rollout.finished_at = ctx.clock()
            model = session.get(ModelVersion, rollout.model_id)
            model.status = ModelStatus.DEPLOYED
            ctx.audit.append(session, actor=actor.name, action="rollout.complete",
                             object_type="rollout", object_id=rollout_id)
            _retire_replaced(ctx, session, actor, model)
        return rollout.state


def _retire_replaced(ctx: FleetContext, session, actor: Actor, model: ModelVersion) -> None:  # type: ignore[no-untyped-def]
    """Earlier DEPLOYED versions of the same kind that no device runs any more are RETIRED
    (a version some device still runs, say one that was offline, stays DEPLOYED)."""
    running = set(session.scalars(select(Device.model_version).where(
        Device.model_version.is_not(None))))
    for old in session.scalars(select(ModelVersion).where(
            ModelVersion.kind == model.kind, ModelVersion.status == ModelStatus.DEPLOYED,
            ModelVersion.id != model.id)):
        if old.version not in running:
            old.status = ModelStatus.RETIRED
            ctx.audit.append(session, actor=actor.name, action="model.retire",
                             object_type="model_version", object_id=old.version,
                             before={"status": ModelStatus.DEPLOYED.value},
                             after={"status": ModelStatus.RETIRED.value,
                                    "replaced_by": model.version})


def _deploy_many(ctx: FleetContext, actor: Actor, release: StoredRelease,
                 pending: Sequence[tuple[int, str]], bounds: HealthBounds, concurrency: int,
                 cancel: CancelToken, sleep: Sleep) -> list[DeployOutcome]:
    lock = threading.Lock()  # one audit/DB writer at a time keeps SQLite writers short

    def one(item: tuple[int, str]) -> DeployOutcome:
        deployment_id, uid = item
        return deploy_one(ctx, actor, release, deployment_id, uid, bounds, cancel, sleep, lock)

    if not pending:
        return []
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="deploy") as pool:
        return list(pool.map(one, pending))


def deploy_one(ctx: FleetContext, actor: Actor, release: StoredRelease, deployment_id: int,
               uid: str, bounds: HealthBounds, cancel: CancelToken, sleep: Sleep,
               lock: threading.Lock | None = None) -> DeployOutcome:
    """Deliver, activate and health-check one device; record every step."""
    lock = lock or threading.Lock()

    def mark(state: DeploymentState, detail: str, **extra: Any) -> DeployOutcome:
        with lock, ctx.db.write() as session:
            deployment = session.get(Deployment, deployment_id)
            deployment.state, deployment.detail = state, detail[:255]
            now = ctx.clock()
            if state is DeploymentState.UPLOADING:
                deployment.started_at = now
            if state in (DeploymentState.HEALTHY, DeploymentState.FAILED,
                         DeploymentState.ROLLED_BACK):
                deployment.finished_at = now
            # A pending deployment keeps why it waits (the device was unreachable).
            deployment.error = extra.get("error")
            if state is DeploymentState.HEALTHY:
                device = find_device(session, uid)
                device.model_version = release.version
            ctx.audit.append(session, actor=actor.name, action=f"deployment.{state.value}",
                             object_type="device", object_id=uid,
                             after={"deployment": deployment_id, "version": release.version,
                                    "detail": detail[:500], **extra})
        return DeployOutcome(uid, state, detail)

    with ctx.db.read() as session:
        address = enrolled_address(find_device(session, uid))
    try:
        with DeviceConnection.connect(address, ctx.identity) as conn:
            return _deliver(conn, release, bounds, cancel, sleep, mark)
    except DeviceUnreachable as exc:
        return mark(DeploymentState.PENDING, "offline; it gets the release when it is back",
                    error=str(exc))
    except FleetError as exc:
        return mark(DeploymentState.FAILED, str(exc), error=str(exc))


def _deliver(conn: DeviceConnection, release: StoredRelease, bounds: HealthBounds,
             cancel: CancelToken, sleep: Sleep,
             mark: Callable[..., DeployOutcome]) -> DeployOutcome:
    status = conn.agent("ctl", "status")
    if status.get("current") == release.version:
        return mark(DeploymentState.HEALTHY, f"{release.version} was already active")
    free = ((status.get("status") or {}).get("disk") or {}).get("free_bytes")
    if isinstance(free, int) and free < DISK_MARGIN * len(release.tar):
        return mark(DeploymentState.FAILED, f"the device has {free // 2**20} MiB free; the "
                    f"release needs {DISK_MARGIN * len(release.tar) // 2**20} MiB", error="disk")
    mark(DeploymentState.UPLOADING, f"sending {len(release.tar) // 1024} KiB")
    cancel.check()
    try:
        conn.agent("ctl", "receive", release.version, stdin=release.tar)
    except DeviceCommandFailed as exc:
        after = conn.agent("ctl", "status").get("current")
        return mark(DeploymentState.ROLLED_BACK,
                    f"activation failed; the device is on {after or 'no model'}",
                    error=str(exc))
    mark(DeploymentState.ACTIVATING, "activated; watching its health")
    try:
        wait_healthy(conn, release.version, bounds, cancel, sleep)
    except UnhealthyDevice as exc:
        try:
            conn.agent("ctl", "rollback")
        except FleetError as rollback_error:
            return mark(DeploymentState.FAILED, f"{exc}; rollback failed too",
                        error=f"{exc}; {rollback_error}")
        return mark(DeploymentState.ROLLED_BACK, f"{exc}; rolled back", error=str(exc))
    return mark(DeploymentState.HEALTHY, "healthy")


def wait_healthy(conn: DeviceConnection, version: str, bounds: HealthBounds,
                 cancel: CancelToken, sleep: Sleep) -> None:
    """Poll status until the device runs ``version`` within bounds for the whole window."""
    started = time.monotonic()
    baseline: dict[str, Any] | None = None
    while True:
        cancel.check()
        status = conn.agent("ctl", "status").get("status") or {}
        running = status.get("model_version") == version
        if running and baseline is None:
            baseline = status
        if baseline is not None and running:
            verdict = _judge(baseline, status, bounds)
            if verdict is not None:
                raise UnhealthyDevice(verdict)
            if float(status.get("time", 0)) - float(baseline.get("time", 0)) >= bounds.window_s:
                return
        if time.monotonic() - started > bounds.timeout_s:
            what = "never reported the new version" if baseline is None else "no healthy window"
            raise UnhealthyDevice(f"{what} within {bounds.timeout_s:.0f} s")
        sleep(bounds.poll_interval_s)


def _judge(baseline: dict[str, Any], now: dict[str, Any], bounds: HealthBounds) -> str | None:
    """A reason the device is unhealthy, or None while it is within bounds."""
    frames = int(now.get("frames", 0)) - int(baseline.get("frames", 0))
    errors = int(now.get("errors", 0)) - int(baseline.get("errors", 0))
    elapsed = float(now.get("time", 0)) - float(baseline.get("time", 0))
    if frames > 0 and errors / frames > bounds.max_error_rate:
        return f"error rate {errors / frames:.1%} above {bounds.max_error_rate:.1%}"
    # The frames since activation, not the agent's sliding fps: that one reaches back over
    # the reload pause and would count it against the new release.
    if elapsed >= bounds.window_s / 2 and frames / elapsed < bounds.min_fps:
        return f"{frames / elapsed:.2f} fps since activation, below {bounds.min_fps:.2f}"
    return None
