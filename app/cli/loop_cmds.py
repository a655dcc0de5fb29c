"""``edgeloop observe|observer|drift|loop|demo``: the observer, drift and the closed loop.

The commands call the services the GUI calls: ``app.core.observer``, ``review_queue``,
``drift_monitor``, ``triggers``, ``pipeline`` and, for the steps that touch devices,
``app.fleet.loop_steps``. ``edgeloop loop --auto`` and ``edgeloop demo --headless`` run the
whole loop on a simulated fleet (``app.fleet.closed_loop``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import DbOpt, ProjectOpt, UserOpt, acting_user, echo_table, open_from_cli
from app.cli.longwork import long_work
from app.core.errors import InvalidInput
from app.core.progress import CancelToken

if TYPE_CHECKING:
    from app.fleet.closed_loop import DemoSettings

observer_app = typer.Typer(help="Observer models: import a user's model, pick the one to use.",
                           no_args_is_help=True)
drift_app = typer.Typer(help="Drift: build the baseline, measure, list alerts.",
                        no_args_is_help=True)
loop_app = typer.Typer(help="The closed loop: triggers and pipeline runs. `edgeloop loop "
                            "--auto` runs it on a simulated fleet.",
                       invoke_without_command=True)


def observe(
    observer: Annotated[str | None, typer.Option(help="Observer version (default: the "
                                                      "project's).")] = None,
    batch: Annotated[int, typer.Option(min=1, max=4096, help="Images per inference.")] = 64,
    limit: Annotated[int | None, typer.Option(min=1, help="Observe at most this many.")] = None,
    low_confidence: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.6,
    spot_check: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of random "
                                              "captures queued for a spot check.")] = 0.1,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Run the observer over new captures and queue the ones people should review.
    Ctrl-C stops; what was observed so far is kept."""
    from app.core.observer import observe_captures
    from app.core.review_queue import mine_disagreements

    with open_from_cli(project, db) as p, long_work(
            "the observer", "Stopped; the captures observed so far are kept.") as (line, cancel):
        actor = acting_user(p, user)
        outcome = observe_captures(p.db, p.blobs, p.audit, actor, observer=observer,
                                   batch_size=batch, limit=limit, progress=line, cancel=cancel)
        mined = mine_disagreements(p.db, p.audit, actor, outcome.observer_id,
                                   low_confidence=low_confidence,
                                   spot_check_share=spot_check, clock=p.clock)
    typer.echo(f"{outcome.observer}: {outcome.observed} captures observed in "
               f"{outcome.seconds:.1f} s ({outcome.images_per_second:.0f} images/s)"
               + (f"; {outcome.unreadable} unreadable (see the log)" if outcome.unreadable else ""))
    queued = ", ".join(f"{k} {v}" for k, v in sorted(mined.queued.items())) or "nothing"
    typer.echo(f"Review queue: {queued} added from {mined.examined} examined.")


