"""The loop on a real fleet, unattended: what ``edgeloop loop watch`` does every interval.

One :func:`watch_once` polls the fleet's health (which brings the devices' drift statistics
in), measures drift over the last hour when a baseline exists, moves a waiting pipeline run on
(reviews done, approval given), and otherwise starts a run when a trigger fires. Pulling and
observing happen inside the run, so captures are pulled when the loop needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from app.core.drift_monitor import measure_drift
from app.core.errors import InvalidInput
from app.core.models import PipelineState
from app.core.pipeline import PipelineRunner
from app.core.progress import CancelToken, ProgressFn, no_progress
from app.core.roles import Actor
from app.core.triggers import clear_request, due_trigger, load_settings
from app.fleet.context import FleetContext
from app.fleet.health import poll_fleet
from app.fleet.loop_steps import LoopSettings, loop_steps


@dataclass(frozen=True)
class WatchReport:
    """What one pass did, for a status line."""

    devices_polled: int
    drift_alerts: int
    drift_note: str
    run_id: int | None
    run_state: PipelineState | None
    trigger: str | None


def watch_once(ctx: FleetContext, actor: Actor, settings: LoopSettings, *, runs_dir: Path,
               code_version: str, progress: ProgressFn = no_progress,
               cancel: CancelToken | None = None) -> WatchReport:
    """One pass of the watcher (see the module docstring)."""
    polled = poll_fleet(ctx)
    now = ctx.clock()
    try:
        report = measure_drift(ctx.db, ctx.audit, actor, since=now - timedelta(hours=1),
                               until=now, clock=ctx.clock)
        alerts, note = len(report.alerts), f"{len(report.measurements)} drift statistics"
    except InvalidInput as exc:  # no deployed model or no baseline yet: nothing to compare
        alerts, note = 0, f"drift not measured: {exc}"
    triggers = load_settings(ctx.db)
    steps = loop_steps(ctx, actor, replace(settings, auto_approve=triggers.auto_approve),
                       runs_dir=runs_dir)
    runner = PipelineRunner(ctx.db, ctx.audit, actor, steps, clock=ctx.clock)
    run_id, fired = runner.unfinished(), None
    if run_id is None:
        trigger = due_trigger(ctx.db, triggers, code_version=code_version, now=ctx.clock())
        if trigger is None:
            return WatchReport(len(polled), alerts, note, None, None, None)
        clear_request(ctx.db)
        run_id, fired = runner.start(trigger.name, trigger.reason), trigger.name
    state = runner.advance(run_id, progress=progress, cancel=cancel)
    return WatchReport(len(polled), alerts, note, run_id, state, fired)
