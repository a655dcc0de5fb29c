"""Pulling captures from one device on loopback: EdgeLoop's pull against scp and rsync.

Every tool talks to the same real OpenSSH sshd (a private one on a loopback port, started
with ``tests/support/sshd.py``), which fronts an agent home whose spool the bench fills
itself (no agent loop runs). Two workloads: many small captures (a JPEG of about 20 KB and
its JSON sidecar each) and one large capture (a noise PNG that really decodes). The tools:

- ``edgeloop``: ``DevicePuller.pull`` in this process: connect, tar stream, sha256 and decode
  checks, blobs written with fsync, the database commit and the ack that makes the device
  delete what was committed. A fresh copy of an enrolled, empty project each run.
- ``scp``: ``scp -r -q`` of the spool folder (OpenSSH client, strict host key checking).
- ``rsync``: ``rsync -a -e "ssh ..."`` of the spool folder into an empty folder.
- ``tar``: ``ssh ... tar cf - -C SPOOL . | tar xf -``, a floor for one stream over OpenSSH.
- ``cli``: ``edgeloop pull`` as a whole process (imports and project open included): what a
  user at the command line waits for.
- ``login``: ``ssh HOST true``, the fixed cost every OpenSSH tool pays before any data.

Before every timed run the device spool is restored (hard links to a master copy, so
restoring dirties no data pages), the destination is new and empty, and ``sync`` flushes
what earlier runs wrote: EdgeLoop's ``syncfs`` would otherwise pay for the previous tool's
writes. What a run wrote stays until the end (a few GB): deleting thousands of files between
runs made the next runs' file creation up to 15x slower on a disk mounted with ``discard``
(measured with plain ``tar x``, no SSH involved). scp, rsync and tar do not fsync what they
write; EdgeLoop does, and that is counted. The tools run in a rotating order in each repeat;
the table gives medians.

    .venv/bin/python -m bench.transfer                 # 2,000 x 20 KB and 1 x 50 MB, 5 repeats
    .venv/bin/python -m bench.transfer --quick         # 200 x 20 KB and 1 x 5 MB, 1 repeat
    .venv/bin/python -m bench.transfer --profile       # also cProfile one EdgeLoop pull each
    .venv/bin/python -m bench.transfer --tools edgeloop,rsync --small 2000 --large-mb 0
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import math
import os
import pstats
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import paramiko
from sqlalchemy import func, select

from app.core.models import Capture
from app.core.progress import no_progress
from app.core.project import init_project, open_project
from app.core.users import actor_named
from app.fleet.agent.home import AgentConfig, AgentHome
from app.fleet.agent.spool import Spool
from app.fleet.capture_check import image_decodes
from app.fleet.context import FleetContext
from app.fleet.enrollment import enroll
from app.fleet.pull import DEFAULT_BATCH, DevicePuller, PullResult, PullSettings
from app.fleet.ssh import WORKSTATION_KEY, fingerprint
from bench.common import machine
from tests.support.sshd import OpenSSHServer, sshd_available, start_sshd

BIN = Path(sys.executable).parent
UID = "bench-1"
ADMIN = "admin"
TOOLS = ("edgeloop", "scp", "rsync", "tar", "cli", "login")
LABELS = {
    "edgeloop": "EdgeLoop `DevicePuller.pull`",
    "scp": "`scp -r`",
    "rsync": "`rsync -a`",
    "tar": "`ssh tar c \\| tar x` (reference)",
    "cli": "`edgeloop pull` CLI process (reference)",
    "login": "`ssh HOST true`: login only, no data (floor)",
}
MB = 1_000_000


# -- what goes into the spool ---------------------------------------------------------------
def sidecar(seq: int) -> dict[str, object]:
    """The fields the agent writes besides id/file/size/sha256 (Spool.add adds those)."""
    return {"device_id": UID, "captured_at": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(),
            "reason": "random_sample", "prediction": ["ok", "scratch"][seq % 2],
            "confidence": 0.5, "model_version": "edge-1"}


def camera_frame(seed: int, height: int) -> np.ndarray:
    """A 4:3 frame with smooth structure plus sensor noise: compresses like a photo, not like
    flat colour or pure noise, and every seed gives different bytes (no dedup in the store)."""
    rng = np.random.default_rng(seed)
    width = height * 4 // 3
    coarse = rng.integers(0, 256, (max(2, height // 24), max(2, width // 24), 3), dtype=np.uint8)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    noisy = smooth + rng.normal(0, 6, smooth.shape).astype(np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return data.tobytes()


def frame_height_for(target_bytes: int) -> int:
    """The frame height whose JPEG is closest to ``target_bytes`` (bisection on seed 0)."""
    low, high = 8, 4096
    while high - low > 1:
        middle = (low + high) // 2
        if len(encode_jpeg(camera_frame(0, middle))) < target_bytes:
            low = middle
        else:
            high = middle
    return high


def small_images(count: int, height: int) -> Iterator[tuple[bytes, str]]:
    for seq in range(count):
        yield encode_jpeg(camera_frame(seq, height)), "jpg"


def png_side(megabytes: float) -> int:
    return max(8, round(math.sqrt(megabytes * MB / 3)))


def large_png(megabytes: float) -> bytes:
    """A square noise PNG of about ``megabytes`` MB: noise does not compress, so the file
    is as big as the pixels, and it must decode for the pull's check to accept it."""
    side = png_side(megabytes)
    pixels = np.random.default_rng(7).integers(0, 256, (side, side, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    png = data.tobytes()
    if not image_decodes(png):  # the same check capture_check applies on import
        raise RuntimeError("the large PNG does not pass capture_check.image_decodes")
    return png


# -- the device behind OpenSSH ----------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """A spool's files kept aside (``master``), with the spool state that goes with them."""

    name: str
    detail: str
    master: Path
    state: bytes
    captures: int
    files: int
    bytes: int


@dataclass(frozen=True)
class Rig:
    """The sshd, the device home behind it, and an enrolled empty project to copy."""

    root: Path
    sshd: OpenSSHServer
    home: AgentHome
    template: Path
    key: Path
    known_hosts: Path

    @property
    def host(self) -> str:
        return f"{self.sshd.user}@127.0.0.1"

    def ssh_options(self) -> list[str]:
        """Client options every OpenSSH tool gets: this key only, this host key only, and
        no user config (``-F /dev/null``) that could change ciphers or multiplexing."""
        return ["-F", "/dev/null", "-i", str(self.key), "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "LogLevel=ERROR"]

    def ssh(self) -> list[str]:
        return ["ssh", "-p", str(self.sshd.port), *self.ssh_options()]


def host_fingerprint(public_line: str) -> str:
    key = paramiko.Ed25519Key(data=base64.b64decode(public_line.split()[1]))
    return fingerprint(key)


def start_rig(root: Path, stack: ExitStack, quota_mb: float) -> Rig:
    """Start sshd, make the device home, and enroll it in a template project."""
    home = AgentHome(root / "device")
    sshd = start_sshd(root / "sshd", extra_config=[
        f"SetEnv EDGELOOP_AGENT_HOME={home.root} PATH={BIN}:/usr/bin:/bin"])
    stack.callback(sshd.stop)  # by the Popen handle, i.e. by PID
    home.create(AgentConfig(device_id=UID, authorized_keys=str(sshd.authorized_keys),
                            interfaces=["127.0.0.1"], quota_mb=quota_mb))
    template = root / "template"
    project = init_project(template, admin=ADMIN)
    try:
        ctx = FleetContext.of(project)
        # The workstation key is authorized up front, so enrollment needs no bootstrap key,
        # and scp/rsync log in with the very key EdgeLoop uses.
        sshd.authorized_keys.write_text(ctx.identity.public_line + "\n")
        enroll(ctx, actor_named(project.db, ADMIN), UID,
               confirmed_fingerprint=host_fingerprint(sshd.host_public_key),
               address="127.0.0.1", port=sshd.port, user=sshd.user)
    finally:
        project.close()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line() + "\n")
    return Rig(root, sshd, home, template, template / "keys" / WORKSTATION_KEY, known_hosts)


def build_workload(root: Path, name: str, detail: str,
                   images: Iterable[tuple[bytes, str]]) -> Workload:
    """Fill a master spool with Spool.add (the agent's own format: sidecars with sha256)."""
    folder = root / "masters" / name.replace(" ", "_")
    state = folder.with_suffix(".state.json")
    spool = Spool(folder, state, quota_bytes=1 << 50)
    captures = 0
    for seq, (data, extension) in enumerate(images):
        spool.add(data, extension, sidecar(seq))
        captures += 1
    files = sorted(folder.iterdir())
    return Workload(name, detail, folder, state.read_bytes(), captures, len(files),
                    sum(p.stat().st_size for p in files))


def load_spool(rig: Rig, workload: Workload) -> None:
    """Put the workload into the device spool as if just captured (EdgeLoop's ack deletes
    it). Hard links: no data is copied, so nothing is left dirty to flush in a timed run."""
    shutil.rmtree(rig.home.spool, ignore_errors=True)
    shutil.rmtree(rig.home.quarantine, ignore_errors=True)
    rig.home.spool.mkdir()
    for path in workload.master.iterdir():
        os.link(path, rig.home.spool / path.name)
    (rig.home.state / "spool.json").write_bytes(workload.state)


def settle() -> None:
    """Flush earlier runs' writes so that no run pays for another's (syncfs is global)."""
    os.sync()


# -- the tools --------------------------------------------------------------------------------
def check_files(dest: Path, workload: Workload) -> None:
    files = [p for p in dest.rglob("*") if p.is_file()]
    got = sum(p.stat().st_size for p in files)
    if len(files) != workload.files or got != workload.bytes:
        raise RuntimeError(f"{dest}: {len(files)} files, {got} bytes; expected "
                           f"{workload.files} files, {workload.bytes} bytes")


def run_command(argv: list[str]) -> float:
    """Seconds ``argv`` took; its stderr in the error if it fails."""
    settle()
    start = time.perf_counter()
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return elapsed


def fresh_project(rig: Rig, dest: Path) -> Path:
    """A copy of the enrolled, empty template: new database and blob store, cursor unset."""
    path = dest / "project"
    shutil.copytree(rig.template, path)
    return path


def check_pull(result: PullResult, workload: Workload) -> None:
    if result.error or result.imported != workload.captures or result.quarantined:
        raise RuntimeError(f"EdgeLoop pull of {workload.name}: {result}")


def pull_once(rig: Rig, workload: Workload, dest: Path, batch: int,
              profiler: cProfile.Profile | None = None,
              batches: list[float] | None = None) -> float:
    """One timed EdgeLoop pull into a fresh project; ``batches`` gets the second at which
    each batch was acknowledged (through the puller's progress callback)."""
    project = open_project(fresh_project(rig, dest))
    try:
        ctx, admin = FleetContext.of(project), actor_named(project.db, ADMIN)
        settle()
        if profiler is not None:
            profiler.enable()
        start = time.perf_counter()
        progress = (lambda _: batches.append(time.perf_counter() - start)) \
            if batches is not None else no_progress
        result = DevicePuller(ctx, admin, PullSettings(batch=batch), progress).pull(UID)
        elapsed = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
    finally:
        project.close()
    check_pull(result, workload)
    if any(rig.home.spool.iterdir()):
        raise RuntimeError("the device kept captures the pull acknowledged")
    return elapsed


def run_edgeloop(rig: Rig, workload: Workload, dest: Path, batch: int) -> float:
    return pull_once(rig, workload, dest, batch)


def run_cli(rig: Rig, workload: Workload, dest: Path, batch: int) -> float:
    project = fresh_project(rig, dest)
    elapsed = run_command([str(BIN / "edgeloop"), "pull", "--project", str(project),
                           "--device", UID, "--user", ADMIN, "--batch", str(batch)])
    with open_project(project) as opened, opened.db.read() as session:
        count = session.scalar(select(func.count()).select_from(Capture))
    if count != workload.captures:
        raise RuntimeError(f"edgeloop pull imported {count} of {workload.captures}")
    return elapsed


def run_scp(rig: Rig, workload: Workload, dest: Path, batch: int) -> float:
    elapsed = run_command(["scp", "-r", "-q", "-P", str(rig.sshd.port), *rig.ssh_options(),
                           f"{rig.host}:{rig.home.spool}", str(dest)])
    check_files(dest, workload)
    return elapsed


def run_rsync(rig: Rig, workload: Workload, dest: Path, batch: int) -> float:
    elapsed = run_command(["rsync", "-a", "-e", shlex.join(rig.ssh()),
                           f"{rig.host}:{rig.home.spool}/", f"{dest}/"])
    check_files(dest, workload)
    return elapsed


def run_tar(rig: Rig, workload: Workload, dest: Path, batch: int) -> float:
    remote = shlex.join(["tar", "cf", "-", "-C", str(rig.home.spool), "."])
    settle()
    start = time.perf_counter()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        producer = subprocess.Popen([*rig.ssh(), rig.host, remote], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE)
        processes.append(producer)
        processes.append(subprocess.Popen(["tar", "xf", "-", "-C", str(dest)],
                                          stdin=producer.stdout))
        assert producer.stdout is not None
        producer.stdout.close()  # tar x holds the pipe now; ssh sees EPIPE if it dies
        statuses = [process.wait() for process in reversed(processes)]
    finally:
        for process in processes:  # only after an error or Ctrl-C are any still running
            if process.poll() is None:
                process.kill()
                process.wait()
    elapsed = time.perf_counter() - start
    if any(statuses):
        raise RuntimeError(f"ssh tar | tar x exited {statuses}")
    check_files(dest, workload)
    return elapsed


def run_login(rig: Rig, workload: Workload, dest: Path, batch: int) -> float:
    """What any OpenSSH tool pays before the first byte: process start, handshake, auth."""
    return run_command([*rig.ssh(), rig.host, "true"])


RUNNERS: dict[str, Callable[[Rig, Workload, Path, int], float]] = {
    "edgeloop": run_edgeloop, "scp": run_scp, "rsync": run_rsync, "tar": run_tar, "cli": run_cli,
    "login": run_login,
}


def one_run(rig: Rig, workload: Workload, tool: str, batch: int) -> float:
    """Restore the spool and time ``tool`` into a new empty folder. The folder is kept until
    the temp folder goes: freeing blocks mid-run slows the next run (see the docstring)."""
    load_spool(rig, workload)
    return RUNNERS[tool](rig, workload, Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=rig.root)),
                         batch)


