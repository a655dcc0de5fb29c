"""``edgeloop simulate``: a fleet of simulated devices on this machine, until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import echo_table
from app.core.progress import Progress
from app.fleet.agent.manifest import verify_release
from app.fleet.signing import load_or_create_signing_key
from app.fleet.simulator import SimDeviceSpec, SimulatedFleet, default_specs


def _print_progress(p: Progress) -> None:
    if p.stage == "train":
        typer.echo(f"  training release 1: {p.message}", err=True)
    else:
        typer.echo(f"  {p.message}", err=True)


def _specs(devices: int, schedules: list[str], fps: float) -> list[SimDeviceSpec]:
    specs = default_specs(devices, fps=fps)
    by_id = {s.device_id: s for s in specs}
    for item in schedules:
        target, sep, text = item.partition("=")
        if not sep:
            specs = [SimDeviceSpec(s.device_id, s.seed, item, s.fps) for s in specs]
            by_id = {s.device_id: s for s in specs}
            continue
        if target not in by_id:
            raise typer.BadParameter(f"--schedule {item!r}: no device {target!r} "
                                     f"(devices are {', '.join(by_id)})")
        s = by_id[target]
        by_id[target] = SimDeviceSpec(s.device_id, s.seed, text, s.fps)
        specs = [by_id[s.device_id] for s in specs]
    return specs


def simulate(
    devices: Annotated[int, typer.Option("--devices", "-n", min=1, max=200)] = 3,
    directory: Annotated[Path, typer.Option("--dir", help="Where the devices' homes live.")] = Path(".edgeloop-sim"),
    schedule: Annotated[
        list[str],
        typer.Option(help="Drift schedule, e.g. 'none@0,lighting@120' for all devices, or "
                          "'sim-02=blur:0.7@60' for one. Repeatable."),
    ] = [],  # noqa: B006 (typer reads the default)
    fps: Annotated[float, typer.Option(help="Frames per second per device.")] = 2.0,
    authorize: Annotated[
        list[Path], typer.Option(help="Public key file (OpenSSH) allowed to log in. Repeatable.")
    ] = [],  # noqa: B006
) -> None:
    """Run N simulated devices (agent + SSH server + mDNS on loopback) until Ctrl-C."""
    directory = directory.resolve()
    key = load_or_create_signing_key(directory / "keys")
    # Training the first release needs torch, seconds to import: only this command loads it.
    from app.fleet.first_release import VERSION, build_first_release

    release_dir = directory / "releases" / VERSION
    if release_dir.exists():
        verify_release(release_dir, [key.public_key()])  # reuse it, if it is really ours
    else:
        typer.echo("Building release 1 (trained on generated scenes; CPU, a few minutes)...",
                   err=True)
        build_first_release(release_dir, key, progress=_print_progress)
    fleet = SimulatedFleet(directory, key, release_dir, _specs(devices, schedule, fps),
                           authorized_keys=[p.read_text().strip() for p in authorize])
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with fleet:
        echo_table(
            ["DEVICE", "SSH", "HOST KEY", "AGENT PID", "SCHEDULE"],
            [[d.spec.device_id, f"{d.endpoint.host}:{d.endpoint.port}",
              d.endpoint.host_key_fingerprint, d.process.pid, d.spec.schedule or "-"]
             for d in fleet.devices],
        )
        typer.echo(f"ready: {len(fleet.devices)} devices; Ctrl-C stops them", err=True)
        while not stop.wait(1.0):
            dead = [d.spec.device_id for d in fleet.devices if d.process.poll() is not None]
            if dead:
                typer.echo(f"agent(s) exited: {', '.join(dead)}; see their agent.log", err=True)
                break
    typer.echo("All simulated devices stopped.", err=True)
