"""The pipeline runner: a run of named steps that survives crashes and waits for people.

A run is a :class:`~app.core.models.PipelineRun` with one
:class:`~app.core.models.PipelineStep` row per step, in order. :meth:`PipelineRunner.advance`
runs the first step that has not succeeded, then the next, until one waits (a person must
review or approve), fails, or the run is done. Each step's state is committed before and after
it runs, so after a crash the next ``advance`` runs the interrupted step again and never one
that succeeded. What a step hands on (a dataset version, a model version, a rollout id) goes
into the run's ``context``. Every transition is audited.

The steps themselves are plain functions given here by the caller (the fleet's loop in
:mod:`app.fleet.loop_steps`), so this module knows nothing about devices.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.core.audit import AuditTrail
from app.core.db import Database
from app.core.errors import EdgeLoopError, InvalidInput
from app.core.models import PipelineRun, PipelineState, PipelineStep, utcnow
from app.core.progress import Cancelled, CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
UNFINISHED = (PipelineState.PENDING, PipelineState.RUNNING, PipelineState.WAITING)


@dataclass(frozen=True)
class StepResult:
    """What a step did: SUCCEEDED, SKIPPED (nothing to do), or WAITING (for people).

    ``context`` is merged into the run's context; ``summary`` is stored on the step.
    """

    state: PipelineState = PipelineState.SUCCEEDED
    summary: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepCall:
    """What a step is given: the run's id and context so far, progress and cancel.

    ``remember`` commits context at once, mid-step: what a step started that must not be
    started twice (a rollout) is then found by the step's next attempt after a crash.
    """

    run_id: int
    context: dict[str, Any]
    progress: ProgressFn
    cancel: CancelToken
    remember: Callable[[dict[str, Any]], None]


StepFn = Callable[[StepCall], StepResult]


@dataclass(frozen=True)
class Step:
    """A named step of the pipeline."""

    name: str
    run: StepFn


class StepFailed(EdgeLoopError):
    """A step could not do its work; the run stops there (its message says why)."""


@dataclass(frozen=True)
class RunView:
    """A run and its steps as the CLI and GUI show them."""

    id: int
    trigger: str
    reason: str
    state: PipelineState
    context: dict[str, Any]
    error: str | None
    steps: list[tuple[str, PipelineState, float | None, dict[str, Any], str | None]]


class PipelineRunner:
    """Starts, advances and cancels runs of ``steps`` in one project."""

    def __init__(self, db: Database, audit: AuditTrail, actor: Actor, steps: Sequence[Step], *,
                 clock: Clock = utcnow) -> None:
        names = [s.name for s in steps]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"pipeline steps need unique names, got {names}")
        self.db, self.audit, self.actor, self.clock = db, audit, actor, clock
        self.steps = list(steps)

    def start(self, trigger: str, reason: str = "", context: dict[str, Any] | None = None) -> int:
        """Open a new run; refused while another run is unfinished (one loop at a time)."""
        with self.db.write() as session:
            busy = session.scalar(select(PipelineRun.id).where(PipelineRun.state.in_(UNFINISHED)))
            if busy is not None:
                raise InvalidInput(f"pipeline run {busy} is not finished: resume or cancel it "
                                   "(`edgeloop loop status`) before starting another")
            run = PipelineRun(trigger=trigger, reason=reason[:2000], context=context or {},
                              started_by=self.actor.name, created_at=self.clock())
            session.add(run)
            session.flush()
            for position, step in enumerate(self.steps):
                session.add(PipelineStep(run_id=run.id, position=position, name=step.name))
            self.audit.append(session, actor=self.actor.name, action="pipeline.start",
                              object_type="pipeline_run", object_id=str(run.id),
                              after={"trigger": trigger, "reason": reason[:500],
                                     "steps": [s.name for s in self.steps]})
            return run.id

    def unfinished(self) -> int | None:
        """The id of the run still under way, if any."""
        with self.db.read() as session:
            return session.scalar(select(PipelineRun.id).where(PipelineRun.state.in_(UNFINISHED)))

    def advance(self, run_id: int, *, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> PipelineState:
        """Run steps from the first unfinished one until the run waits, fails or ends."""
        cancel = cancel or CancelToken()
        by_name = {s.name: s for s in self.steps}
        while True:
            with self.db.write() as session:
                run = _get_run(session, run_id)
                if run.state not in UNFINISHED:
                    return run.state
                step = session.scalar(select(PipelineStep).where(
                    PipelineStep.run_id == run_id,
                    PipelineStep.state.in_(UNFINISHED)).order_by(PipelineStep.position).limit(1))
                if step is None:
                    self._finish(session, run, PipelineState.SUCCEEDED, None)
                    return PipelineState.SUCCEEDED
                if step.name not in by_name:
                    raise InvalidInput(f"run {run_id} has a step {step.name!r} this EdgeLoop "
                                       "does not know; cancel the run")
                resumed = step.state is PipelineState.RUNNING
                step.state, step.attempts = PipelineState.RUNNING, step.attempts + 1
                step.started_at = step.started_at or self.clock()
                run.state = PipelineState.RUNNING
                context, name = dict(run.context), step.name
                if resumed:
                    log.warning("pipeline run %s: step %s was interrupted; running it again",
                                run_id, name)
            progress(Progress(name, 0, 1, f"run {run_id}: {name}"))
            started = time.perf_counter()
            try:
                result = by_name[name].run(StepCall(run_id, context, progress, cancel,
                                                    lambda c: self._remember(run_id, c)))
            except Cancelled:
                self.cancel(run_id, f"cancelled during {name}")
                raise
            except Exception as exc:  # a step's failure ends the run with its reason
                message = str(exc) or type(exc).__name__
                if not isinstance(exc, EdgeLoopError):
                    log.error("pipeline step %s failed:\n%s", name, traceback.format_exc())
                self._record(run_id, name, PipelineState.FAILED, {}, {}, message,
                             time.perf_counter() - started)
                return PipelineState.FAILED
            self._record(run_id, name, result.state, result.summary, result.context, None,
                         time.perf_counter() - started)
            if result.state is PipelineState.WAITING:
                return PipelineState.WAITING

    def cancel(self, run_id: int, reason: str) -> None:
        """Stop a run; its finished steps stay recorded."""
        with self.db.write() as session:
            run = _get_run(session, run_id)
            if run.state in UNFINISHED:
                for step in session.scalars(select(PipelineStep).where(
                        PipelineStep.run_id == run_id, PipelineStep.state.in_(UNFINISHED))):
                    step.state = PipelineState.CANCELLED
                self._finish(session, run, PipelineState.CANCELLED, reason)

    def view(self, run_id: int) -> RunView:
        return view_run(self.db, run_id)

    # -- internals -------------------------------------------------------------------------------
    def _remember(self, run_id: int, context: dict[str, Any]) -> None:
        with self.db.write() as session:
            run = _get_run(session, run_id)
            run.context = {**run.context, **context}

    def _record(self, run_id: int, name: str, state: PipelineState, summary: dict[str, Any],
                context: dict[str, Any], error: str | None, seconds: float) -> None:
        with self.db.write() as session:
            run = _get_run(session, run_id)
            step = session.scalar(select(PipelineStep).where(PipelineStep.run_id == run_id,
                                                             PipelineStep.name == name))
            step.state, step.error = state, error
            step.result = summary
            step.seconds = (step.seconds or 0.0) + seconds
            if state is not PipelineState.WAITING:
                step.finished_at = self.clock()
            run.context = {**run.context, **context}
            self.audit.append(session, actor=self.actor.name, action=f"pipeline.step.{state.value}",
                              object_type="pipeline_run", object_id=str(run_id),
                              after={"step": name, "summary": summary, "error": error,
                                     "seconds": round(seconds, 2)})
            if state is PipelineState.FAILED:
                self._finish(session, run, PipelineState.FAILED, f"{name}: {error}")
            elif state is PipelineState.WAITING:
                run.state = PipelineState.WAITING

    def _finish(self, session: Any, run: PipelineRun, state: PipelineState,
                error: str | None) -> None:
        run.state, run.error, run.finished_at = state, error, self.clock()
        self.audit.append(session, actor=self.actor.name, action=f"pipeline.{state.value}",
                          object_type="pipeline_run", object_id=str(run.id),
                          after={"error": error})


def _get_run(session: Any, run_id: int) -> PipelineRun:
    run = session.get(PipelineRun, run_id)
    if run is None:
        raise InvalidInput(f"no pipeline run {run_id}; `edgeloop loop status` lists them")
    return run


def view_run(db: Database, run_id: int) -> RunView:
    """A run and its steps, detached from the session."""
    with db.read() as session:
        run = _get_run(session, run_id)
        steps = list(session.scalars(select(PipelineStep).where(PipelineStep.run_id == run_id)
                                     .order_by(PipelineStep.position)))
        return RunView(run.id, run.trigger, run.reason, run.state, dict(run.context), run.error,
                       [(s.name, s.state, s.seconds, dict(s.result or {}), s.error)
                        for s in steps])


def recent_runs(db: Database, limit: int = 20) -> list[RunView]:
    with db.read() as session:
        ids = list(session.scalars(select(PipelineRun.id).order_by(PipelineRun.id.desc())
                                   .limit(limit)))
    return [view_run(db, i) for i in ids]