def measure(rig: Rig, workload: Workload, tools: list[str], repeats: int, warmup: int,
            batch: int) -> dict[str, list[float]]:
    """Seconds per tool; the order rotates each repeat so that drift hits every tool alike."""
    for _ in range(warmup):
        for tool in tools:
            one_run(rig, workload, tool, batch)
    samples: dict[str, list[float]] = {tool: [] for tool in tools}
    for repeat in range(repeats):
        shift = repeat % len(tools)
        for tool in tools[shift:] + tools[:shift]:
            samples[tool].append(one_run(rig, workload, tool, batch))
            print(f"  {workload.name}: {tool} run {repeat + 1}: {samples[tool][-1]:.3f} s",
                  file=sys.stderr, flush=True)
    return samples


# Functions of the pull whose cumulative time tells where it goes (cProfile sees the main
# thread only; its waits for the network show up inside these as lock waits).
PHASES = (
    ("ssh.py", "connect", "connect: TCP, SSH handshake, host key, auth"),
    ("ssh.py", "open_channel", "open the exec channels (one per batch)"),
    ("pull.py", "_members", "receive and parse the tar stream, checks included "
                            "(waits for the device)"),
    ("capture_check.py", "check_capture", "  checks: size, sha256, decode, sidecar fields"),
    ("capture_check.py", "image_decodes", "    of which the decode check"),
    ("pull.py", "_commit", "commit: blobs, then one transaction"),
    ("blobs.py", "put_many", "  blob writes and two syncfs"),
    ("pull.py", "_acknowledge", "acknowledge: the device deletes, the agent exits"),
)


