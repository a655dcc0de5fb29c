"""How the fleet services hold up with a whole simulated fleet on this machine.

Starts N simulated devices (app.fleet.simulator: one agent process, one asyncssh server and
one mDNS advertisement on 127.0.0.1 per device) against a fresh project, then times, for the
whole fleet, wall-clock:

1. fleet start (SSH servers up, agents spawned) and agents ready (every status.json written,
   so every device has loaded its model and advertises itself);
2. discover all: from starting the mDNS browser until the last of the N ids resolved
   (repeated, median), then recording the sightings in the registry;
3. enroll all: ``enroll`` on a thread pool of ``--concurrency``;
4. pull all: ``pull_devices`` with concurrency 1 (the baseline) and with ``--concurrency``,
   each on spools refilled from empty to at least ``--captures`` per device. The agents are
   paused (SIGSTOP) while a pull runs, so both pulls see a fixed spool (no capture races the
   cursor) and the simulated devices' inference does not take the workstation's CPU, as it
   would not on real hardware;
5. deploy to all: a staged rollout (canary, 25 %, all) of a new signed release, per stage;
   the floor is stages x health window, the rest is transfer + activation + polling. A
   baseline rollout with concurrency 1 to a few devices gives the per-device cost.

It also reports the agents' memory (sum of RSS), the CPU each phase used (this process,
which is the workstation and the simulator's SSH servers; the device commands it spawns; the
agents), and every device that failed. Everything runs on this machine's cores, so the
device side competes with the workstation side in a way it would not on real hardware.

    .venv/bin/python -m bench.fleet_scale                    # 50 devices, concurrency 8
    .venv/bin/python -m bench.fleet_scale --quick            # 5 devices, to try it out
    .venv/bin/python -m bench.fleet_scale --deploy-concurrency 4   # what fits on 2 cores
    .venv/bin/python -m bench.fleet_scale --devices 20 --concurrency 4 --captures 10

On 2 cores, 50 devices with 8 concurrent activations starve the simulated devices' CPU:
their fps falls under min_fps and the rollout halts (rolled back); 4 completes.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from sqlalchemy import select

from app.core.models import AuditEvent, Deployment, DeploymentState, Device, RolloutState
from app.core.progress import Progress
from app.core.project import Project, init_project
from app.core.roles import Actor
from app.core.users import actor_named
from app.fleet.agent.home import AgentHome
from app.fleet.context import FleetContext
from app.fleet.deploy import run_rollout, start_rollout
from app.fleet.discovery import Discovery, DiscoveryEvent, EventKind, Sighting
from app.fleet.enrollment import Bootstrap, enroll
from app.fleet.pull import PullResult, PullSettings, pull_devices
from app.fleet.registry import DeviceRegistry
from app.fleet.releases import register_release
from app.fleet.rollout_plan import HealthBounds
from app.fleet.signing import load_or_create_signing_key
from app.fleet.simulator import SimDevice, SimDeviceSpec, SimulatedFleet
from bench.common import machine
from tests.support.releases import make_release
from tests.support.ssh import client_key

LOOPBACK = "127.0.0.1"
BOUNDS = HealthBounds(min_fps=0.5, window_s=3.0, poll_interval_s=0.5, timeout_s=120)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    """One line of the results table."""

    phase: str
    devices: int
    concurrency: str
    seconds: str
    rate: str = ""
    note: str = ""
    cpu: str = ""


@dataclass
class Bench:
    """The project, its fleet context and admin, the running fleet and its bootstrap key."""

    workdir: Path
    project: Project
    ctx: FleetContext
    admin: Actor
    fleet: SimulatedFleet
    devices: list[SimDevice]
    bootstrap: Bootstrap
    rows: list[Row] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def uids(self) -> list[str]:
        return [d.spec.device_id for d in self.devices]

    def add(self, row: Row) -> None:
        """Keep a result row and print it at once, so a long run shows its progress."""
        self.rows.append(row)
        took = f" {row.seconds} s" if row.seconds else ""
        print(f"  {row.phase.strip()}:{took} {row.rate} {row.note} {row.cpu}".rstrip(), flush=True)

    def fail(self, uid: str, phase: str, error: str) -> None:
        self.failures.setdefault(uid, f"{phase}: {error}")


# -- the agents' processes -------------------------------------------------------------------

def agent_rss_mb(devices: Sequence[SimDevice]) -> float:
    """Sum of the agents' resident memory (VmRSS), MiB; shared pages count once per process."""
    total_kb = 0
    for device in devices:
        try:
            with open(f"/proc/{device.process.pid}/status") as fh:
                total_kb += next((int(line.split()[1]) for line in fh
                                  if line.startswith("VmRSS:")), 0)
        except OSError:
            continue  # an agent that died is reported as a failure elsewhere
    return total_kb / 1024


