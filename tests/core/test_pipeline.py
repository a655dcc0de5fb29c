"""The pipeline runner (steps in order, waits, failures, crash resume) and the loop's triggers."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.errors import InvalidInput
from app.core.models import (
    AuditEvent, DriftMeasurement, ModelKind, ModelStatus, ModelVersion, PipelineState,
    PipelineStep, RunStatus, TrainingRun,
)
from app.core.pipeline import PipelineRunner, Step, StepCall, StepFailed, StepResult, view_run
from app.core.progress import CancelToken, Cancelled
from app.core.project import Project
from app.core.triggers import TriggerSettings, due_trigger, request_run
from app.core.users import actor_named


class Steps:
    """Recording fake steps; ``behaviour`` says what each does on its next call."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.behaviour: dict[str, str] = {}
        self.seen: dict[str, dict] = {}

    def step(self, name: str) -> Step:
        def run(call: StepCall) -> StepResult:
            self.calls[name] += 1
            self.seen[name] = dict(call.context)
            what = self.behaviour.pop(name, "ok")
            if what == "wait":
                return StepResult(PipelineState.WAITING, {"waiting": True})
            if what == "fail":
                raise StepFailed(f"{name} could not")
            if what == "crash":
                call.remember({f"{name}_started": True})
                raise SystemExit("the workstation lost power")
            if what == "cancel":
                raise Cancelled("cancelled by the user")
            return StepResult(summary={"did": name}, context={f"{name}_out": call.run_id})
        return Step(name, run)

    def all(self, *names: str) -> list[Step]:
        return [self.step(n) for n in names]


def runner(project: Project, steps: list[Step]) -> PipelineRunner:
    return PipelineRunner(project.db, project.audit, actor_named(project.db, "admin"), steps,
                          clock=project.clock)


def test_steps_run_in_order_and_hand_on_their_context(sqlite_project: Project) -> None:
    fake = Steps()
    r = runner(sqlite_project, fake.all("a", "b", "c"))
    run_id = r.start("request", "a test")
    assert r.advance(run_id) is PipelineState.SUCCEEDED
    assert fake.calls == Counter({"a": 1, "b": 1, "c": 1})
    assert fake.seen["c"] == {"a_out": run_id, "b_out": run_id}
    view = view_run(sqlite_project.db, run_id)
    assert [s[1] for s in view.steps] == [PipelineState.SUCCEEDED] * 3
    assert all(s[2] is not None for s in view.steps)
    with sqlite_project.db.read() as session:
        actions = list(session.scalars(select(AuditEvent.action).where(
            AuditEvent.object_type == "pipeline_run")))
    assert actions.count("pipeline.step.succeeded") == 3 and "pipeline.succeeded" in actions


def test_a_waiting_step_pauses_the_run_and_is_asked_again(sqlite_project: Project) -> None:
    fake = Steps()
    fake.behaviour["b"] = "wait"
    r = runner(sqlite_project, fake.all("a", "b", "c"))
    run_id = r.start("request")
    assert r.advance(run_id) is PipelineState.WAITING
    assert fake.calls == Counter({"a": 1, "b": 1})
    with pytest.raises(InvalidInput, match="is not finished"):
        r.start("request")
    assert r.advance(run_id) is PipelineState.SUCCEEDED
    assert fake.calls == Counter({"a": 1, "b": 2, "c": 1})


def test_a_failed_step_ends_the_run_with_its_reason(sqlite_project: Project) -> None:
    fake = Steps()
    fake.behaviour["b"] = "fail"
    r = runner(sqlite_project, fake.all("a", "b", "c"))
    run_id = r.start("drift")
    assert r.advance(run_id) is PipelineState.FAILED
    view = view_run(sqlite_project.db, run_id)
    assert view.state is PipelineState.FAILED and view.error == "b: b could not"
    assert fake.calls["c"] == 0
    assert r.advance(run_id) is PipelineState.FAILED and fake.calls["c"] == 0
    r.start("request")  # a finished run does not block the next


def test_after_a_crash_the_interrupted_step_runs_again_and_no_finished_one(
        sqlite_project: Project) -> None:
    fake = Steps()
    fake.behaviour["b"] = "crash"
    r = runner(sqlite_project, fake.all("a", "b", "c"))
    run_id = r.start("schedule")
    with pytest.raises(SystemExit):
        r.advance(run_id)
    with sqlite_project.db.read() as session:
        step = session.scalar(select(PipelineStep).where(PipelineStep.run_id == run_id,
                                                         PipelineStep.name == "b"))
        assert step.state is PipelineState.RUNNING
    # A new process: a new runner over the same project.
    again = runner(sqlite_project, fake.all("a", "b", "c"))
    assert again.unfinished() == run_id
    assert again.advance(run_id) is PipelineState.SUCCEEDED
    assert fake.calls == Counter({"a": 1, "b": 2, "c": 1})
    assert fake.seen["b"]["b_started"] is True  # remembered before the crash
    with sqlite_project.db.read() as session:
        step = session.scalar(select(PipelineStep).where(PipelineStep.run_id == run_id,
                                                         PipelineStep.name == "b"))
        assert step.attempts == 2


