"""``edgeloop devices list|discover|install-agent|enroll|forget|health|quarantine``: finding,
equipping, trusting and watching the fleet's devices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.longwork import cancel_on_ctrl_c, describe, long_work
from app.cli.common import (
    DbOpt, ProjectOpt, UserOpt, acting_user, echo_table, format_age, format_time, open_from_cli,
)
from app.core.errors import InvalidInput
from app.core.progress import Progress
from app.core.roles import Permission, authorize
from app.fleet.agent.cli import DEFAULT_HOME
from app.fleet.agent_install import (
    DEFAULT_BIN_DIR, DEFAULT_PREFIX, DEFAULT_UNIT_DIR, DEFAULT_UPLOAD_DIR, InstallOptions,
    InstallResult, InstallTarget, install_agent, pinned_fingerprint,
)
from app.fleet.agent_unit import check_device_id
from app.fleet.context import FleetContext
from app.fleet.discovery import Sighting, discover_sync
from app.fleet.enrollment import DEFAULT_SSH_USER, Bootstrap, enroll, forget, probe
from app.fleet.health import HealthReport, poll_fleet
from app.fleet.health_watch import WatchRound, watch_fleet
from app.fleet.registry import DeviceRegistry
from app.fleet.summaries import device_rows, quarantined_captures

devices_app = typer.Typer(help="Discover, enroll and watch edge devices.", no_args_is_help=True)

UidArg = Annotated[str, typer.Argument(metavar="UID", help="The device's id.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@devices_app.command("list")
def list_(project: ProjectOpt = Path("."), db: DbOpt = None, user: UserOpt = None) -> None:
    """List the project's devices: enrollment, health, address, model and captures."""
    with open_from_cli(project, db) as p:
        acting_user(p, user)
        rows, now = device_rows(p.db), p.clock()
    if not rows:
        typer.echo("No devices yet; `edgeloop devices discover` finds them on the network.")
        return
    echo_table(
        ["DEVICE", "NAME", "STATE", "HEALTH", "ADDRESS", "MODEL", "INSTALL", "LAST SEEN",
         "CAPTURES", "QUARANTINED"],
        [[r.uid, r.name, r.enrollment_text, r.health_text,
          f"{r.address}:{r.port}" if r.address and r.port else "-", r.model_version or "-",
          r.install_status or "-", format_age(r.last_seen, now), r.captures, r.quarantined]
         for r in rows],
    )


