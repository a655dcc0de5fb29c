"""The unattended watcher: a trigger starts a pipeline run, and a failing step says why."""

from __future__ import annotations

from app.core.models import PipelineState
from app.core.pipeline import view_run
from app.core.project import Project
from app.core.triggers import TriggerSettings, request_run, save_settings
from app.core.users import actor_named
from app.fleet.context import FleetContext
from app.fleet.loop_steps import LoopSettings
from app.fleet.loop_watch import watch_once


def test_a_request_starts_a_run_once(sqlite_project: Project) -> None:
    p = sqlite_project
    ctx, admin = FleetContext.of(p), actor_named(p.db, "admin")
    save_settings(p.db, p.audit, admin, TriggerSettings(min_new_labels=None))
    quiet = watch_once(ctx, admin, LoopSettings(), runs_dir=p.root / "runs", code_version="1")
    assert quiet.run_id is None and "drift not measured" in quiet.drift_note

    request_run(p.db, p.audit, admin, "new lens", clock=p.clock)
    first = watch_once(ctx, admin, LoopSettings(), runs_dir=p.root / "runs", code_version="1")
    assert first.trigger == "request" and first.run_id is not None
    # No device and no observer: pull has nothing to do, observe cannot run, and says so.
    assert first.run_state is PipelineState.FAILED
    view = view_run(p.db, first.run_id)
    assert view.error is not None and "no observer model" in view.error
    assert [s[1] for s in view.steps[:2]] == [PipelineState.SUCCEEDED, PipelineState.FAILED]

    again = watch_once(ctx, admin, LoopSettings(), runs_dir=p.root / "runs", code_version="1")
    assert again.run_id is None  # the request was used up