def agent_cpu_s(devices: Sequence[SimDevice]) -> float:
    """CPU seconds (user + system) the agents used so far."""
    total = 0
    for device in devices:
        try:
            with open(f"/proc/{device.process.pid}/stat") as fh:
                # The command name (field 2) may hold spaces: split after its closing ")".
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / CLOCK_TICKS


class CpuMeter:
    """CPU seconds used during a block, by who used them; all share this machine's cores.

    This process runs the workstation side and the simulator's SSH servers; the device
    commands (``edgeloop-agent ctl ...`` per exec channel) are its children, counted once
    reaped; the agents' loops are read from /proc.
    """

    def __init__(self, devices: Sequence[SimDevice]) -> None:
        self.devices = devices
        self.own = self.commands = self.agents = self.wall = 0.0

    def __enter__(self) -> CpuMeter:
        self._start = (os.times(), agent_cpu_s(self.devices), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        before, agents, started = self._start
        now = os.times()
        self.own = (now.user + now.system) - (before.user + before.system)
        self.commands = ((now.children_user + now.children_system)
                         - (before.children_user + before.children_system))
        self.agents = agent_cpu_s(self.devices) - agents
        self.wall = time.perf_counter() - started

    def text(self) -> str:
        total = self.own + self.commands + self.agents
        return (f"{self.own:.0f} / {self.commands:.0f} / {self.agents:.0f} "
                f"({total / max(self.wall, 1e-9):.1f} of {os.cpu_count()} cores)")


def dead_agents(devices: Sequence[SimDevice]) -> dict[str, str]:
    """uid -> the tail of agent.log, for every agent process that exited."""
    dead = {}
    for device in devices:
        if device.process.poll() is not None:
            log = device.home.root / "agent.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            dead[device.spec.device_id] = (f"agent exited with {device.process.returncode}: "
                                           + " | ".join(tail))
    return dead


def _stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is in the stopped state (SIGSTOP acts asynchronously)."""
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state not in ("T", "t"):
                return False
    except OSError:
        return True  # gone: nothing left to wait for
    return True


def _lock_free(path: Path) -> bool:
    """Whether nobody holds the flock on ``path`` (taken and released at once if free)."""
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
    return True


def pause(device: SimDevice, tries: int = 200) -> None:
    """SIGSTOP one agent, but never inside its spool lock.

    An agent stopped while it holds state/spool.lock (inside spool.add) blocks every
    ``ctl pull``, which opens the spool under that lock, until the agent runs again: the
    pull hangs to its 120 s timeout. So stop, wait until all its threads are stopped, and if
    the lock is held, let it run a moment and try again.
    """
    process, lock = device.process, device.home.root / "state" / "spool.lock"
    for _ in range(tries):
        process.send_signal(signal.SIGSTOP)
        wait_until(lambda: _stopped(process.pid), timeout=5, poll=0.002)
        if _lock_free(lock):
            return
        process.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise RuntimeError(f"{device.spec.device_id}: the agent always held its spool lock")


@contextmanager
def paused(devices: Sequence[SimDevice]) -> Iterator[None]:
    """Pause the agent loops for the block (see :func:`pause`), SIGCONT after, even on error."""
    live = [d for d in devices if d.process.poll() is None]
    try:
        for device in live:
            pause(device)
        yield
    finally:
        resume_all(live)


def resume_all(devices: Sequence[SimDevice]) -> None:
    """SIGCONT every agent: a stopped process would not act on fleet.stop()'s SIGTERM."""
    for device in devices:
        if device.process.poll() is None:
            device.process.send_signal(signal.SIGCONT)


