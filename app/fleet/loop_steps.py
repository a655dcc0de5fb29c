"""The closed loop's steps: pull, observe, review, freeze, train, compress, gate, approve, deploy.

Each step is a function of a :class:`~app.core.pipeline.StepCall` that calls the same services
the CLI and the GUI call; :func:`loop_steps` lists them in order for
:class:`~app.core.pipeline.PipelineRunner`. Two steps wait for people: *review* until the
queue the observer filled is worked off (or enough new labels exist), *approval* until an
engineer approves the candidate, unless the project lets the loop approve a model that
passed the gate by itself (``auto_approve``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.core.compress_service import CompressRequest, compress_model
from app.core.datasets import freeze_version
from app.core.gate import GateBudget, run_gate
from app.core.model_store import deployed_model, find_model
from app.core.models import ArtifactFormat, ModelKind, ModelStatus, PipelineState, RolloutState
from app.core.observer import observe_captures
from app.core.pipeline import Step, StepCall, StepFailed, StepResult
from app.core.review_queue import mine_disagreements, open_count
from app.core.roles import Actor
from app.core.training import TrainConfig
from app.core.triggers import labels_since_last_freeze
from app.fleet.approval import approve_model
from app.fleet.context import FleetContext
from app.fleet.deploy import run_rollout, start_rollout
from app.fleet.pull import pull_devices
from app.fleet.rollout_plan import DEFAULT_SHARES, HealthBounds

Annotator = Callable[[], int]
"""Works the review queue (a person in the GUI; the generator's truth in the headless demo);
returns how many items it resolved."""

STEP_NAMES = ("pull", "observe", "review", "freeze", "train", "compress", "gate", "approval",
              "deploy")


@dataclass(frozen=True)
class LoopSettings:
    """How the loop trains, judges and ships a model."""

    dataset: str = "inspection"
    # Captures closer in time than this are kept in one split (None: the dataset default).
    # The simulator's frames are independent scenes, so its demo sets 0.
    near_window_s: float | None = None
    size: int = 96
    train: TrainConfig = field(default_factory=TrainConfig)
    fine_tune: bool = True  # start from the deployed model rather than from scratch
    formats: tuple[ArtifactFormat, ...] = (ArtifactFormat.ONNX, ArtifactFormat.ONNX_INT8)
    budget: GateBudget = field(default_factory=GateBudget)
    gate_latency_repeats: int = 50
    enough_labels: int = 200  # review may end with items left once this many are new
    auto_approve: bool = False
    canary: tuple[str, ...] = ()
    shares: tuple[float, ...] = DEFAULT_SHARES
    bounds: HealthBounds = field(default_factory=HealthBounds)
    low_confidence: float = 0.6
    spot_check_share: float = 0.1


def loop_steps(ctx: FleetContext, actor: Actor, settings: LoopSettings, *, runs_dir: Path,
               annotator: Annotator | None = None) -> list[Step]:
    """The loop's steps, bound to this project, actor and settings."""
    steps = _Steps(ctx, actor, settings, runs_dir, annotator)
    return [Step(name, getattr(steps, name)) for name in STEP_NAMES]


class _Steps:
    """The step functions; one method per step, named as in :data:`STEP_NAMES`."""

    def __init__(self, ctx: FleetContext, actor: Actor, settings: LoopSettings, runs_dir: Path,
                 annotator: Annotator | None) -> None:
        self.ctx, self.actor, self.settings = ctx, actor, settings
        self.runs_dir, self.annotator = runs_dir, annotator

    def pull(self, call: StepCall) -> StepResult:
        results = pull_devices(self.ctx, self.actor, progress=call.progress, cancel=call.cancel)
        failed = {r.uid: r.error for r in results if r.error}
        if results and len(failed) == len(results):
            raise StepFailed("no device could be pulled: " +
                             "; ".join(f"{uid}: {error}" for uid, error in failed.items()))
        return StepResult(summary={"imported": sum(r.imported for r in results),
                                   "devices": len(results), "failed": failed})

    def observe(self, call: StepCall) -> StepResult:
        c = self.ctx
        outcome = observe_captures(c.db, c.blobs, c.audit, self.actor, progress=call.progress,
                                   cancel=call.cancel)
        mined = mine_disagreements(c.db, c.audit, self.actor, outcome.observer_id,
                                   low_confidence=self.settings.low_confidence,
                                   spot_check_share=self.settings.spot_check_share, clock=c.clock)
        return StepResult(summary={"observed": outcome.observed, "unreadable": outcome.unreadable,
                                   "images_per_second": round(outcome.images_per_second, 1),
                                   "queued": mined.queued})

    def review(self, call: StepCall) -> StepResult:
        resolved = self.annotator() if self.annotator is not None else 0
        left = open_count(self.ctx.db)
        with self.ctx.db.read() as session:
            new = labels_since_last_freeze(session)
        summary = {"resolved_now": resolved, "open": left, "new_labels": new}
        if left == 0 or new >= self.settings.enough_labels:
            return StepResult(summary=summary)
        return StepResult(PipelineState.WAITING, summary)

    def freeze(self, call: StepCall) -> StepResult:
        c = self.ctx
        window = ({} if self.settings.near_window_s is None
                  else {"near_window_s": self.settings.near_window_s})
        version = freeze_version(c.db, c.audit, self.actor, self.settings.dataset,
                                 notes=f"pipeline run {call.run_id}", clock=c.clock,
                                 progress=call.progress, cancel=call.cancel, **window)
        return StepResult(summary={"version": version.ref, "total": version.total},
                          context={"dataset": version.ref})

    def train(self, call: StepCall) -> StepResult:
        from app.core.train_service import TrainRequest, train_model

        c = self.ctx
        with c.db.read() as session:
            deployed = deployed_model(session, ModelKind.EDGE)
            parent = deployed.version if deployed is not None and self.settings.fine_tune else None
        request = TrainRequest(kind=ModelKind.EDGE, dataset=call.context["dataset"],
                               parent=parent, size=self.settings.size,
                               config=self.settings.train)
        outcome = train_model(c.db, c.blobs, c.audit, self.actor, request, runs_dir=self.runs_dir,
                              clock=c.clock, progress=call.progress, cancel=call.cancel)
        return StepResult(summary={"version": outcome.version, "parent": parent,
                                   "test_accuracy": outcome.metrics.get("test_accuracy")},
                          context={"model": outcome.version})

    def compress(self, call: StepCall) -> StepResult:
        c = self.ctx
        outcome = compress_model(c.db, c.blobs, c.audit, self.actor, call.context["model"],
                                 CompressRequest(formats=self.settings.formats),
                                 progress=call.progress, cancel=call.cancel)
        return StepResult(summary={"sizes": outcome.sizes})

    def gate(self, call: StepCall) -> StepResult:
        c = self.ctx
        verdict = run_gate(c.db, c.blobs, c.audit, self.actor, call.context["model"],
                           self.settings.budget,
                           latency_repeats=self.settings.gate_latency_repeats,
                           progress=call.progress, cancel=call.cancel)
        if not verdict.passed:
            raise StepFailed(f"{verdict.version} failed the gate: " + "; ".join(verdict.reasons))
        return StepResult(summary={"baseline": verdict.baseline, "dataset": verdict.dataset})

    def approval(self, call: StepCall) -> StepResult:
        version = call.context["model"]
        with self.ctx.db.read() as session:
            status = find_model(session, version).status
        if status in (ModelStatus.APPROVED, ModelStatus.DEPLOYED):
            return StepResult(summary={"approved_by": "a person", "status": status.value})
        if status is not ModelStatus.GATE_PASSED:
            raise StepFailed(f"{version} is {status.value}: it cannot be approved")
        if not self.settings.auto_approve:
            return StepResult(PipelineState.WAITING,
                              {"waiting_for": f"an engineer to run `edgeloop models approve "
                                              f"{version}`"})
        approve_model(self.ctx, self.actor, version, note=f"auto-approved by pipeline run "
                                                          f"{call.run_id}")
        return StepResult(summary={"approved_by": "the loop (auto_approve)"})

    def deploy(self, call: StepCall) -> StepResult:
        s = self.settings
        rollout_id = call.context.get("rollout")
        if rollout_id is None:
            rollout_id = start_rollout(self.ctx, self.actor, call.context["model"],
                                       canary=s.canary, shares=s.shares, bounds=s.bounds)
            call.remember({"rollout": rollout_id})
        state = run_rollout(self.ctx, self.actor, rollout_id, progress=call.progress,
                            cancel=call.cancel)
        if state is not RolloutState.COMPLETED:
            raise StepFailed(f"rollout {rollout_id} ended {state.value}: "
                             f"`edgeloop rollout status {rollout_id}` says why")
        return StepResult(summary={"rollout": rollout_id}, context={"rollout": rollout_id})
