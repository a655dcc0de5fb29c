"""The workstation's fleet services against simulated devices: enroll, pull, deploy,
roll back, and a changed host key refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update

from app.core.models import (
    AuditEvent, Capture, Deployment, DeploymentState, Device, EnrollmentState, Rollout,
    RolloutState,
)
from app.fleet.agent.home import AgentHome
from app.fleet.deploy import deliver_pending, run_rollout, start_rollout
from app.fleet.enrollment import enroll, probe
from app.fleet.errors import HostKeyMismatch
from app.fleet.health import poll_device
from app.fleet.pull import DevicePuller, pull_devices
from app.fleet.releases import register_release
from app.fleet.rollout_plan import HealthBounds
from app.fleet.signing import load_or_create_signing_key
from tests.fleet.fleet_env import FAST, FleetEnv, fleet_env
from tests.support.net import free_port
from tests.support.releases import make_release

def test_enroll_pins_the_host_key_and_installs_our_keys(env: FleetEnv) -> None:
    device = env.device(0)
    uid, endpoint = device.spec.device_id, device.endpoint
    seen = probe(env.ctx, uid, endpoint.host, endpoint.port)
    assert seen.fingerprint == endpoint.host_key_fingerprint

    wrong = "SHA256:" + "A" * 43
    with pytest.raises(HostKeyMismatch) as refused:
        enroll(env.ctx, env.admin, uid, confirmed_fingerprint=wrong, address=endpoint.host,
               port=endpoint.port, bootstrap=env.bootstrap)
    assert wrong in str(refused.value) and endpoint.host_key_fingerprint in str(refused.value)
    with env.project.db.read() as session:
        assert session.scalar(select(Device).where(Device.uid == uid)) is None

    env.enroll(0)
    home = AgentHome(device.home.root)
    authorized = (home.root / "ssh" / "authorized_keys").read_text()
    assert env.ctx.identity.public_line.split()[1] in authorized
    signing = load_or_create_signing_key(env.ctx.keys_dir)
    assert len(home.trusted_keys()) >= 1
    assert any(k.public_bytes_raw() == signing.public_key().public_bytes_raw()
               for k in home.trusted_keys())
    with env.project.db.read() as session:
        row = session.scalar(select(Device).where(Device.uid == uid))
        assert row.enrollment is EnrollmentState.ENROLLED
        assert row.host_key_fingerprint == endpoint.host_key_fingerprint
        assert row.model_version == "edge-1"
        actions = list(session.scalars(select(AuditEvent.action)))
    assert "device.enroll" in actions

    # The host key changes (a replaced device, or an interceptor): refused, naming both keys.
    with env.project.db.write() as session:
        session.execute(update(Device).where(Device.uid == uid)
                        .values(host_key_fingerprint="SHA256:" + "B" * 43))
    with pytest.raises(HostKeyMismatch) as changed:
        DevicePuller(env.ctx, env.admin).pull(uid)
    message = str(changed.value)
    assert uid in message and endpoint.host_key_fingerprint in message and "B" * 43 in message


def test_pull_imports_each_capture_once_then_the_device_deletes_it(env: FleetEnv) -> None:
    env.enroll(0)
    env.enroll(1)
    env.wait_for_spool(0, 5)
    env.wait_for_spool(1, 5)
    results = pull_devices(env.ctx, env.admin)
    assert all(r.error is None for r in results), results
    assert all(r.imported >= 5 and r.quarantined == 0 for r in results)
    assert env.captures_in_db() == sum(r.imported for r in results)
    with env.project.db.read() as session:
        captures = list(session.scalars(select(Capture)))
        cursors = dict(session.execute(select(Device.uid, Device.capture_cursor)).all())
    assert all(env.project.blobs.exists(c.blob_sha256) for c in captures)
    for index, result in enumerate(results):
        uid = env.device(index).spec.device_id
        assert cursors[uid] == result.cursor
        # Everything up to the cursor is gone from the device; newer captures stay.
        assert all(i > result.cursor for i in env.spool_ids(index))

    again = pull_devices(env.ctx, env.admin)
    assert sum(r.already_had for r in again) == 0
    with env.project.db.read() as session:
        ids = list(session.execute(select(Capture.device_id, Capture.device_capture_id)))
    assert len(ids) == len(set(ids))


def test_rollout_reaches_every_device_healthy(env: FleetEnv) -> None:
    env.enroll(0)
    env.enroll(1)
    key = load_or_create_signing_key(env.ctx.keys_dir)
    folder, _ = make_release(env.workdir / "new", "edge-2", key, seed=2)
    register_release(env.ctx, env.admin, folder)
    rollout_id = start_rollout(env.ctx, env.admin, "edge-2", bounds=FAST)
    state = run_rollout(env.ctx, env.admin, rollout_id)
    assert state is RolloutState.COMPLETED
    for device in env.devices:
        assert AgentHome(device.home.root).current.resolve().name == "edge-2"
    with env.project.db.read() as session:
        rows = list(session.scalars(select(Deployment).where(Deployment.rollout_id == rollout_id)))
        assert [r.stage for r in rows] == [0, 1]
        assert all(r.state is DeploymentState.HEALTHY for r in rows)
    report = poll_device(env.ctx, env.device(0).spec.device_id)
    assert report.model_version == "edge-2"


def test_failed_self_test_rolls_the_device_back_and_halts(env: FleetEnv) -> None:
    env.enroll(0)
    env.enroll(1)
    # The canary only runs OpenVINO; the new release ships ONNX alone, so its self-test
    # fails there. The device must switch back by itself and the rollout must stop.
    canary = AgentHome(env.device(0).home.root)
    config = canary.load_config()
    config.runtime = "openvino"
    canary.save_config(config)
    key = load_or_create_signing_key(env.ctx.keys_dir)
    folder, _ = make_release(env.workdir / "new", "edge-3", key, seed=3, openvino=False)
    register_release(env.ctx, env.admin, folder)
    rollout_id = start_rollout(env.ctx, env.admin, "edge-3",
                               canary=[env.device(0).spec.device_id], bounds=FAST)
    assert run_rollout(env.ctx, env.admin, rollout_id) is RolloutState.HALTED
    assert canary.current.resolve().name == "edge-1"
    assert AgentHome(env.device(1).home.root).current.resolve().name == "edge-1"
    with env.project.db.read() as session:
        states = {r.stage: r.state for r in session.scalars(
            select(Deployment).where(Deployment.rollout_id == rollout_id))}
        actions = list(session.scalars(select(AuditEvent.action)))
    assert states == {0: DeploymentState.ROLLED_BACK, 1: DeploymentState.PENDING}
    assert "rollout.halt" in actions and "deployment.rolled_back" in actions


def test_unhealthy_device_is_told_to_roll_back(tmp_path: Path) -> None:
    # The factory image is signed by the vendor's key, not the project's: enrollment adds the
    # project's key beside it, so the device can still verify the factory image to go back.
    with fleet_env(tmp_path, count=1, factory_key=Ed25519PrivateKey.generate()) as env:
        _roll_back_an_unhealthy_device(env)


def _roll_back_an_unhealthy_device(env: FleetEnv) -> None:
    env.enroll(0)
    key = load_or_create_signing_key(env.ctx.keys_dir)
    folder, _ = make_release(env.workdir / "new", "edge-4", key, seed=4)
    register_release(env.ctx, env.admin, folder)
    impossible = HealthBounds(min_fps=10_000, window_s=2.0, poll_interval_s=0.3, timeout_s=20)
    rollout_id = start_rollout(env.ctx, env.admin, "edge-4",
                               targets=[env.device(0).spec.device_id], bounds=impossible)
    assert run_rollout(env.ctx, env.admin, rollout_id) is RolloutState.HALTED
    assert AgentHome(env.device(0).home.root).current.resolve().name == "edge-1"


def test_an_offline_device_gets_the_release_when_it_returns(env: FleetEnv) -> None:
    env.enroll(0)
    env.enroll(1)
    late = env.device(1).spec.device_id
    with env.project.db.write() as session:
        device = session.scalar(select(Device).where(Device.uid == late))
        real_port, device.ssh_port = device.ssh_port, free_port()  # nothing listens there
    key = load_or_create_signing_key(env.ctx.keys_dir)
    folder, _ = make_release(env.workdir / "new", "edge-5", key, seed=5)
    register_release(env.ctx, env.admin, folder)
    rollout_id = start_rollout(env.ctx, env.admin, "edge-5", bounds=FAST)
    # The reachable canary passes; the offline device waits without halting the rollout.
    assert run_rollout(env.ctx, env.admin, rollout_id) is RolloutState.RUNNING
    with env.project.db.read() as session:
        waiting = session.scalar(select(Deployment).where(Deployment.rollout_id == rollout_id,
                                                          Deployment.stage == 1))
        assert waiting.state is DeploymentState.PENDING and waiting.error
    assert AgentHome(env.device(1).home.root).current.resolve().name == "edge-1"

    with env.project.db.write() as session:
        session.scalar(select(Device).where(Device.uid == late)).ssh_port = real_port
    outcomes = deliver_pending(env.ctx, env.admin, rollout_id, sleep=time.sleep)
    assert [(o.uid, o.state) for o in outcomes] == [(late, DeploymentState.HEALTHY)]
    assert AgentHome(env.device(1).home.root).current.resolve().name == "edge-5"
    with env.project.db.read() as session:
        assert session.get(Rollout, rollout_id).state is RolloutState.COMPLETED