def spool_count(device: SimDevice) -> int:
    return sum(1 for _ in device.home.spool.glob("*.json"))


def wait_until(done: Callable[[], bool], timeout: float, poll: float = 0.2) -> float:
    """Seconds until ``done()``; raises TimeoutError after ``timeout``."""
    started = time.perf_counter()
    while not done():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"not done after {timeout:.0f} s")
        time.sleep(poll)
    return time.perf_counter() - started


# -- setup -----------------------------------------------------------------------------------

def build(workdir: Path, count: int, fps: float, rate: float) -> tuple[Bench, float]:
    """A project whose signing key signed the factory release, and a started fleet."""
    project = init_project(workdir / "project", admin="admin")
    fleet: SimulatedFleet | None = None
    try:
        key = load_or_create_signing_key(project.keys_dir)
        release, _ = make_release(workdir / "releases", "edge-1", key, seed=1)
        _pkey, public = client_key(workdir)
        tag = uuid.uuid4().hex[:6]  # unique ids: other fleets may advertise on this loopback
        specs = [SimDeviceSpec(f"b{tag}-{i + 1:03d}", seed=10 + i, fps=fps, random_rate=rate)
                 for i in range(count)]
        fleet = SimulatedFleet(workdir / "sim", key, release, specs, authorized_keys=[public])
        started = time.perf_counter()
        devices = fleet.start()
        seconds = time.perf_counter() - started
        bench = Bench(workdir, project, FleetContext.of(project),
                      actor_named(project.db, "admin"), fleet, devices,
                      Bootstrap(key_file=workdir / "id_ed25519"))
    except BaseException:
        if fleet is not None:
            fleet.stop()
        project.close()
        raise
    return bench, seconds


def wait_agents_ready(bench: Bench, timeout: float) -> float:
    """Seconds until every live agent wrote its status (model loaded, advertisement sent)."""
    def ready() -> bool:
        for uid, why in dead_agents(bench.devices).items():
            bench.fail(uid, "start", why)
        return all(d.home.status_path.exists() for d in bench.devices
                   if d.spec.device_id not in bench.failures)
    return wait_until(ready, timeout)


# -- 1. discovery ----------------------------------------------------------------------------

async def discover_all(wanted: set[str], timeout: float
                       ) -> tuple[float, float, dict[str, Sighting]]:
    """Browse until every wanted id resolved (or ``timeout``).

    Returns (seconds to the last one, seconds to the first one, sightings by uid).
    """
    complete = asyncio.Event()
    found: dict[str, Sighting] = {}
    first: list[float] = []

    def on_event(event: DiscoveryEvent) -> None:
        # Other fleets may advertise on this loopback: count only ours.
        if event.kind is EventKind.SEEN and event.uid in wanted and event.sighting:
            found[event.uid] = event.sighting
            if not first:
                first.append(time.perf_counter() - started)
            if len(found) == len(wanted):
                complete.set()

    started = time.perf_counter()
    discovery = Discovery([LOOPBACK], on_event)
    async with discovery:
        try:
            await asyncio.wait_for(complete.wait(), timeout)
        except asyncio.TimeoutError:
            pass  # the missing ones are reported by the caller
        seconds = time.perf_counter() - started
    return seconds, (first[0] if first else seconds), found


