"""Rolling a rollout back by hand, against simulated devices: both devices go back to the
release they ran before, the database says so, and a device that is offline is reported
(not a crash) and goes back when the roll back is run again from the command line."""

from __future__ import annotations


import pytest
from sqlalchemy import select

from app.core.errors import InvalidInput, PermissionDenied
from app.core.models import (
    AuditEvent, Deployment, DeploymentState, Device, ModelStatus, ModelVersion, Role, Rollout,
    RolloutState,
)
from app.core.users import actor_named, add_user
from app.fleet.agent.home import AgentHome
from app.fleet.deploy import run_rollout, start_rollout
from app.fleet.health import poll_device
from app.fleet.releases import register_release
from app.fleet.rollback import roll_back_rollout
from app.fleet.signing import load_or_create_signing_key
from app.fleet.summaries import rollout_view
from tests.fleet.fleet_env import FAST, FleetEnv
from tests.support.net import free_port
from tests.support.releases import make_release
from tests.test_cli import edgeloop

def _deploy_edge_2(env: FleetEnv) -> int:
    """Both devices enrolled and moved from their factory edge-1 to edge-2; the rollout id."""
    env.enroll(0)
    env.enroll(1)
    key = load_or_create_signing_key(env.ctx.keys_dir)
    folder, _ = make_release(env.workdir / "new", "edge-2", key, seed=2)
    register_release(env.ctx, env.admin, folder)
    rollout_id = start_rollout(env.ctx, env.admin, "edge-2", bounds=FAST)
    assert run_rollout(env.ctx, env.admin, rollout_id) is RolloutState.COMPLETED
    assert [_running(env, i) for i in (0, 1)] == ["edge-2", "edge-2"]
    return rollout_id


def _running(env: FleetEnv, index: int) -> str:
    return AgentHome(env.device(index).home.root).current.resolve().name


def _deployments(env: FleetEnv, rollout_id: int) -> dict[str, Deployment]:
    with env.project.db.read() as session:
        return {uid: d for d, uid in session.execute(
            select(Deployment, Device.uid).join(Device, Device.id == Deployment.device_id)
            .where(Deployment.rollout_id == rollout_id))}


def test_a_roll_back_puts_both_devices_back_on_the_old_release(env: FleetEnv) -> None:
    rollout_id = _deploy_edge_2(env)
    uids = [d.spec.device_id for d in env.devices]
    add_user(env.project.db, env.project.audit, env.admin, "ann", Role.ANNOTATOR)
    with pytest.raises(PermissionDenied):
        roll_back_rollout(env.ctx, actor_named(env.project.db, "ann"), rollout_id, "no")
    assert _running(env, 0) == "edge-2"

    steps = []
    result = roll_back_rollout(env.ctx, env.admin, rollout_id, "scratch rate doubled",
                               progress=steps.append)

    assert result.state is RolloutState.ROLLED_BACK and result.failed == []
    assert {o.uid: (o.state, o.running) for o in result.outcomes} == {
        uid: (DeploymentState.ROLLED_BACK, "edge-1") for uid in uids}
    assert [_running(env, i) for i in (0, 1)] == ["edge-1", "edge-1"]
    assert poll_device(env.ctx, uids[0]).model_version == "edge-1"  # the agent reports it too
    assert steps[-1].message == "rolled back"
    deployments = _deployments(env, rollout_id)
    assert {uid: d.state for uid, d in deployments.items()} == {
        uid: DeploymentState.ROLLED_BACK for uid in uids}
    assert all(d.detail == "rolled back to edge-1; healthy" and d.error is None
               for d in deployments.values())
    with env.project.db.read() as session:
        assert session.get(Rollout, rollout_id).state is RolloutState.ROLLED_BACK
        assert set(session.scalars(select(Device.model_version))) == {"edge-1"}
        # No device runs edge-2 any more: it is no longer "deployed", only approved.
        assert session.scalar(select(ModelVersion.status).where(
            ModelVersion.version == "edge-2")) is ModelStatus.APPROVED
        events = list(session.scalars(select(AuditEvent).where(
            AuditEvent.action.like("%rollback%")).order_by(AuditEvent.seq)))
    actions = [e.action for e in events]
    assert actions[0] == "rollout.rollback_start" and actions[-1] == "rollout.rollback"
    assert actions.count("rollback.start") == 2 and actions.count("rollback.rolled_back") == 2
    assert events[0].after["reason"] == "scratch rate doubled"
    assert rollout_view(env.project.db, rollout_id).state is RolloutState.ROLLED_BACK

    with pytest.raises(InvalidInput, match="rolled back already"):
        roll_back_rollout(env.ctx, env.admin, rollout_id, "again")


def test_an_offline_device_is_reported_and_goes_back_when_run_again(env: FleetEnv) -> None:
    rollout_id = _deploy_edge_2(env)
    late = env.device(1).spec.device_id
    with env.project.db.write() as session:
        device = session.scalar(select(Device).where(Device.uid == late))
        real_port, device.ssh_port = device.ssh_port, free_port()  # nothing listens there

    result = roll_back_rollout(env.ctx, env.admin, rollout_id, "bad batch")

    assert result.state is RolloutState.HALTED  # not done: it can be run again
    [failed] = result.failed
    assert failed.uid == late and failed.state is DeploymentState.FAILED
    assert "unreachable" in failed.detail and "roll back again" in failed.detail
    assert [_running(env, i) for i in (0, 1)] == ["edge-1", "edge-2"]
    deployments = _deployments(env, rollout_id)
    assert deployments[env.device(0).spec.device_id].state is DeploymentState.ROLLED_BACK
    assert deployments[late].state is DeploymentState.FAILED and deployments[late].error
    view = rollout_view(env.project.db, rollout_id)
    assert view.state is RolloutState.HALTED
    assert view.halt_reason is not None and view.halt_reason.startswith("roll back incomplete")
    assert late in view.halt_reason

    # The device is back online; the user runs the roll back again from the command line.
    with env.project.db.write() as session:
        session.scalar(select(Device).where(Device.uid == late)).ssh_port = real_port
    again = edgeloop("rollout", "rollback", str(rollout_id), "--reason", "bad batch, part 2",
                     "--project", str(env.project.root))
    assert again.returncode == 0, again.stderr
    assert f"Rollout {rollout_id} rolled back" in again.stdout
    assert [_running(env, i) for i in (0, 1)] == ["edge-1", "edge-1"]
    assert {d.state for d in _deployments(env, rollout_id).values()} == {
        DeploymentState.ROLLED_BACK}
    assert rollout_view(env.project.db, rollout_id).state is RolloutState.ROLLED_BACK