def phase_table(stats: pstats.Stats, total: float) -> str:
    """Cumulative seconds of the PHASES functions (``stats`` with its dirs stripped)."""
    seconds: dict[tuple[str, str], float] = {}
    raw = stats.stats  # type: ignore[attr-defined]
    for (file, _, name), (_, _, _, cumulative, _) in raw.items():
        seconds[file, name] = seconds.get((file, name), 0.0) + cumulative
    lines = [f"  {label:<74} {seconds.get((file, name), 0.0):7.3f} s"
             for file, name, label in PHASES]
    return "\n".join(lines + [f"  {'the whole pull':<74} {total:7.3f} s"])


def profile_pull(rig: Rig, workload: Workload, batch: int, top: int) -> str:
    """One more EdgeLoop pull under cProfile: where the workstation's time goes."""
    profiler = cProfile.Profile()
    batches: list[float] = []
    load_spool(rig, workload)
    elapsed = pull_once(rig, workload, Path(tempfile.mkdtemp(prefix="profile-", dir=rig.root)),
                        batch, profiler, batches)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    acked = ", ".join(f"{t:.3f}" for t in batches)
    return (f"Profile of one more EdgeLoop pull of {workload.name} ({elapsed:.3f} s with "
            f"cProfile on); batches acknowledged at {acked} s:\n"
            f"{phase_table(stats, elapsed)}\n\nTop {top} functions by own time:\n"
            f"{out.getvalue().strip()}")