def measure_discovery(bench: Bench, repeats: int, gap: float,
                      timeout: float) -> dict[str, Sighting]:
    wanted = {uid for uid in bench.uids if uid not in bench.failures}
    samples: list[float] = []
    firsts: list[float] = []
    found: dict[str, Sighting] = {}
    for attempt in range(repeats):
        if attempt:
            # A responder multicasts a record at most once a second (RFC 6762 section 6):
            # without a pause the next browse would measure that rate limit. The first
            # browse runs right after the last agents announced themselves, and shows it.
            time.sleep(gap)
        seconds, first, found = asyncio.run(discover_all(wanted, timeout))
        samples.append(seconds)
        firsts.append(first)
    for uid in sorted(wanted - set(found)):
        bench.fail(uid, "discover", f"not resolved within {timeout:.0f} s")
    spread = (f"runs {', '.join(f'{x:.2f}' for x in samples)} s ({gap:g} s apart); "
              f"first id after {statistics.median(firsts):.2f} s (median)")
    bench.add(Row("discover all (mDNS)", len(wanted), "-", f"{statistics.median(samples):.2f}",
                  f"{len(found)}/{len(wanted)} found", spread))
    registry = DeviceRegistry(bench.project.db, bench.project.audit, bench.project.clock)
    started = time.perf_counter()
    new = registry.record_many(found.values())
    bench.add(Row("record sightings (record_many)", len(found), "-",
                  f"{time.perf_counter() - started:.3f}", "", f"{len(new)} new"))
    return found


# -- 2. enrollment ---------------------------------------------------------------------------

def enroll_all(bench: Bench, concurrency: int) -> None:
    targets = [d for d in bench.devices if d.spec.device_id not in bench.failures]

    def one(device: SimDevice) -> tuple[str, float, str | None]:
        started = time.perf_counter()
        try:
            enroll(bench.ctx, bench.admin, device.spec.device_id,
                   confirmed_fingerprint=device.endpoint.host_key_fingerprint,
                   address=device.endpoint.host, port=device.endpoint.port,
                   bootstrap=bench.bootstrap)
            return device.spec.device_id, time.perf_counter() - started, None
        except Exception as exc:  # one device's failure is its own line in the report
            return (device.spec.device_id, time.perf_counter() - started,
                    f"{type(exc).__name__}: {exc}")

    started = time.perf_counter()
    with CpuMeter(bench.devices) as cpu, ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="enroll") as pool:
        outcomes = list(pool.map(one, targets))
    seconds = time.perf_counter() - started
    for uid, _, error in outcomes:
        if error:
            bench.fail(uid, "enroll", error)
    ok = [s for _, s, error in outcomes if error is None]
    per_device = f"per device median {statistics.median(ok):.2f} s" if ok else "none enrolled"
    bench.add(Row("enroll all", len(targets), str(concurrency), f"{seconds:.2f}",
                  f"{len(ok) / seconds:.2f} devices/s", per_device, cpu.text()))


# -- 3. pull ---------------------------------------------------------------------------------

def enrolled(bench: Bench) -> list[SimDevice]:
    return [d for d in bench.devices if d.spec.device_id not in bench.failures]


def wait_spools(bench: Bench, at_least: int, timeout: float) -> float:
    def filled() -> bool:
        for uid, why in dead_agents(bench.devices).items():
            bench.fail(uid, "capture", why)  # a dead agent never fills its spool
        return all(spool_count(d) >= at_least for d in enrolled(bench))
    return wait_until(filled, timeout)


def pull_round(bench: Bench, concurrency: int,
               label: str) -> tuple[float, list[PullResult], CpuMeter]:
    """One timed pull of every enrolled device with the agents paused."""
    uids = [d.spec.device_id for d in enrolled(bench)]
    with paused(enrolled(bench)), CpuMeter(bench.devices) as cpu:
        started = time.perf_counter()
        results = pull_devices(bench.ctx, bench.admin, uids,
                               settings=PullSettings(concurrency=concurrency))
        seconds = time.perf_counter() - started
    for result in results:
        if result.error:
            bench.fail(result.uid, f"pull ({label})", result.error)
    return seconds, results, cpu