@observer_app.command("import")
def observer_import(
    model: Annotated[Path, typer.Argument(help="An .onnx file or an OpenVINO .xml.")],
    labels: Annotated[str, typer.Option(help="The project class of each score output, comma "
                                             "separated, in output order ('' for none), or "
                                             "@FILE with a JSON list.")],
    size: Annotated[int | None, typer.Option(min=8, max=2048, help="Input size, when the file "
                                             "carries no input spec.")] = None,
    scores: Annotated[str, typer.Option(help="logits or probabilities.")] = "logits",
    embedding_output: Annotated[str | None, typer.Option(help="Name of the embedding output "
                                                         "(default: none; the scores are "
                                                         "used).")] = None,
    version: Annotated[str | None, typer.Option(help="Name (default: observer-N).")] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Register a user-supplied observer model (checked by running it once first)."""
    from app.core.observer import import_observer
    from app.core.training import input_spec

    names = _label_list(labels)
    with open_from_cli(project, db) as p:
        info = import_observer(p.db, p.blobs, p.audit, acting_user(p, user), model,
                               labels=names, input_spec=input_spec(size) if size else None,
                               scores=scores, embedding_output=embedding_output,
                               version=version)
    typer.echo(f"Imported {info.version} ({len(names)} outputs). "
               f"`edgeloop observer use {info.version}` makes it the project's observer.")


def _label_list(text: str) -> list[str]:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            value = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"--labels {text}: not a readable JSON file ({exc})") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"--labels {text}: the file must hold a JSON list of class names")
        return value
    return [part.strip() for part in text.split(",")]


@observer_app.command("use")
def observer_use(
    version: Annotated[str, typer.Argument(help="The observer version to use from now on.")],
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Make ``version`` the project's observer."""
    from app.core.observer import use_observer

    with open_from_cli(project, db) as p:
        info = use_observer(p.db, p.audit, acting_user(p, user), version)
    typer.echo(f"The observer is now {info.version}.")


@drift_app.command("baseline")
def drift_baseline(
    edge: Annotated[str, typer.Argument(help="The edge model version.")],
    observer: Annotated[str | None, typer.Option()] = None,
    dataset: Annotated[str | None, typer.Option(help="Default: the model's training data.")] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Measure what "no drift" looks like for an edge model, on its training dataset."""
    from app.core.drift_monitor import build_baseline

    with open_from_cli(project, db) as p, long_work(
            "the baseline", "Cancelled; no baseline stored.") as (line, cancel):
        build_baseline(p.db, p.blobs, edge=edge, observer=observer, dataset=dataset,
                       progress=line, cancel=cancel)
    typer.echo(f"Baseline of {edge} stored; `edgeloop drift measure` compares against it.")


@drift_app.command("measure")
def drift_measure(
    hours: Annotated[float, typer.Option(min=0.01, help="Window: the last N hours.")] = 1.0,
    edge: Annotated[str | None, typer.Option(help="Default: the deployed edge model.")] = None,
    observer: Annotated[str | None, typer.Option()] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Measure drift per device and fleet-wide; exit status 1 when something alerts."""
    from app.core.drift_monitor import measure_drift

    with open_from_cli(project, db) as p:
        now = p.clock()
        report = measure_drift(p.db, p.audit, acting_user(p, user),
                               since=now - timedelta(hours=hours), until=now, edge=edge,
                               observer=observer, clock=p.clock)
    echo_table(["SCOPE", "METRIC", "VALUE", "THRESHOLD", "N", "ALERT"],
               [[m.scope, m.metric, f"{m.value:.4f}", f"{m.threshold:g}", m.n,
                 "ALERT" if m.alert else "-"] for m in report.measurements])
    if not report.measurements:
        typer.echo("Nothing to measure in the window: no device statistics or captures.")
    if report.alerts:
        raise typer.Exit(1)


@drift_app.command("alerts")
def drift_alerts(
    hours: Annotated[float, typer.Option(min=0.01, help="The last N hours.")] = 24.0,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Drift alerts measured in the last N hours."""
    from app.core.drift_monitor import recent_alerts

    with open_from_cli(project, db) as p:
        rows = recent_alerts(p.db, p.clock() - timedelta(hours=hours))
    echo_table(["MEASURED", "DEVICE", "METRIC", "VALUE", "THRESHOLD"],
               [[r.measured_at.strftime("%Y-%m-%d %H:%M"), r.device_id or "fleet", r.metric,
                 f"{r.value:.4f}", f"{r.threshold:g}"] for r in rows])


# -- the loop --------------------------------------------------------------------------------
DevicesOpt = Annotated[int, typer.Option("--devices", "-n", min=1, max=50,
                                         help="Simulated devices.")]
ScenarioOpt = Annotated[str, typer.Option(help="Drift to switch on: lighting, colour_cast, "
                                               "blur, noise, camera, new_variant, ...")]
PhaseOpt = Annotated[float, typer.Option(min=5, max=3600, help="Seconds the devices run "
                                         "before and after the drift (twice that under it, "
                                         "where the new labels come from).")]
DirOpt = Annotated[Path | None, typer.Option("--dir", help="Where the demo project and fleet "
                                                           "live (default: a temp folder).")]


@loop_app.callback()
def loop_main(
    ctx: typer.Context,
    auto: Annotated[bool, typer.Option("--auto", help="Run the whole loop headless on a "
                                                      "simulated fleet through one drift.")]
    = False,
    devices: DevicesOpt = 3,
    scenario: ScenarioOpt = "lighting",
    phase: PhaseOpt = 30.0,
    directory: DirOpt = None,
) -> None:
    """The closed loop: triggers and pipeline runs of a project."""
    if ctx.invoked_subcommand is not None:
        return
    if not auto:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    run_headless(devices, scenario, phase, directory)


def run_headless(devices: int, scenario: str, phase: float, directory: Path | None) -> None:
    """Run :class:`~app.fleet.closed_loop.ClosedLoopDemo` and print its table."""
    from app.fleet.closed_loop import ClosedLoopDemo, demo_progress

    settings = _demo_settings(devices, scenario, phase)
    with _demo_folder(directory) as (root, cancel):
        typer.echo(f"Closed-loop demo in {root}: {devices} simulated devices, drift "
                   f"'{scenario}', {phase:.0f} s per phase.")
        demo = ClosedLoopDemo(root, settings, say=typer.echo,
                              progress=demo_progress(typer.echo), cancel=cancel)
        result = demo.run()
    typer.echo("")
    typer.echo(result.table())


def _demo_settings(devices: int, scenario: str, phase: float) -> DemoSettings:
    from app.core.scene import Scenario
    from app.fleet.closed_loop import DemoSettings

    try:
        Scenario.parse(scenario)
    except ValueError as exc:
        raise InvalidInput(f"--scenario: {exc}") from None
    return DemoSettings(devices=devices, scenario=scenario, phase_seconds=phase,
                        drift_seconds=2 * phase)


@contextmanager
def _demo_folder(directory: Path | None) -> Iterator[tuple[Path, CancelToken]]:
    """The demo's folder (``--dir``, which must be new or empty, else a temporary one removed
    afterwards) and a Ctrl-C cancel token that ends the demo cleanly."""
    with tempfile.TemporaryDirectory(prefix="edgeloop-demo-") as scratch, long_work(
            "the demo", "Demo stopped; the simulated devices were shut down.") as (_, cancel):
        root = directory.resolve() if directory else Path(scratch)
        if directory and root.exists() and any(root.iterdir()):
            raise InvalidInput(f"--dir {root} is not empty; give a new or empty folder")
        yield root, cancel


@loop_app.command("watch")
def loop_watch(
    interval: Annotated[float, typer.Option(min=5, help="Seconds between passes.")] = 300.0,
    once: Annotated[bool, typer.Option(help="One pass, then exit.")] = False,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Watch a real fleet: poll health, measure drift, start a run when a trigger fires and
    move waiting runs on. Ctrl-C stops between or during passes."""
    from app.core.train_service import code_version
    from app.fleet.context import FleetContext
    from app.fleet.loop_steps import LoopSettings
    from app.fleet.loop_watch import watch_once

    with open_from_cli(project, db) as p, long_work(
            "the watcher", "Watcher stopped; a run under way resumes with `edgeloop loop "
                           "resume`.") as (line, cancel):
        ctx, actor = FleetContext.of(p), acting_user(p, user)
        while True:
            report = watch_once(ctx, actor, LoopSettings(), runs_dir=p.root / "runs",
                                code_version=code_version(), progress=line, cancel=cancel)
            run = ("no trigger fired" if report.run_id is None else
                   f"run {report.run_id}" + (f" started ({report.trigger})" if report.trigger
                                             else "") + f": {report.run_state.value}")
            typer.echo(f"{p.clock():%H:%M:%S} polled {report.devices_polled} device(s); "
                       f"{report.drift_note}, {report.drift_alerts} alert(s); {run}")
            if once or cancel.wait(interval):
                break


@loop_app.command("run")
def loop_run(
    auto_approve: Annotated[bool, typer.Option(help="Approve a model that passed the gate "
                                                    "without waiting for a person.")] = False,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = "",
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Start a pipeline run now and advance it until it waits, fails or finishes."""
    with open_from_cli(project, db) as p:
        runner = _runner(p, user, auto_approve)
        run_id = runner.start("request", reason or "started from the command line")
        _advance(runner, run_id)


@loop_app.command("resume")
def loop_resume(
    run_id: Annotated[int, typer.Argument(help="The run to continue.")],
    auto_approve: Annotated[bool, typer.Option()] = False,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Continue a run that waits (for reviews, an approval) or was interrupted."""
    with open_from_cli(project, db) as p:
        _advance(_runner(p, user, auto_approve), run_id)


@loop_app.command("cancel")
def loop_cancel(
    run_id: Annotated[int, typer.Argument()],
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Cancel a run; its finished steps stay recorded."""
    with open_from_cli(project, db) as p:
        _runner(p, user, False).cancel(run_id, "cancelled from the command line")
    typer.echo(f"Run {run_id} cancelled.")


@loop_app.command("status")
def loop_status(
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Recent pipeline runs and the steps of the newest."""
    from app.core.pipeline import recent_runs

    with open_from_cli(project, db) as p:
        runs = recent_runs(p.db, 10)
    if not runs:
        typer.echo("No pipeline run yet: `edgeloop loop run` starts one.")
        return
    echo_table(["RUN", "TRIGGER", "STATE", "ERROR"],
               [[r.id, r.trigger, r.state.value, r.error or "-"] for r in runs])
    typer.echo("")
    _print_steps(runs[0])


@loop_app.command("request")
def loop_request(
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Ask for a retrain at the next trigger check."""
    from app.core.triggers import request_run

    with open_from_cli(project, db) as p:
        request_run(p.db, p.audit, acting_user(p, user), reason, clock=p.clock)
    typer.echo("Requested; the next trigger check starts a run.")


@loop_app.command("triggers")
def loop_triggers(
    schedule_hours: Annotated[float | None, typer.Option(min=0.01)] = None,
    min_new_labels: Annotated[int | None, typer.Option(min=1)] = None,
    on_drift: Annotated[bool | None, typer.Option("--on-drift/--no-on-drift")] = None,
    on_code_change: Annotated[bool | None,
                              typer.Option("--on-code-change/--no-on-code-change")] = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Show the loop's triggers, or change the ones given; then say which fires now."""
    from dataclasses import asdict, replace

    from app.core.train_service import code_version
    from app.core.triggers import due_trigger, load_settings, save_settings

    with open_from_cli(project, db) as p:
        settings = load_settings(p.db)
        changes = {k: v for k, v in {"schedule_hours": schedule_hours,
                                      "min_new_labels": min_new_labels,
                                      "on_drift_alert": on_drift,
                                      "on_code_change": on_code_change}.items() if v is not None}
        if changes:
            settings = replace(settings, **changes)
            save_settings(p.db, p.audit, acting_user(p, user), settings)
        due = due_trigger(p.db, settings, code_version=code_version(), now=p.clock())
    echo_table(["TRIGGER", "SETTING"], [[k, v] for k, v in asdict(settings).items()])
    typer.echo(f"Fires now: {due.name} ({due.reason})" if due else "Nothing fires now.")


def _runner(p, user: str | None, auto_approve: bool):  # type: ignore[no-untyped-def]
    from app.core.pipeline import PipelineRunner
    from app.core.triggers import clear_request
    from app.fleet.context import FleetContext
    from app.fleet.loop_steps import LoopSettings, loop_steps

    ctx = FleetContext.of(p)
    actor = acting_user(p, user)
    clear_request(p.db)
    steps = loop_steps(ctx, actor, LoopSettings(auto_approve=auto_approve),
                       runs_dir=p.root / "runs")
    return PipelineRunner(p.db, p.audit, actor, steps, clock=p.clock)


def _advance(runner, run_id: int) -> None:  # type: ignore[no-untyped-def]
    from app.core.models import PipelineState

    with long_work("the pipeline run", f"Run {run_id} cancelled; its finished steps are "
                                       "kept.") as (line, cancel):
        state = runner.advance(run_id, progress=line, cancel=cancel)
    _print_steps(runner.view(run_id))
    if state is PipelineState.WAITING:
        typer.echo(f"Run {run_id} waits; `edgeloop loop resume {run_id}` continues it.")
    elif state is PipelineState.FAILED:
        raise typer.Exit(1)


def _print_steps(view) -> None:  # type: ignore[no-untyped-def]
    typer.echo(f"Run {view.id} ({view.trigger}): {view.state.value}")
    echo_table(["STEP", "STATE", "SECONDS", "RESULT"],
               [[name, state.value, f"{seconds:.1f}" if seconds else "-",
                 error or json.dumps(summary)[:80]]
                for name, state, seconds, summary, error in view.steps])


def demo(
    headless: Annotated[bool, typer.Option("--headless", help="No GUI: run the closed loop "
                                                              "on a simulated fleet and print "
                                                              "its table.")] = False,
    devices: DevicesOpt = 3,
    scenario: ScenarioOpt = "lighting",
    phase: PhaseOpt = 30.0,
    directory: DirOpt = None,
) -> None:
    """A simulated fleet and the app on a fresh demo project (or, headless, the closed loop).

    Without a display (no DISPLAY / WAYLAND_DISPLAY) it says so and runs the headless loop.
    """
    from app.ui.app import display_available

    if headless:
        run_headless(devices, scenario, phase, directory)
        return
    if not display_available():
        typer.echo("No display here (DISPLAY is not set), so the app cannot open: running "
                   "the headless closed loop instead. On a desktop, or under Xvfb, "
                   "`edgeloop demo` opens the app.")
        run_headless(devices, scenario, phase, directory)
        return
    raise typer.Exit(run_app_demo(devices, scenario, phase, directory))


def run_app_demo(devices: int, scenario: str, phase: float, directory: Path | None) -> int:
    """Prepare the demo fleet (printing each stage), then run the app on it."""
    from app.fleet.closed_loop import demo_progress
    from app.ui.demo import run_demo_app

    settings = _demo_settings(devices, scenario, phase)
    with _demo_folder(directory) as (root, cancel):
        typer.echo(f"Demo in {root}: {devices} simulated devices; preparing the project and "
                   "the fleet (a few minutes), then the app opens.")
        return run_demo_app(root, settings, say=typer.echo, progress=demo_progress(typer.echo),
                            cancel=cancel)