@devices_app.command("discover")
def discover(
    interface: Annotated[
        list[str],
        typer.Option("--interface", "-i", metavar="IP",
                     help="IPv4 address of the interface to listen on (repeatable). The default "
                          "finds only devices on this machine (simulated ones); on a real "
                          "network pass the address of the workstation's LAN interface."),
    ] = ["127.0.0.1"],  # noqa: B006 (typer reads the default)
    seconds: Annotated[float, typer.Option(min=0.5, help="How long to listen.")] = 3.0,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Listen for device advertisements (mDNS) and record what answered as discovered."""
    with open_from_cli(project, db) as p:
        authorize(p.db, p.audit, acting_user(p, user), Permission.MANAGE_DEVICES, "discovery")
        sightings = discover_sync(interface, seconds)
        new = set(DeviceRegistry(p.db, p.audit, p.clock).record_many(sightings))
    _echo_sightings(sightings, new, interface, seconds)


def _echo_sightings(sightings: list[Sighting], new: set[str], interfaces: list[str],
                    seconds: float) -> None:
    if not sightings:
        typer.echo(f"No device answered on {', '.join(interfaces)} within {seconds:g} s.")
        return
    echo_table(
        ["DEVICE", "NAME", "ADDRESS", "AGENT", "MODEL", "HARDWARE", "NEW"],
        [[s.uid, s.name, f"{s.address}:{s.ssh_port}", s.agent_version, s.model_version,
          s.hardware, "new" if s.uid in new else "known"] for s in sightings],
    )
    typer.echo(f"Found {len(sightings)} device(s), {len(new)} new. Enroll one with "
               "`edgeloop devices enroll UID`.")


@devices_app.command("enroll")
def enroll_(
    uid: UidArg,
    address: Annotated[str | None, typer.Option(help="Host or IP (default: as discovered).")] = None,
    port: Annotated[int | None, typer.Option(help="SSH port (default: as discovered).")] = None,
    ssh_user: Annotated[str, typer.Option(help="SSH account on the device.")] = DEFAULT_SSH_USER,
    fingerprint: Annotated[
        str | None,
        typer.Option(metavar="SHA256:...", help="The host-key fingerprint shown on the device's "
                                                "own console; without it you are asked."),
    ] = None,
    bootstrap_key: Annotated[
        Path | None, typer.Option(help="Private key (ed25519) for the first login.")
    ] = None,
    password: Annotated[
        bool, typer.Option("--password", help="Ask for a password for the first login.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; needs --fingerprint.")] = False,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Trust a device: confirm its host key, install our key, pin the key. Audited."""
    if fingerprint is None and yes:
        raise InvalidInput("--yes needs --fingerprint SHA256:...: a device's host key must be "
                           "confirmed, by eye at the prompt or by giving the fingerprint its "
                           "own console shows")
    with open_from_cli(project, db) as p:
        actor = acting_user(p, user)
        ctx = FleetContext.of(p)
        confirmed = fingerprint or _confirm_fingerprint(ctx, uid, address, port)
        if confirmed is None:
            typer.echo("Nothing was enrolled.")
            raise typer.Exit(1)
        secret = (typer.prompt(f"Password of {ssh_user} on {uid}", hide_input=True)
                  if password else None)
        result = enroll(ctx, actor, uid, confirmed_fingerprint=confirmed, address=address,
                        port=port, user=ssh_user,
                        bootstrap=Bootstrap(password=secret, key_file=bootstrap_key))
    typer.echo(f"Enrolled {result.uid} at {result.address}:{result.port}, host key "
               f"{result.fingerprint} pinned (model {result.model_version or '-'}, "
               f"agent {result.agent_version or '-'}).")


@devices_app.command("install-agent")
def install_agent_(
    uid: UidArg,
    address: Annotated[str, typer.Option(help="The device's host name or IP.")],
    bundle: Annotated[
        Path, typer.Option(help="The agent bundle: build/installers/dist/edgeloop-agent.tar.gz "
                                "(`python -m installers.build agent`) or its folder.")
    ],
    source: Annotated[str, typer.Option(help="What the agent reads: camera:INDEX, folder:PATH, "
                                             "video:PATH or generator[:SEED] (a test scene).")],
    port: Annotated[int, typer.Option(help="SSH port.")] = 22,
    ssh_user: Annotated[str, typer.Option(help="SSH account on the device; the agent runs as "
                                               "this account.")] = DEFAULT_SSH_USER,
    fingerprint: Annotated[
        str | None,
        typer.Option(metavar="SHA256:...", help="The host-key fingerprint shown on the device's "
                                                "own console; without it you are asked (an "
                                                "enrolled device's pinned key is used)."),
    ] = None,
    bootstrap_key: Annotated[
        Path | None, typer.Option(help="Private key (ed25519) to log in with.")
    ] = None,
    password: Annotated[
        bool, typer.Option("--password", help="Ask for the account's password to log in.")
    ] = False,
    prefix: Annotated[str, typer.Option(help="Where versions go on the device.")] = DEFAULT_PREFIX,
    home: Annotated[str, typer.Option(help="The agent's home on the device.")] = DEFAULT_HOME,
    unit_dir: Annotated[str, typer.Option(help="Where the systemd unit goes.")] = DEFAULT_UNIT_DIR,
    bin_dir: Annotated[str, typer.Option(help="Where the `edgeloop-agent` launcher goes (on "
                                              "the account's PATH).")] = DEFAULT_BIN_DIR,
    upload_dir: Annotated[str, typer.Option(help="Where the archive is uploaded first.")
                          ] = DEFAULT_UPLOAD_DIR,

    interfaces: Annotated[
        str, typer.Option(metavar="IP[,IP]", help="Interfaces to advertise on (default: all).")
    ] = "",
    name: Annotated[str, typer.Option(help="A display name for the device.")] = "",
    sudo: Annotated[bool, typer.Option("--sudo", help="Run the privileged steps with `sudo -n` "
                                                      "(passwordless sudo).")] = False,
    systemctl: Annotated[str, typer.Option(help="The device's systemctl program.")
                         ] = "systemctl",
    reinit: Annotated[bool, typer.Option("--reinit", help="Set the home's config up again (the "
                                                          "old one is kept beside it).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; needs --fingerprint.")
                   ] = False,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Install the agent on a device over SSH: push the bundle, set up its home, and start
    it as a systemd service. The running agent is replaced only when the new one passed its
    self-check. Audited."""
    check_device_id(uid)
    if bootstrap_key is not None and password:
        raise InvalidInput("give --bootstrap-key or --password, not both")
    options = InstallOptions(
        prefix=prefix, home=home, unit_dir=unit_dir, bin_dir=bin_dir, upload_dir=upload_dir,
        source=source, systemctl=systemctl, sudo=sudo, reinit=reinit, name=name,
        interfaces=tuple(ip.strip() for ip in interfaces.split(",") if ip.strip()))
    with open_from_cli(project, db) as p:
        actor = acting_user(p, user)
        ctx = FleetContext.of(p)
        pinned = pinned_fingerprint(ctx, uid)
        confirmed = fingerprint or pinned
        if confirmed is None and yes:
            raise InvalidInput("--yes needs --fingerprint SHA256:...: a device's host key must "
                               "be confirmed, by eye at the prompt or by giving the fingerprint "
                               "its own console shows")
        confirmed = confirmed or _confirm_fingerprint(ctx, uid, address, port)
        if confirmed is None:
            typer.echo("Nothing was installed.")
            raise typer.Exit(1)
        secret = (typer.prompt(f"Password of {ssh_user} on {uid}", hide_input=True)
                  if password else None)
        target = InstallTarget(uid, address, port, ssh_user, confirmed)
        with long_work("installing the agent", "Cancelled: nothing was switched; the agent "
                       "installed before (if any) runs as it was.", _describe_install) as (
                line, cancel):
            result = install_agent(ctx, actor, target, bundle, options,
                                   bootstrap=Bootstrap(password=secret, key_file=bootstrap_key),
                                   progress=line, cancel=cancel)
    _echo_installed(result, target, enrolled=pinned is not None, bootstrap_key=bootstrap_key,
                    password=password)


def _describe_install(step: Progress) -> str:
    """Steps that count bytes in MiB; the others as every long command shows them."""
    if step.metrics.get("unit") == "bytes" and step.total > 0:
        return describe(Progress(step.stage, round(step.done / 2**20, 1),
                                 round(step.total / 2**20, 1), f"MiB {step.message}".rstrip()))
    return describe(step)


def _echo_installed(result: InstallResult, target: InstallTarget, *, enrolled: bool,
                    bootstrap_key: Path | None, password: bool) -> None:
    folder = result.folder + (" (already there, reused)" if result.reused else "")
    typer.echo(f"Installed edgeloop-agent {result.version} on {result.uid} "
               f"({target.user}@{target.host}:{target.port}) in {folder}.\n"
               f"  current   -> {result.folder.rsplit('/', 1)[-1]}"
               f" (previous: {result.previous or '-'})\n"
               f"  home      {result.home} ("
               f"{'created, trusting the project signing key' if result.config_created else 'kept'})\n"
               f"  service   {result.unit_path}: {result.unit_state}, agent PID {result.agent_pid}\n"
               f"  launcher  {result.launcher}\n"
               f"  selfcheck {result.selfcheck}")
    for note in result.notes:
        typer.echo(f"  {note}")
    if enrolled:
        typer.echo(f"{result.uid} is enrolled already: `edgeloop devices health {result.uid}` "
                   "shows it.")
        return
    login = (f" --bootstrap-key {bootstrap_key}" if bootstrap_key
             else " --password" if password else "")
    typer.echo(f"Next, enroll it:\n  edgeloop devices enroll {result.uid} --address "
               f"{target.host} --port {target.port} --ssh-user {target.user} --fingerprint "
               f"{target.fingerprint}{login}")


def _confirm_fingerprint(ctx: FleetContext, uid: str, address: str | None,
                         port: int | None) -> str | None:
    """Show the host key the device presents; its fingerprint if the engineer confirms it."""
    seen = probe(ctx, uid, address, port)
    typer.echo(f"Device {uid} presents this {seen.key_type} host key:\n"
               f"  {seen.fingerprint}\n"
               "Compare it with the fingerprint on the device's own console or label.")
    return seen.fingerprint if typer.confirm("Is it the same?", default=False) else None


@devices_app.command("forget")
def forget_(uid: UidArg, yes: YesOpt = False, project: ProjectOpt = Path("."),
            db: DbOpt = None, user: UserOpt = None) -> None:
    """Stop trusting a device (drop its pinned host key); its captures stay. Audited."""
    if not yes and not typer.confirm(f"Forget device {uid}? It must be enrolled again "
                                     "before the next pull or deploy."):
        raise typer.Exit(1)
    with open_from_cli(project, db) as p:
        forget(FleetContext.of(p), acting_user(p, user), uid)
    typer.echo(f"Forgot {uid}; its captures stay in the project.")


@devices_app.command("health")
def health(
    uids: Annotated[
        list[str] | None, typer.Argument(metavar="[UID]...", help="Default: every enrolled device.")
    ] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Poll devices' status now, record it, and show each one's health."""
    with open_from_cli(project, db) as p:
        acting_user(p, user)
        reports = poll_fleet(FleetContext.of(p), uids or None)
    if not reports:
        typer.echo("No enrolled devices; `edgeloop devices enroll UID` first.")
        return
    _echo_health(reports)


def _echo_health(reports: list[HealthReport]) -> None:
    echo_table(
        ["DEVICE", "HEALTH", "MODEL", "FPS", "DETAIL"],
        [[r.uid, r.health.value, r.model_version or "-",
          "-" if r.fps is None else f"{r.fps:.1f}", r.detail] for r in reports],
    )


@devices_app.command("quarantine")
def quarantine(
    uid: Annotated[str | None, typer.Argument(metavar="[UID]", help="Default: all devices.")] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """List captures a pull refused (kept on the device, never imported) and why."""
    with open_from_cli(project, db) as p:
        acting_user(p, user)
        rows = quarantined_captures(p.db, uid)
    if not rows:
        typer.echo("No quarantined captures.")
        return
    echo_table(
        ["DEVICE", "CAPTURE", "KB", "HELD ON DEVICE", "WHEN", "REASON"],
        [[r.uid, r.capture_id, f"{r.size / 1024:.1f}", "yes" if r.held_on_device else "not yet",
          format_time(r.quarantined_at), r.reason] for r in rows],
    )


@devices_app.command("watch")
def watch(
    interval: Annotated[float, typer.Option(min=2.0, help="Seconds between polls.")] = 30.0,
    rounds: Annotated[int, typer.Option(min=0, help="Stop after this many polls (0: until "
                                                    "Ctrl-C).")] = 0,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Poll devices' health on a timer and deliver rollouts to devices back online.

    A device offline when its stage ran gets the release when a poll finds it again.
    Ctrl-C stops.
    """
    with open_from_cli(project, db) as p, cancel_on_ctrl_c("watching") as cancel:
        ctx, actor = FleetContext.of(p), acting_user(p, user)

        def echo(round_: WatchRound) -> None:
            typer.echo(f"{round_.at:%H:%M:%S} " + (", ".join(
                f"{r.uid} {r.health.value}" for r in round_.reports) or "no enrolled devices"))
            for rollout_id, outcome in round_.deliveries:
                typer.echo(f"  rollout {rollout_id}: {outcome.uid} {outcome.state.value} "
                           f"({outcome.detail})")

        watch_fleet(ctx, actor, interval_s=interval, rounds=rounds, cancel=cancel, report=echo)


