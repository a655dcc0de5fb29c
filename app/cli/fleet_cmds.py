"""``edgeloop pull``, ``releases add|list``, ``deploy`` and
``rollout list|status|halt|resume|rollback``:
moving captures in from the fleet and signed releases out to it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    DbOpt, ProjectOpt, UserOpt, acting_user, echo_table, format_time, open_from_cli,
)
from app.cli.longwork import ProgressLine, cancel_on_ctrl_c, long_work
from app.core.errors import InvalidInput
from app.core.models import DeploymentState, RolloutState
from app.core.progress import Cancelled, Progress
from app.fleet.context import FleetContext
from app.fleet.deploy import deliver_pending, halt_rollout, run_rollout, start_rollout
from app.fleet.pull import DEFAULT_BATCH, DEFAULT_CONCURRENCY, PullResult, PullSettings, pull_devices
from app.fleet.releases import list_releases, register_release
from app.fleet.rollback import roll_back_rollout
from app.fleet.rollout_plan import DEFAULT_SHARES, HealthBounds, parse_shares
from app.fleet.summaries import RolloutView, recent_rollouts, rollout_view

releases_app = typer.Typer(help="Signed releases the project can deploy.", no_args_is_help=True)
rollout_app = typer.Typer(help="Follow, stop and resume staged rollouts.", no_args_is_help=True)

DevicesOpt = Annotated[
    list[str] | None,
    typer.Option("--device", "-d", metavar="UID",
                 help="Only this device (repeatable). Default: every enrolled device."),
]
ConcurrencyOpt = Annotated[
    int, typer.Option(min=1, max=64, help="Devices worked on at the same time.")
]
_BOUNDS = HealthBounds()
MinFpsOpt = Annotated[float, typer.Option(min=0.0, help="Healthy: at least this many fps.")]
MaxErrorRateOpt = Annotated[float, typer.Option(min=0.0, max=1.0,
                                                help="Healthy: at most this share of frames "
                                                     "in error.")]
WindowOpt = Annotated[float, typer.Option(min=1.0, help="Seconds a device must stay healthy "
                                                        "after activation.")]
TimeoutOpt = Annotated[float, typer.Option(min=5.0, help="Seconds to wait for that window.")]
RolloutArg = Annotated[
    int | None, typer.Argument(metavar="[ROLLOUT]", help="Rollout number (default: the newest).")
]


def pull(
    device: DevicesOpt = None,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    batch: Annotated[int, typer.Option(min=1, max=100_000,
                                       help="Captures per transfer and commit.")] = DEFAULT_BATCH,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Pull new captures from devices: verified, committed, then acknowledged.

    Ctrl-C stops after the batch in flight; the next pull resumes from each device's cursor.
    """
    line = ProgressLine(lambda step: f"pull: {step.done:g} captures {step.message}".rstrip())
    with open_from_cli(project, db) as p, cancel_on_ctrl_c("the pull") as cancel:
        ctx, actor = FleetContext.of(p), acting_user(p, user)
        try:
            results = pull_devices(ctx, actor, device or None,
                                   settings=PullSettings(batch=batch, concurrency=concurrency),
                                   progress=line, cancel=cancel)
        except Cancelled:
            line.close()
            typer.echo("Pull stopped; what was committed stays, the next pull resumes.")
            raise typer.Exit(130) from None
        finally:
            line.close()
    if not results:
        typer.echo("No enrolled devices; `edgeloop devices enroll UID` first.")
        return
    _echo_pulls(results)
    if any(r.error for r in results):
        raise typer.Exit(1)


def _echo_pulls(results: list[PullResult]) -> None:
    echo_table(
        ["DEVICE", "IMPORTED", "ALREADY HAD", "QUARANTINED", "MB", "SECONDS", "RESULT"],
        [[r.uid, r.imported, r.already_had, r.quarantined, f"{r.bytes / 1e6:.1f}",
          f"{r.seconds:.1f}", r.error or "ok"] for r in results],
    )
    quarantined = sum(r.quarantined for r in results)
    if quarantined:
        typer.echo(f"{quarantined} capture(s) quarantined: `edgeloop devices quarantine` "
                   "says why; they stay on the device.")