def pull_row(label: str, concurrency: int, seconds: float, results: list[PullResult],
             cpu: CpuMeter) -> Row:
    captures = sum(r.imported for r in results)
    mb = sum(r.bytes for r in results) / 2**20
    per_device = [r.seconds for r in results if not r.error]
    counts = [r.imported for r in results if not r.error]
    note = (f"{captures} captures ({min(counts, default=0)}-{max(counts, default=0)}/device), "
            f"{mb:.1f} MB, {mb / seconds:.1f} MB/s; per device median "
            f"{statistics.median(per_device) if per_device else 0:.2f} s")
    return Row(label, len(results), str(concurrency), f"{seconds:.2f}",
               f"{captures / seconds:.0f} captures/s", note, cpu.text())


def measure_pulls(bench: Bench, concurrency: int, at_least: int, timeout: float) -> None:
    # Drain first (untimed) so both timed pulls start from empty spools that refill at the
    # same rate for the same time: the same work per device, within a capture or two.
    pull_round(bench, concurrency, "drain")
    wait_spools(bench, at_least, timeout)
    seconds, results, cpu = pull_round(bench, 1, "sequential")
    bench.add(pull_row("pull all, baseline (sequential)", 1, seconds, results, cpu))
    wait_spools(bench, at_least, timeout)
    seconds, results, cpu = pull_round(bench, concurrency, "concurrent")
    bench.add(pull_row("pull all (pull_devices)", concurrency, seconds, results, cpu))


# -- 4. deploy -------------------------------------------------------------------------------

@dataclass
class RolloutTimes:
    """A timed rollout: total, per stage, stage sizes, and per-device step medians."""

    seconds: float
    stages: list[float]
    sizes: list[int]
    receive_s: float  # UPLOADING -> ACTIVATING: transfer, verify, install, self-test
    health_s: float  # ACTIVATING -> HEALTHY: waiting out the health window
    cpu: CpuMeter
    state: RolloutState
    not_reached: int  # devices of stages that never started (the rollout halted before)


def step_medians(bench: Bench, rollout_id: int) -> tuple[float, float]:
    """Median seconds per device of receive and health wait, from the audit trail."""
    with bench.project.db.read() as session:
        ids = set(session.scalars(select(Deployment.id).where(
            Deployment.rollout_id == rollout_id)))
        events = session.execute(select(AuditEvent.action, AuditEvent.at, AuditEvent.after).where(
            AuditEvent.action.in_(["deployment.uploading", "deployment.activating",
                                   "deployment.healthy"]))).all()
    at: dict[tuple[int, str], float] = {}
    for action, when, after in events:
        if after and after.get("deployment") in ids:
            at[(after["deployment"], action.split(".")[1])] = when.timestamp()

    def median_gap(first: str, second: str) -> float:
        gaps = [at[(i, second)] - at[(i, first)] for i in ids
                if (i, first) in at and (i, second) in at]
        return statistics.median(gaps) if gaps else float("nan")

    return median_gap("uploading", "activating"), median_gap("activating", "healthy")


