"""The simulated fleet: N edge devices on this machine, as real as the device protocol gets.

Each device has its own home folder, runs the real agent as its own process (fed by the
factory-scene generator, optionally drifting on a schedule), advertises itself over mDNS on
loopback, and serves SSH+SFTP on its own loopback port (asyncssh; key auth; confined to the
home; exec of ``edgeloop-agent`` and ``tar`` only). All SSH servers share one event loop on
a background thread. Agents get SIGTERM if this process dies (PR_SET_PDEATHSIG), and
``stop`` ends them by PID, so no process outlives the fleet.

Besides its schedule fixed at start, a device's drift can be switched while it runs:
``set_scenario("lighting", ["sim-01"])`` writes the scenario into the device's
``sim/scenario`` file, which its agent (``run --scenario-file``) follows within a fraction
of a second; ``clear_scenario`` removes the file and hands the drift back to the schedule.
Like a device's config, the file outlives a restart of the fleet.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.core.scene import Scenario
from app.fleet.agent.activation import ReleaseManager
from app.fleet.agent.fsutil import write_atomic
from app.fleet.agent.home import AgentConfig, AgentHome, CaptureConfig
from app.fleet.agent.manifest import public_key_to_text
from app.fleet.agent.runtime import self_test
from app.fleet.sim_ssh import CommandRefused, DeviceSSHServer, SSHEndpoint, authorize_client_key

PR_SET_PDEATHSIG = 1
SCENARIO_FILE = Path("sim") / "scenario"  # under a device's home: its live drift override


@dataclass(frozen=True)
class SimDeviceSpec:
    """One simulated device: its id, scene seed, drift schedule and frame rate."""

    device_id: str
    seed: int
    schedule: str | None = None
    fps: float = 2.0
    random_rate: float = 0.05
    low_confidence: float = 0.6


@dataclass
class SimDevice:
    """A running simulated device."""

    spec: SimDeviceSpec
    home: AgentHome
    endpoint: SSHEndpoint
    process: subprocess.Popen[bytes]


def default_specs(count: int, schedule: str | None = None, fps: float = 2.0) -> list[SimDeviceSpec]:
    return [SimDeviceSpec(f"sim-{i + 1:02d}", seed=100 + i, schedule=schedule, fps=fps)
            for i in range(count)]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the simulator's process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def agent_command(home: Path) -> Callable[[list[str]], list[str]]:
    """The exec mapping of ``edgeloop-agent ARGS`` to this device's agent, home fixed."""
    def build(args: list[str]) -> list[str]:
        if any(a == "--home" or a.startswith("--home=") for a in args):
            raise CommandRefused("--home is fixed on this device")
        return [sys.executable, "-m", "app.fleet.agent", "--home", str(home), *args]
    return build


