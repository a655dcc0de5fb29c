"""The simulated fleet: devices reachable over SSH with strict host keys, found over mDNS,
stopped without leaving a process behind, also from the ``edgeloop simulate`` command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.fleet.agent.advertise import SERVICE_TYPE
from app.fleet.agent.spool import captures_in, is_sidecar
from app.fleet.signing import load_or_create_signing_key
from app.fleet.simulator import SimDeviceSpec, SimulatedFleet, alive
from tests.fleet.test_agent_process import Watcher
from tests.support.releases import make_release
from tests.support.ssh import client_key, connect_strict, run
from zeroconf import ServiceStateChange


@pytest.fixture
def sim_root(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey, Path]:
    root = tmp_path / "sim"
    key = load_or_create_signing_key(root / "keys")
    release, _ = make_release(root / "releases", "edge-1", key, seed=1)
    return root, key, release


def test_fleet_devices_serve_ssh_and_mdns_and_stop_cleanly(sim_root, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, key, release = sim_root
    pkey, public = client_key(tmp_path)
    # Unique ids: another fleet on this machine (a demo) advertises on the same loopback.
    tag = uuid.uuid4().hex[:6]
    specs = [SimDeviceSpec(f"t{tag}-1", 1, fps=10, random_rate=0.5),
             SimDeviceSpec(f"t{tag}-2", 2, schedule="blur@0", fps=10, random_rate=0.5)]
    watcher = Watcher()
    fleet = SimulatedFleet(root, key, release, specs, authorized_keys=[public])
    try:
        devices = fleet.start()
        for device in devices:
            watcher.wait(f"{device.spec.device_id}.{SERVICE_TYPE}", ServiceStateChange.Added)
        info = watcher.zc.get_service_info(SERVICE_TYPE, f"t{tag}-2.{SERVICE_TYPE}", timeout=5000)
        assert info is not None and info.port == devices[1].endpoint.port

        ep = devices[1].endpoint
        client = connect_strict(ep.host, ep.port, ep.user, ep.known_hosts_line(), pkey, tmp_path)
        try:
            deadline = time.monotonic() + 60
            while True:
                code, out, err = run(client, "edgeloop-agent ctl status")
                assert code == 0, err
                status = json.loads(out)
                if status["spool"]["captures"] >= 2:
                    break
                assert time.monotonic() < deadline, status
                time.sleep(0.5)
            assert status["current"] == "edge-1" and status["status"]["state"] == "running"
            sftp = client.open_sftp()
            sidecars = sorted(n for n in sftp.listdir("spool") if n.endswith(".json"))
            with sftp.open(f"spool/{sidecars[0]}") as fh:
                sidecar = json.loads(fh.read())
            assert sidecar["device_id"] == f"t{tag}-2" and sidecar["truth"]["scenario"] == "blur"
            sftp.close()
            code, _, err = run(client, "edgeloop-agent --home /tmp ctl status")
            assert code != 0 and "--home is fixed" in err
        finally:
            client.close()
    finally:
        fleet.stop()
        pids = [d.process.pid for d in fleet.devices]
        try:
            for device in fleet.devices:
                watcher.wait(f"{device.spec.device_id}.{SERVICE_TYPE}", ServiceStateChange.Removed)
        finally:
            watcher.close()
    assert not any(alive(pid) for pid in pids)


def _newest_scenario(spool: Path) -> str | None:
    """truth.scenario of the newest complete capture in a device's spool (None: none yet)."""
    for files in reversed(captures_in(spool).values()):
        for path in filter(is_sidecar, files):
            try:
                return json.loads(path.read_text())["truth"]["scenario"]
            except FileNotFoundError:  # acked or evicted meanwhile: look at the one before
                continue
    return None


def _wait_for_scenario(spool: Path, scenario: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _newest_scenario(spool)) != scenario:
        assert time.monotonic() < deadline, f"{spool}: newest capture is {seen!r}, not {scenario!r}"
        time.sleep(0.05)


def test_set_scenario_switches_one_running_device(sim_root) -> None:  # type: ignore[no-untyped-def]
    root, key, release = sim_root
    tag = uuid.uuid4().hex[:6]
    specs = [SimDeviceSpec(f"s{tag}-1", 1, fps=30, random_rate=1.0),
             SimDeviceSpec(f"s{tag}-2", 2, fps=30, random_rate=1.0)]
    fleet = SimulatedFleet(root, key, release, specs)
    try:
        first, second = fleet.start()
        for device in (first, second):
            _wait_for_scenario(device.home.spool, "none")
        assert (first.home.root / "sim").is_dir() and fleet.scenario_of(first.spec.device_id) is None

        with pytest.raises(ValueError, match="bad scenario 'fog'"):
            fleet.set_scenario("fog", [first.spec.device_id])
        with pytest.raises(ValueError, match="unknown device 'nope'"):
            fleet.set_scenario("blur", [first.spec.device_id, "nope"])
        assert fleet.scenario_of(first.spec.device_id) is None  # nothing written by either

        fleet.set_scenario("lighting", [first.spec.device_id])
        assert fleet.scenario_of(first.spec.device_id) == "lighting"
        assert fleet.scenario_of(second.spec.device_id) is None
        _wait_for_scenario(first.home.spool, "lighting")
        seen = [json.loads(p.read_text())["truth"]["scenario"]
                for files in captures_in(second.home.spool).values()
                for p in filter(is_sidecar, files)]
        assert seen and set(seen) == {"none"}
        assert first.process.poll() is None and second.process.poll() is None

        fleet.clear_scenario()
        assert fleet.scenario_of(first.spec.device_id) is None
        _wait_for_scenario(first.home.spool, "none")
    finally:
        fleet.stop()


def test_simulate_command_stops_every_agent_on_ctrl_c(sim_root) -> None:  # type: ignore[no-untyped-def]
    root, _, _ = sim_root
    edgeloop = shutil.which("edgeloop", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen([edgeloop, "simulate", "--devices", "3", "--dir", str(root),
                             "--fps", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines: list[str] = []
    try:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            if line.startswith("ready:"):
                break
        else:
            pytest.fail(f"simulate never became ready: {proc.stdout.read()}")
        # The table: header, then one row per device with its agent PID.
        while len(lines) < 4:
            lines.append(proc.stdout.readline())
        pids = [int(line.split()[3]) for line in lines[1:]]
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert not any(alive(pid) for pid in pids)


def test_agents_die_with_a_killed_simulator(sim_root) -> None:  # type: ignore[no-untyped-def]
    root, _, _ = sim_root
    edgeloop = shutil.which("edgeloop", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen([edgeloop, "simulate", "--devices", "2", "--dir", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            if line.startswith("ready:"):
                break
        rows = [proc.stdout.readline() for _ in range(3)][1:]
        pids = [int(row.split()[3]) for row in rows]
    finally:
        proc.kill()  # no chance to clean up: the kernel's PDEATHSIG must do it
        proc.wait()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "agents outlived their simulator"
        time.sleep(0.1)
    for pid in pids:  # reap nothing: they were not our children; just make sure they are gone
        assert not os.path.exists(f"/proc/{pid}") or not alive(pid)