def rollout(bench: Bench, version: str, seed: int, uids: Sequence[str],
            concurrency: int) -> RolloutTimes:
    """Register ``version``, roll it out to ``uids`` and check every device runs it."""
    key = load_or_create_signing_key(bench.ctx.keys_dir)
    folder, _ = make_release(bench.workdir / "releases", version, key, seed=seed)
    register_release(bench.ctx, bench.admin, folder)
    rollout_id = start_rollout(bench.ctx, bench.admin, version, targets=list(uids), bounds=BOUNDS)
    marks: list[float] = []

    def progress(step: Progress) -> None:
        # run_rollout reports once as each stage starts: the gaps are the stage times.
        marks.append(time.perf_counter())

    started = time.perf_counter()
    with CpuMeter(bench.devices) as cpu:
        state = run_rollout(bench.ctx, bench.admin, rollout_id, concurrency=concurrency,
                            progress=progress)
    ended = time.perf_counter()
    stage_times = [b - a for a, b in zip(marks, marks[1:] + [ended])]
    with bench.project.db.read() as session:
        rows = session.execute(
            select(Device.uid, Deployment.stage, Deployment.state, Deployment.detail,
                   Deployment.error)
            .join(Device, Device.id == Deployment.device_id)
            .where(Deployment.rollout_id == rollout_id)).all()
    sizes = [sum(1 for r in rows if r.stage == s) for s in range(len(stage_times))]
    not_reached = {r.uid for r in rows if r.stage >= len(stage_times)}
    for uid, _stage, dstate, detail, error in rows:
        if dstate is not DeploymentState.HEALTHY and uid not in not_reached:
            bench.fail(uid, f"deploy {version}", f"{dstate.value}: {error or detail}")
    for device in bench.devices:
        if device.spec.device_id in uids and device.spec.device_id not in not_reached:
            active = AgentHome(device.home.root).current.resolve().name
            if active != version:
                bench.fail(device.spec.device_id, f"deploy {version}", f"device runs {active}")
    return RolloutTimes(ended - started, stage_times, sizes, *step_medians(bench, rollout_id),
                        cpu, state, len(not_reached))