# -- the report -------------------------------------------------------------------------------
def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def versions() -> str:
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    rsync = subprocess.run(["rsync", "--version"], capture_output=True, text=True)
    return f"{ssh}; {rsync.stdout.splitlines()[0].strip()}"


def table(results: list[tuple[Workload, dict[str, list[float]]]]) -> str:
    lines = ["| workload | tool | median s | min-max s | MB/s | EdgeLoop time / this time |",
             "| --- | --- | --- | --- | --- | --- |"]
    for workload, samples in results:
        ours = statistics.median(samples["edgeloop"]) if "edgeloop" in samples else None
        for tool, values in samples.items():
            median = statistics.median(values)
            ratio = f"{ours / median:.2f}" if ours else "-"
            name = f"**{LABELS[tool]}**" if tool == "edgeloop" else LABELS[tool]
            speed = "-" if tool == "login" else f"{workload.bytes / MB / median:.1f}"
            lines.append(f"| {workload.name} | {name} | {median:.3f} | {min(values):.3f}-"
                         f"{max(values):.3f} | {speed} | {ratio} |")
    return "\n".join(lines)


def verdict(results: list[tuple[Workload, dict[str, list[float]]]],
            small_name: str, large_name: str) -> list[str]:
    """The issue's two goals, judged on the medians."""
    lines = []
    for workload, samples in results:
        if "edgeloop" not in samples:
            continue
        ours = statistics.median(samples["edgeloop"])
        if workload.name == small_name and "rsync" in samples:
            theirs = statistics.median(samples["rsync"])
            met = "MET" if ours < theirs else "MISSED"
            lines.append(f"- Small files faster than rsync: {met}: EdgeLoop {ours:.3f} s vs "
                         f"rsync {theirs:.3f} s (EdgeLoop takes {ours / theirs:.2f}x "
                         "rsync's time).")
        if workload.name == large_name and "scp" in samples:
            theirs = statistics.median(samples["scp"])
            share = theirs / ours
            met = "MET" if share >= 0.8 else "MISSED"
            lines.append(f"- Large file at >= 80% of scp's speed: {met}: EdgeLoop runs at "
                         f"{share:.0%} of scp's speed ({ours:.3f} s vs {theirs:.3f} s).")
    return lines


