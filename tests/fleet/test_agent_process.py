"""The agent as a real process: advertised over mDNS on loopback and found by a browser in
another process, controlled with ``edgeloop-agent ctl``, stopped cleanly by SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

from app.fleet.agent.advertise import SERVICE_TYPE
from app.fleet.agent.manifest import public_key_to_text
from tests.fleet.test_agent_loop import image_folder
from tests.support.releases import make_release

AGENT = [sys.executable, "-m", "app.fleet.agent"]


def agent_ctl(home: Path, *args: str) -> dict:
    result = subprocess.run([*AGENT, "--home", str(home), "ctl", *args], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def agent_home(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "signing.pub"
    key_file.write_text(public_key_to_text(key.public_key()))
    home = tmp_path / "device"
    subprocess.run([*AGENT, "--home", str(home), "init", "--id", "cam-42", "--name", "Line 4",
                    "--hw", "sim-x86", "--ssh-port", "2242", "--interfaces", "127.0.0.1",
                    "--fps", "20", "--trust", str(key_file), "--every-nth", "4"],
                   check=True, capture_output=True, timeout=60)
    folder, _ = make_release(tmp_path / "build", "edge-1", key, seed=1)
    assert agent_ctl(home, "install", str(folder))["active"] == "edge-1"
    return home, key


class Watcher:
    """A browser in this (test) process, on loopback only."""

    def __init__(self) -> None:
        self.zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        self.events: list[tuple[str, ServiceStateChange]] = []
        self.browser = ServiceBrowser(self.zc, SERVICE_TYPE, handlers=[self._on_change])

    def _on_change(self, zeroconf, service_type, name, state_change) -> None:  # type: ignore[no-untyped-def]
        self.events.append((name, state_change))

    def wait(self, name: str, change: ServiceStateChange, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while (name, change) not in self.events:
            assert time.monotonic() < deadline, f"no {change} for {name}: {self.events}"
            time.sleep(0.05)

    def close(self) -> None:
        self.browser.cancel()
        self.zc.close()


def test_agent_process_is_found_resolved_and_withdrawn(agent_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home, _ = agent_home
    watcher = Watcher()
    proc = subprocess.Popen([*AGENT, "--home", str(home), "run", "--source",
                             f"folder:{image_folder(tmp_path, 8)}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    name = f"cam-42.{SERVICE_TYPE}"
    try:
        watcher.wait(name, ServiceStateChange.Added)
        info = watcher.zc.get_service_info(SERVICE_TYPE, name, timeout=5000)
        assert info is not None
        props = {k.decode(): v.decode() for k, v in info.properties.items()}
        assert props == {"id": "cam-42", "name": "Line 4", "agent": props["agent"],
                         "model": "edge-1", "ssh_port": "2242", "hw": "sim-x86"}
        assert info.port == 2242 and info.parsed_addresses() == ["127.0.0.1"]

        deadline = time.monotonic() + 20
        while agent_ctl(home, "status")["status"].get("frames", 0) < 10:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        status = agent_ctl(home, "status")
        assert status["current"] == "edge-1" and status["status"]["state"] == "running"
        assert status["spool"]["captures"] >= 2
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    try:
        assert proc.returncode == 0, err
        assert json.loads(out)["stopped"] is True
        watcher.wait(name, ServiceStateChange.Removed)  # goodbye packets on shutdown
        assert agent_ctl(home, "status")["status"]["state"] == "stopped"
    finally:
        watcher.close()


def test_ctl_refuses_a_tampered_release_with_a_message(agent_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home, key = agent_home
    folder, _ = make_release(tmp_path / "b2", "edge-2", key, seed=2)
    (folder / "model.onnx").write_bytes(b"\0" * 10)
    result = subprocess.run([*AGENT, "--home", str(home), "ctl", "install", str(folder)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "model.onnx hashes to" in result.stderr and "Traceback" not in result.stderr
    assert agent_ctl(home, "status")["current"] == "edge-1"