class _LoopThread:
    """One asyncio event loop on a background thread, for all the SSH servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim-ssh", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


class SimulatedFleet:
    """Start and stop a fleet of simulated devices under ``root``."""

    def __init__(
        self,
        root: Path,
        signing_key: Ed25519PrivateKey,
        release: Path,
        specs: Sequence[SimDeviceSpec],
        *,
        interfaces: Sequence[str] = ("127.0.0.1",),
        authorized_keys: Sequence[str] = (),
        size: int = 128,
        drift_flush_s: float = 60.0,
    ) -> None:
        self.root = Path(root)
        self.signing_key = signing_key
        self.release = Path(release)
        self.specs = list(specs)
        self.interfaces = list(interfaces)
        self.authorized_keys = list(authorized_keys)
        self.size = size
        self.drift_flush_s = drift_flush_s
        self.devices: list[SimDevice] = []
        self._servers: list[DeviceSSHServer] = []
        self._loop: _LoopThread | None = None

    def _prepare_home(self, spec: SimDeviceSpec, ssh_port: int) -> AgentHome:
        home = AgentHome(self.root / "devices" / spec.device_id)
        # A restarted fleet keeps each device's config, but its SSH port is new.
        config = home.load_config() if home.config_path.exists() else AgentConfig(
            device_id=spec.device_id, name=f"Simulated {spec.device_id}", hardware="sim-x86",
            capture=CaptureConfig(random_rate=spec.random_rate,
                                  low_confidence=spec.low_confidence),
        )
        config.ssh_port, config.fps, config.interfaces = ssh_port, spec.fps, self.interfaces
        config.drift_flush_interval_s = self.drift_flush_s
        # `ctl authorize` must write the file the simulated SSH server reads.
        config.authorized_keys = "ssh/authorized_keys"
        home.create(config)
        home.save_config(config)
        # The factory's key, under its own name: enrollment adds the project's ("project")
        # beside it, so the factory image stays verifiable for a rollback to it.
        home.add_trusted_key("factory", public_key_to_text(self.signing_key.public_key()))
        manager = ReleaseManager(home, self_test)
        if manager.current_version() is None:
            manager.install(self.release)  # the factory image ships with release 1
        for line in self.authorized_keys:
            authorize_client_key(home.root, line)
        return home

    def start(self) -> list[SimDevice]:
        """Start every device's SSH server and agent; return them once all are listening."""
        self._loop = _LoopThread()
        try:
            for spec in self.specs:
                home_dir = self.root / "devices" / spec.device_id
                home_dir.mkdir(parents=True, exist_ok=True)
                server = DeviceSSHServer(home_dir, commands={"edgeloop-agent": agent_command(home_dir)})
                endpoint = self._loop.run(server.start())
                self._servers.append(server)
                home = self._prepare_home(spec, endpoint.port)
                self.devices.append(SimDevice(spec, home, endpoint, self._spawn_agent(spec, home)))
        except BaseException:
            self.stop()
            raise
        return self.devices

    def _spawn_agent(self, spec: SimDeviceSpec, home: AgentHome) -> subprocess.Popen[bytes]:
        scenario_file = home.root / SCENARIO_FILE
        scenario_file.parent.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "app.fleet.agent", "--home", str(home.root), "run",
                "--source", f"generator:{spec.seed}", "--size", str(self.size),
                "--scenario-file", str(scenario_file)]
        if spec.schedule:
            args += ["--schedule", spec.schedule]
        log = open(home.root / "agent.log", "ab")
        try:
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        finally:
            log.close()

    # -- live drift ---------------------------------------------------------------------------
    def _scenario_files(self, device_ids: Sequence[str] | None) -> list[Path]:
        """The scenario file of each named device (every device when None)."""
        known = [spec.device_id for spec in self.specs]
        if isinstance(device_ids, str):  # a lone id would otherwise be read letter by letter
            device_ids = [device_ids]
        chosen = known if device_ids is None else list(device_ids)
        unknown = [d for d in chosen if d not in known]
        if unknown:
            raise ValueError(f"unknown device {', '.join(map(repr, unknown))}; "
                             f"this fleet has {', '.join(known) or 'none'}")
        return [self.root / "devices" / d / SCENARIO_FILE for d in chosen]

    def set_scenario(self, scenario: str, device_ids: Sequence[str] | None = None) -> None:
        """Switch the named devices (all when None) to ``scenario`` (e.g. ``"lighting"`` or
        ``"blur:0.5"``) until ``clear_scenario``, whatever their schedule says."""
        try:
            parsed = Scenario.parse(scenario)
        except ValueError as exc:
            raise ValueError(f"bad scenario {scenario!r}: {exc}") from None
        files = self._scenario_files(device_ids)  # checked before any file is written
        for path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, f"{parsed}\n".encode())

    def clear_scenario(self, device_ids: Sequence[str] | None = None) -> None:
        """Hand the named devices (all when None) back to their schedule."""
        for path in self._scenario_files(device_ids):
            path.unlink(missing_ok=True)

    def scenario_of(self, device_id: str) -> str | None:
        """The scenario ``set_scenario`` gave a device, or None while it follows its schedule."""
        [path] = self._scenario_files([device_id])
        try:
            return path.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every agent (SIGTERM, then SIGKILL) and SSH server; idempotent."""
        for device in self.devices:
            if device.process.poll() is None:
                device.process.send_signal(signal.SIGTERM)
        for device in self.devices:
            try:
                device.process.wait(timeout)
            except subprocess.TimeoutExpired:
                device.process.kill()
                device.process.wait()
        if self._loop is not None:
            for server in self._servers:
                try:
                    self._loop.run(server.close(), timeout)
                except Exception:  # a server that failed to start has nothing to close
                    continue
            self._loop.close()
            self._loop = None
        self._servers.clear()

    def __enter__(self) -> SimulatedFleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def alive(pid: int) -> bool:
    """Whether a process with this PID exists (zombies of ours count as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False
