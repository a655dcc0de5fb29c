"""The workstation's fleet services against a device behind a real OpenSSH sshd: enroll,
pull, a healthy deploy and an unhealthy one rolled back, then a changed host key refused.

The sshd runs as the test's user on a loopback port; ``SetEnv`` gives the commands it runs
the agent's home and the virtualenv's ``edgeloop-agent``, as a device image would through
its login environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app.core.models import Capture, Deployment, DeploymentState, Device, RolloutState
from app.core.project import init_project
from app.core.users import actor_named
from app.fleet.agent.home import AgentConfig, AgentHome, CaptureConfig
from app.fleet.agent.manifest import public_key_to_text
from app.fleet.context import FleetContext
from app.fleet.deploy import run_rollout, start_rollout
from app.fleet.enrollment import Bootstrap, enroll, probe
from app.fleet.errors import HostKeyMismatch
from app.fleet.health import poll_device
from app.fleet.pull import DevicePuller
from app.fleet.releases import register_release
from app.fleet.rollout_plan import HealthBounds
from app.fleet.signing import load_or_create_signing_key
from app.fleet.ssh import fingerprint
from tests.support.releases import make_release
from tests.support.ssh import client_key
from tests.support.sshd import sshd_available, start_sshd

FAST = HealthBounds(min_fps=1.0, window_s=2.0, poll_interval_s=0.3, timeout_s=30.0)
BIN = Path(sys.executable).parent


def _host_fingerprint(public_line: str) -> str:
    import base64

    import paramiko

    return fingerprint(paramiko.Ed25519Key(data=base64.b64decode(public_line.split()[1])))


@pytest.fixture
def device(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A device home with release edge-1, its agent loop running, behind OpenSSH."""
    if not sshd_available():
        if os.environ.get("EDGELOOP_REQUIRE_SSHD") == "1":
            pytest.fail("OpenSSH sshd is required (EDGELOOP_REQUIRE_SSHD=1) but not installed")
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server)")
    home = AgentHome(tmp_path / "device")
    sshd = start_sshd(tmp_path / "sshd", extra_config=[
        f"SetEnv EDGELOOP_AGENT_HOME={home.root} PATH={BIN}:/usr/bin:/bin"])
    project = init_project(tmp_path / "project", admin="admin")
    signing = load_or_create_signing_key(project.keys_dir)
    factory, _ = make_release(tmp_path / "releases", "edge-1", signing, seed=1)
    home.create(AgentConfig(device_id="real-1", fps=20, interfaces=["127.0.0.1"],
                            authorized_keys=str(sshd.authorized_keys),
                            capture=CaptureConfig(random_rate=1.0)))
    home.add_trusted_key("factory", public_key_to_text(signing.public_key()))
    subprocess.run([BIN / "edgeloop-agent", "--home", str(home.root), "ctl", "install",
                    str(factory)], check=True, capture_output=True)
    _, bootstrap_public = client_key(tmp_path)
    sshd.authorized_keys.write_text(bootstrap_public + "\n")
    loop = subprocess.Popen([BIN / "edgeloop-agent", "--home", str(home.root), "run",
                             "--source", "generator:7", "--size", "64", "--no-advertise"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield project, home, sshd, Bootstrap(key_file=tmp_path / "id_ed25519"), tmp_path
    finally:
        loop.terminate()
        loop.wait(15)
        sshd.stop()
        project.close()


def test_enroll_pull_deploy_and_rollback_over_openssh(device) -> None:  # type: ignore[no-untyped-def]
    project, home, sshd, bootstrap, workdir = device
    ctx, admin = FleetContext.of(project), actor_named(project.db, "admin")
    host_fp = _host_fingerprint(sshd.host_public_key)

    seen = probe(ctx, "real-1", "127.0.0.1", sshd.port)
    assert seen.fingerprint == host_fp
    enroll(ctx, admin, "real-1", confirmed_fingerprint=host_fp, address="127.0.0.1",
           port=sshd.port, user=sshd.user, bootstrap=bootstrap)
    assert ctx.identity.public_line.split()[1] in sshd.authorized_keys.read_text()

    # Pull: what the loop captured arrives once, and only then leaves the device.
    deadline = time.monotonic() + 60
    while len(list(home.spool.glob("*.json"))) < 5:
        assert time.monotonic() < deadline, "the device's loop captured nothing"
        time.sleep(0.2)
    result = DevicePuller(ctx, admin).pull("real-1")
    assert result.error is None and result.imported >= 5 and result.quarantined == 0
    with project.db.read() as session:
        assert session.query(Capture).count() == result.imported
    assert all(p.stem > result.cursor for p in home.spool.glob("*.json"))

    # A healthy deploy, then one that cannot meet its bounds and is rolled back.
    signing = load_or_create_signing_key(ctx.keys_dir)
    for version, seed in (("edge-2", 2), ("edge-3", 3)):
        folder, _ = make_release(workdir / "new", version, signing, seed=seed)
        register_release(ctx, admin, folder)
    healthy = start_rollout(ctx, admin, "edge-2", bounds=FAST)
    assert run_rollout(ctx, admin, healthy) is RolloutState.COMPLETED
    assert home.current.resolve().name == "edge-2"
    assert poll_device(ctx, "real-1").model_version == "edge-2"

    impossible = HealthBounds(min_fps=10_000, window_s=2.0, poll_interval_s=0.3, timeout_s=20)
    failing = start_rollout(ctx, admin, "edge-3", bounds=impossible)
    assert run_rollout(ctx, admin, failing) is RolloutState.HALTED
    assert home.current.resolve().name == "edge-2"
    with project.db.read() as session:
        state = session.scalar(select(Deployment.state).where(Deployment.rollout_id == failing))
    assert state is DeploymentState.ROLLED_BACK

    # The device's host key is no longer the pinned one: refused, naming both keys.
    with project.db.write() as session:
        session.execute(update(Device).where(Device.uid == "real-1")
                        .values(host_key_fingerprint="SHA256:" + "C" * 43))
    with pytest.raises(HostKeyMismatch) as refused:
        DevicePuller(ctx, admin).pull("real-1")
    assert host_fp in str(refused.value) and "C" * 43 in str(refused.value)
