"""The same agent behind a real OpenSSH server: SFTP upload of a release, ``ctl install``,
``ctl status`` and reading captures, with strict host-key checking, as on a real device."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import threading
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.fleet.agent.home import AgentConfig, AgentHome, CaptureConfig
from app.fleet.agent.loop import Agent
from app.fleet.agent.manifest import public_key_to_text
from app.fleet.agent.sources import folder_frames
from tests.fleet.test_agent_loop import image_folder
from tests.support.ssh import client_key, run
from tests.support.releases import make_release
from tests.support.sshd import sshd_available, start_sshd

AGENT = shutil.which("edgeloop-agent", path=str(Path(sys.executable).parent))


@pytest.fixture
def sshd(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not sshd_available():
        if os.environ.get("EDGELOOP_REQUIRE_SSHD") == "1":
            pytest.fail("OpenSSH sshd is required (EDGELOOP_REQUIRE_SSHD=1) but not installed")
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server)")
    server = start_sshd(tmp_path / "sshd")
    yield server
    server.stop()


def test_agent_behind_openssh(sshd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    signing = Ed25519PrivateKey.generate()
    home = AgentHome(tmp_path / "device")
    home.create(AgentConfig(device_id="real-1", fps=100, capture=CaptureConfig(every_nth=2, low_confidence=0.0)))
    home.add_trusted_key("project", public_key_to_text(signing.public_key()))
    pkey, public = client_key(tmp_path)
    sshd.authorized_keys.write_text(public + "\n")
    (tmp_path / "known_hosts").write_text(sshd.known_hosts_line() + "\n")

    client = paramiko.SSHClient()
    client.load_host_keys(str(tmp_path / "known_hosts"))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", sshd.port, username=sshd.user, pkey=pkey, allow_agent=False,
                   look_for_keys=False, timeout=10)
    agent = f"{shlex.quote(str(AGENT))} --home {shlex.quote(str(home.root))}"
    try:
        release, _ = make_release(tmp_path / "build", "edge-1", signing, seed=1)
        sftp = client.open_sftp()
        remote = f"{home.inbox}/edge-1"
        sftp.mkdir(remote)
        for path in release.iterdir():
            sftp.put(str(path), f"{remote}/{path.name}")
        code, out, err = run(client, f"{agent} ctl install {shlex.quote(remote)}")
        assert code == 0, err
        assert json.loads(out)["active"] == "edge-1"

        Agent(home, folder_frames(image_folder(tmp_path, 6)), advertise=False,
              max_frames=10).run(threading.Event())
        code, out, err = run(client, f"{agent} ctl status")
        status = json.loads(out)
        assert code == 0 and status["current"] == "edge-1"
        assert status["status"]["frames"] == 10 and status["spool"]["captures"] == 5
        first = sorted(n for n in sftp.listdir(str(home.spool)) if n.endswith(".json"))[0]
        with sftp.open(f"{home.spool}/{first}") as fh:
            assert json.loads(fh.read())["device_id"] == "real-1"
        code, out, _ = run(client, f"{agent} ctl ack {first[:-5]}")
        assert code == 0 and json.loads(out)["acked"] == 1
        sftp.close()
    finally:
        client.close()


def test_changed_host_key_is_refused(sshd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pkey, public = client_key(tmp_path)
    sshd.authorized_keys.write_text(public + "\n")
    other = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "id_ed25519"))
    (tmp_path / "known_hosts").write_text(
        f"[127.0.0.1]:{sshd.port} ssh-ed25519 {other.get_base64()}\n")
    client = paramiko.SSHClient()
    client.load_host_keys(str(tmp_path / "known_hosts"))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect("127.0.0.1", sshd.port, username=sshd.user, pkey=pkey,
                       allow_agent=False, look_for_keys=False, timeout=10)
    client.close()