def test_cancelling_mid_step_cancels_the_run(sqlite_project: Project) -> None:
    fake = Steps()
    fake.behaviour["a"] = "cancel"
    r = runner(sqlite_project, fake.all("a", "b"))
    run_id = r.start("request")
    with pytest.raises(Cancelled):
        r.advance(run_id, cancel=CancelToken())
    view = view_run(sqlite_project.db, run_id)
    assert view.state is PipelineState.CANCELLED
    assert {s[1] for s in view.steps} == {PipelineState.CANCELLED}


def test_step_names_must_be_unique() -> None:
    fake = Steps()
    with pytest.raises(ValueError, match="unique"):
        PipelineRunner(None, None, None, fake.all("a", "a"))  # type: ignore[arg-type]


# -- triggers -----------------------------------------------------------------------------------


def test_triggers_fire_in_order_of_precedence(sqlite_project: Project, clock) -> None:  # type: ignore[no-untyped-def]
    p = sqlite_project
    NOW = clock()
    admin = actor_named(p.db, "admin")
    quiet = TriggerSettings(min_new_labels=None, on_drift_alert=False)
    assert due_trigger(p.db, quiet, code_version="1", now=NOW) is None
    assert due_trigger(p.db, TriggerSettings(schedule_hours=24), code_version="1",
                       now=NOW).name == "schedule"  # never ran: due at once

    import_generated(p.db, p.blobs, p.audit, admin, 30, seed=1, size=64)
    labels = TriggerSettings(min_new_labels=30, on_drift_alert=False)
    assert due_trigger(p.db, labels, code_version="1", now=NOW).name == "labels"
    freeze_version(p.db, p.audit, admin)
    assert due_trigger(p.db, labels, code_version="1", now=NOW) is None  # all frozen now

    with p.db.write() as session:
        session.add(DriftMeasurement(metric="psi_input", value=0.6, threshold=0.25, alert=True,
                                     window_start=NOW - timedelta(hours=1), window_end=NOW,
                                     measured_at=NOW))
    fired = due_trigger(p.db, TriggerSettings(), code_version="1", now=NOW)
    assert fired is not None and fired.name == "drift" and "psi_input" in fired.reason
    # Once a run started after the alert, the alert has been acted on.
    clock.advance(minutes=1)
    runner(p, Steps().all("a")).start("drift")
    assert due_trigger(p.db, TriggerSettings(), code_version="1", now=clock()) is None

    request_run(p.db, p.audit, admin, "new camera lens", clock=lambda: NOW)
    fired = due_trigger(p.db, TriggerSettings(), code_version="1", now=NOW)
    assert fired.name == "request" and "new camera lens" in fired.reason


def test_new_training_code_triggers_a_retrain(sqlite_project: Project, clock) -> None:  # type: ignore[no-untyped-def]
    p = sqlite_project
    admin = actor_named(p.db, "admin")
    import_generated(p.db, p.blobs, p.audit, admin, 10, seed=1, size=64)
    version = freeze_version(p.db, p.audit, admin)
    with p.db.write() as session:
        run = TrainingRun(kind=ModelKind.EDGE, dataset_version_id=version.id,
                          code_version="0.4.0+abc", status=RunStatus.SUCCEEDED)
        session.add(run)
        session.flush()
        session.add(ModelVersion(version="edge-1", kind=ModelKind.EDGE, training_run_id=run.id,
                                 status=ModelStatus.DEPLOYED))
    on = TriggerSettings(min_new_labels=None, on_code_change=True)
    assert due_trigger(p.db, on, code_version="0.4.0+abc", now=clock()) is None
    fired = due_trigger(p.db, on, code_version="0.5.0+def", now=clock())
    assert fired is not None and fired.name == "code" and "0.4.0+abc" in fired.reason
    off = TriggerSettings(min_new_labels=None)
    assert due_trigger(p.db, off, code_version="0.5.0+def", now=clock()) is None


def test_bad_trigger_settings_are_refused() -> None:
    with pytest.raises(InvalidInput, match="schedule_hours"):
        TriggerSettings(schedule_hours=0)
    with pytest.raises(InvalidInput, match="unknown loop trigger"):
        TriggerSettings.from_json({"every": 3})