def measure_deploy(bench: Bench, concurrency: int, baseline_devices: int) -> None:
    uids = [d.spec.device_id for d in enrolled(bench)]
    times = rollout(bench, "edge-2", 2, uids, concurrency)
    seconds = times.seconds
    floor = len(times.stages) * BOUNDS.window_s
    healthy = sum(1 for uid in uids if uid not in bench.failures) - times.not_reached
    halted = (f"rollout {times.state.value}, {times.not_reached} devices never reached; "
              if times.state is not RolloutState.COMPLETED else "")
    bench.add(Row("deploy to all (rollout)", len(uids), str(concurrency),
                  f"{seconds:.2f}", f"{healthy}/{len(uids)} healthy on edge-2",
                  halted +
                  f"floor {len(times.stages)} stages x {BOUNDS.window_s:.0f} s window = "
                  f"{floor:.0f} s; overhead {seconds - floor:.1f} s; per device median: "
                  f"receive {times.receive_s:.1f} s, health wait {times.health_s:.1f} s",
                  times.cpu.text()))
    for number, (stage_s, size) in enumerate(zip(times.stages, times.sizes)):
        waves = -(-size // concurrency)
        bench.add(Row(f"  stage {number + 1}", size, str(concurrency), f"{stage_s:.2f}",
                      f"{size / stage_s:.2f} devices/s",
                      f"{waves} wave(s) of <= {concurrency}"))
    subset = [uid for uid in uids if uid not in bench.failures][:baseline_devices]
    if not subset:
        return
    base = rollout(bench, "edge-3", 3, subset, 1)
    per_device = base.seconds / len(subset)
    bench.add(Row("deploy baseline (sequential subset)", len(subset), "1",
                  f"{base.seconds:.2f}", f"{per_device:.2f} s/device",
                  f"receive {base.receive_s:.1f} s, health wait {base.health_s:.1f} s "
                  f"(medians); all {len(uids)} one by one would take "
                  f"~{per_device * len(uids):.0f} s, {per_device * len(uids) / seconds:.1f}x "
                  "the concurrent rollout", base.cpu.text()))


# -- report ----------------------------------------------------------------------------------

def print_table(rows: Sequence[Row]) -> None:
    print("| phase | devices | concurrency | seconds | rate | notes "
          "| CPU s: this process / device commands / agents |")
    print("|---|---:|---:|---:|---|---|---|")
    for r in rows:
        print(f"| {r.phase} | {r.devices} | {r.concurrency} | {r.seconds} | {r.rate} | {r.note} "
              f"| {r.cpu} |")


def print_failures(failures: dict[str, str]) -> None:
    print(f"\nfailed devices: {len(failures)}")
    for uid, why in sorted(failures.items()):
        print(f"- {uid}: {why}")


def run(bench: Bench, args: argparse.Namespace, start_s: float) -> None:
    n = len(bench.devices)
    bench.add(Row("fleet start (SSH servers + spawn)", n, "-", f"{start_s:.2f}",
                  f"{n / start_s:.1f} devices/s",
                  "one device after another, while the agents already spawned start up"))
    ready_s = wait_agents_ready(bench, args.timeout)
    cpu_before, cpu_at = agent_cpu_s(bench.devices), time.perf_counter()
    bench.add(Row("agents ready (all status.json)", n, "-", f"{ready_s:.2f}", "",
                  f"after fleet start; agents RSS {agent_rss_mb(bench.devices):.0f} MiB"))
    measure_discovery(bench, args.repeats, args.discovery_gap, args.timeout)
    enroll_all(bench, args.concurrency)
    measure_pulls(bench, args.concurrency, args.captures, args.timeout)
    measure_deploy(bench, args.deploy_concurrency or args.concurrency, args.baseline_devices)
    cpu_s = agent_cpu_s(bench.devices) - cpu_before
    wall = time.perf_counter() - cpu_at
    bench.add(Row("agents at the end", n, "-", "", f"RSS {agent_rss_mb(bench.devices):.0f} MiB",
                  f"{agent_cpu_s(bench.devices):.0f} CPU s in all; {cpu_s / wall:.2f} "
                  f"cores on average since ready (agents paused during pulls)"))


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop the fleet and remove files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--deploy-concurrency", type=int, default=None,
                        help="concurrency of the rollout (default: --concurrency)")
    parser.add_argument("--quick", action="store_true", help="5 devices, to try it out")
    parser.add_argument("--fps", type=float, default=2.0, help="frames/s per device")
    parser.add_argument("--rate", type=float, default=0.5,
                        help="random capture rate per frame (low-confidence frames add more)")
    parser.add_argument("--captures", type=int, default=20,
                        help="captures per device before each timed pull")
    parser.add_argument("--repeats", type=int, default=3, help="discovery repeats (median)")
    parser.add_argument("--discovery-gap", type=float, default=2.0,
                        help="seconds between discovery repeats")
    parser.add_argument("--baseline-devices", type=int, default=5,
                        help="devices in the sequential deploy baseline (0: skip)")
    parser.add_argument("--timeout", type=float, default=180.0, help="per wait, seconds")
    parser.add_argument("--dir", default=None, help="where to work (default: a temp folder)")
    args = parser.parse_args()
    if args.quick:
        args.devices = 5

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="edgeloop-fleet-", dir=args.dir))
    print(f"machine: {machine()}")
    command = [sys.executable, "-m", "bench.fleet_scale", *sys.argv[1:]]
    print(f"command: {shlex.join(command)}")
    print(f"devices {args.devices}, concurrency {args.concurrency} (rollout "
          f"{args.deploy_concurrency or args.concurrency}), {args.fps:g} fps, "
          f"random capture rate {args.rate:g}, {args.captures} captures/device before a pull, "
          f"health window {BOUNDS.window_s:g} s\n", flush=True)
    started = time.perf_counter()
    bench: Bench | None = None
    try:
        bench, start_s = build(workdir, args.devices, args.fps, args.rate)
        run(bench, args, start_s)
    finally:
        if bench is not None:
            resume_all(bench.devices)
            bench.fleet.stop()
            bench.project.close()
            print_table(bench.rows)
            print_failures(bench.failures)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