@releases_app.command("add")
def releases_add(
    folder: Annotated[Path, typer.Argument(help="A release folder (manifest.json, "
                                                "manifest.sig and its files).")],
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Verify a release signed with the project's key and store it for deploys. Audited."""
    with open_from_cli(project, db) as p:
        stored = register_release(FleetContext.of(p), acting_user(p, user), folder)
    typer.echo(f"Registered release {stored.version} ({len(stored.tar) // 1024} KiB); "
               f"deploy it with `edgeloop deploy {stored.version}`.")


@releases_app.command("list")
def releases_list(project: ProjectOpt = Path("."), db: DbOpt = None,
                  user: UserOpt = None) -> None:
    """List registered releases, newest first."""
    with open_from_cli(project, db) as p:
        acting_user(p, user)
        rows = list_releases(FleetContext.of(p))
    if not rows:
        typer.echo("No releases yet; `edgeloop releases add FOLDER` registers one.")
        return
    echo_table(["VERSION", "STATUS", "KB"], [[v, s, f"{size / 1024:.0f}"] for v, s, size in rows])


def deploy(
    version: Annotated[str, typer.Argument(help="A registered release's version.")],
    device: DevicesOpt = None,
    canary: Annotated[
        list[str] | None,
        typer.Option(metavar="UID", help="Canary device (repeatable; default: the first target)."),
    ] = None,
    stages: Annotated[
        str, typer.Option(metavar="PCT,PCT", help="Cumulative shares of the targets after the "
                                                  "canaries, in percent.")
    ] = ",".join(f"{share * 100:g}" for share in DEFAULT_SHARES),
    min_fps: MinFpsOpt = _BOUNDS.min_fps,
    max_error_rate: MaxErrorRateOpt = _BOUNDS.max_error_rate,
    health_window: WindowOpt = _BOUNDS.window_s,
    health_timeout: TimeoutOpt = _BOUNDS.timeout_s,
    concurrency: ConcurrencyOpt = 4,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Roll a release out in stages: canaries, then shares of the fleet, each healthy first.

    A device that fails is rolled back and the rollout halts; an offline device gets the
    release later (`edgeloop devices watch` or `edgeloop rollout resume`).
    """
    bounds = HealthBounds(min_fps=min_fps, max_error_rate=max_error_rate,
                          window_s=health_window, timeout_s=health_timeout)
    with open_from_cli(project, db) as p:
        ctx, actor = FleetContext.of(p), acting_user(p, user)
        rollout_id = start_rollout(ctx, actor, version, targets=device or None,
                                   canary=canary or (), shares=parse_shares(stages),
                                   bounds=bounds)
        typer.echo(f"Rollout {rollout_id} of {version} started.")
        _run(ctx, actor, rollout_id, concurrency)


def _run(ctx: FleetContext, actor, rollout_id: int, concurrency: int) -> None:  # type: ignore[no-untyped-def]
    with long_work("the rollout", f"Rollout {rollout_id} paused after the device(s) in "
                   f"flight; `edgeloop rollout resume {rollout_id}` goes on.",
                   _describe_stage) as (line, cancel):
        run_rollout(ctx, actor, rollout_id, concurrency=concurrency, progress=line,
                    cancel=cancel)
    view = rollout_view(ctx.db, rollout_id)
    _echo_view(view)
    if view.state is RolloutState.HALTED:
        raise typer.Exit(1)


def _describe_stage(step: Progress) -> str:
    return f"deploy: {step.message}"


@rollout_app.command("list")
def rollout_list(project: ProjectOpt = Path("."), db: DbOpt = None,
                 user: UserOpt = None) -> None:
    """The newest rollouts and where each stands."""
    with open_from_cli(project, db) as p:
        acting_user(p, user)
        views = recent_rollouts(p.db)
    if not views:
        typer.echo("No rollouts yet; `edgeloop deploy VERSION` starts one.")
        return
    echo_table(["ROLLOUT", "VERSION", "STATE", "STAGE", "DEVICES", "HEALTHY", "STARTED", "BY"],
               [[v.id, v.version, v.state.value, f"{v.stage_shown}/{v.stage_count}",
                 len(v.deployments), _count(v, DeploymentState.HEALTHY),
                 format_time(v.created_at), v.started_by or "-"] for v in views])


@rollout_app.command("status")
def rollout_status(rollout: RolloutArg = None, project: ProjectOpt = Path("."),
                   db: DbOpt = None, user: UserOpt = None) -> None:
    """One rollout's stages and every device's deployment in it."""
    with open_from_cli(project, db) as p:
        acting_user(p, user)
        view = rollout_view(p.db, rollout)
    _echo_view(view)


@rollout_app.command("halt")
def rollout_halt(
    rollout: RolloutArg = None,
    reason: Annotated[str, typer.Option(help="Why; kept in the audit trail.")] = "halted by hand",
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Stop a running rollout: no further stage starts; updated devices keep the release."""
    with open_from_cli(project, db) as p:
        rollout_id = rollout if rollout is not None else rollout_view(p.db).id
        halt_rollout(FleetContext.of(p), acting_user(p, user), rollout_id, reason)
    typer.echo(f"Rollout {rollout_id} halted.")


@rollout_app.command("resume")
def rollout_resume(
    rollout: RolloutArg = None,
    concurrency: ConcurrencyOpt = 4,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Go on with a running rollout: devices that were offline, then the stages left."""
    with open_from_cli(project, db) as p:
        ctx, actor = FleetContext.of(p), acting_user(p, user)
        view = rollout_view(p.db, rollout)
        if view.state is not RolloutState.RUNNING:
            raise InvalidInput(f"rollout {view.id} is {view.state.value}; only a running "
                               "rollout resumes (start a new one with `edgeloop deploy`)")
        deliver_pending(ctx, actor, view.id, concurrency=concurrency)
        _run(ctx, actor, view.id, concurrency)


@rollout_app.command("rollback")
def rollout_rollback(
    rollout: Annotated[int, typer.Argument(metavar="ROLLOUT", help="Rollout number.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the audit trail.")],
    concurrency: ConcurrencyOpt = 4,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Halt a rollout and put every device it updated back on its previous release.

    A device that cannot be reached is reported and the rollout stays halted: run the
    roll back again once the device is online.
    """
    with open_from_cli(project, db) as p:
        with long_work("the roll back",
                       f"Roll back of rollout {rollout} stopped; devices already back stay "
                       f"back; `edgeloop rollout rollback {rollout}` goes on.",
                       lambda step: f"rollback: {step.message}") as (line, cancel):
            result = roll_back_rollout(FleetContext.of(p), acting_user(p, user), rollout, reason,
                                       concurrency=concurrency, progress=line, cancel=cancel)
        view = rollout_view(p.db, rollout)
    _echo_view(view)
    if result.failed:
        typer.echo(f"{len(result.failed)} device(s) not rolled back (see DETAIL); run the roll "
                   "back again when they are online.")
        raise typer.Exit(1)
    typer.echo(f"Rollout {rollout} rolled back: {result.version} is off every device it reached.")


def _count(view: RolloutView, state: DeploymentState) -> int:
    return sum(1 for d in view.deployments if d.state is state)


def _echo_view(view: RolloutView) -> None:
    typer.echo(f"Rollout {view.id}: {view.version}, {view.state.value}, stage "
               f"{view.stage_shown} of {view.stage_count}; started {format_time(view.created_at)}"
               f" by {view.started_by or '-'}")
    if view.halt_reason:
        typer.echo(f"Halted: {view.halt_reason}")
    echo_table(["STAGE", "DEVICE", "STATE", "DETAIL"],
               [[d.stage + 1, d.uid, d.state.value, d.error or d.detail]
                for d in view.deployments])