# -- main -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.transfer",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000, help="small captures (0: skip)")
    parser.add_argument("--small-kb", type=float, default=20.0, help="JPEG size of each, KB")
    parser.add_argument("--large-mb", type=float, default=50.0,
                        help="size of the one large PNG capture, MB (0: skip)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds of every tool")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help=f"comma-separated, from {','.join(TOOLS)}")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help="EdgeLoop's captures per batch (PullSettings.batch)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one EdgeLoop pull of each workload")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temp folder goes (default: the system's temp folder); "
                             "blobs are fsynced there, so its disk matters")
    parser.add_argument("--quick", action="store_true",
                        help="200 small, 5 MB large, 1 repeat, no warm-up (for development)")
    args = parser.parse_args(argv)
    if args.quick:
        args.small, args.large_mb, args.repeats, args.warmup = 200, 5.0, 1, 0
    args.tools = [t for t in args.tools.split(",") if t]
    unknown = set(args.tools) - set(TOOLS)
    if unknown or not args.tools or args.repeats < 1:
        parser.error(f"--tools: unknown {sorted(unknown)}" if unknown else
                     "need at least one tool and one repeat")
    return args


def check_space(root: Path, megabytes: float) -> None:
    """Every run's output is kept until the end; refuse to start without room for it."""
    free = shutil.disk_usage(root).free / MB
    if free < 1.5 * megabytes:
        raise SystemExit(f"{root}: {free:,.0f} MB free, the runs keep about {megabytes:,.0f} MB "
                         "until the end; free some space or use --workdir")


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so sshd is stopped and the temp folder removed."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not sshd_available() or not all(shutil.which(t) for t in ("ssh", "scp", "rsync", "tar")):
        print("needs OpenSSH server and client, rsync and tar "
              "(apt-get install openssh-server openssh-client rsync)", file=sys.stderr)
        return 2
    stop_on_sigterm()
    command = shlex.join([Path(sys.executable).relative_to(Path.cwd()).as_posix()
                          if Path(sys.executable).is_relative_to(Path.cwd()) else sys.executable,
                          "-m", "bench.transfer", *(sys.argv[1:] if argv is None else argv)])
    small_name = f"{args.small:,} x {args.small_kb:g} KB"
    large_name = f"1 x {args.large_mb:g} MB"
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="edgeloop-transfer-", dir=args.workdir, ignore_cleanup_errors=True)))
        payload_mb = args.small * args.small_kb / 1000 + args.large_mb
        check_space(root, payload_mb * len(args.tools) * (args.repeats + args.warmup + 2))
        rig = start_rig(root, stack, quota_mb=max(1024.0, 4 * payload_mb))
        workloads = []
        if args.small:
            height = frame_height_for(int(args.small_kb * 1000))
            workloads.append(build_workload(
                root, small_name, f"JPEG {height * 4 // 3}x{height} q90, smooth + noise",
                small_images(args.small, height)))
        if args.large_mb:
            side = png_side(args.large_mb)
            workloads.append(build_workload(root, large_name, f"PNG {side}x{side}x3 noise",
                                            [(large_png(args.large_mb), "png")]))
        load_before = load_average()
        results = []
        for workload in workloads:
            print(f"measuring {workload.name}: {workload.files} files, "
                  f"{workload.bytes / MB:.1f} MB", file=sys.stderr, flush=True)
            results.append((workload, measure(rig, workload, args.tools, args.repeats,
                                              args.warmup, args.batch)))
        profiles = [profile_pull(rig, w, args.batch, args.profile_top)
                    for w in workloads if args.profile]
        print(f"Command: `{command}`")
        print(f"Machine: {machine()}")
        print(f"Tools: {versions()}; sshd on 127.0.0.1:{rig.sshd.port}; temp folder {root}")
        print(f"Runs: {args.repeats} timed (median), {args.warmup} warm-up round(s); "
              f"EdgeLoop batch {args.batch}; sizes count images and sidecars, MB = 10^6 bytes")
        for w in workloads:
            print(f"Workload {w.name}: {w.captures} captures, {w.files} files, "
                  f"{w.bytes / MB:.1f} MB ({w.detail})")
        print(f"Load average (1 min) before measuring: {load_before}; after: {load_average()} "
              f"(this machine has {os.cpu_count()} cores; other work may have been running)")
        print()
        print(table(results))
        print()
        print("\n".join(verdict(results, small_name, large_name)))
        for text in profiles:
            print()
            print(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # main's ExitStack has stopped sshd and removed the temp folder
        print("interrupted; sshd stopped and the temp folder removed", file=sys.stderr)
        sys.exit(130)
