"""The closed loop, headless, on a simulated fleet: drift comes, is caught, and is trained away.

:class:`ClosedLoopDemo` is what ``edgeloop demo --headless`` and ``edgeloop loop --auto
--simulate`` run. It builds a project whose release 1 is trained on generated scenes of the
fleet's own stations, starts the simulated fleet (real agents, SSH servers and mDNS on
loopback), discovers and enrolls it, and then:

1. *before*: the devices run clean for a phase; pull, observe, measure drift;
2. *drift*: the chosen scenario is switched on (on all or some devices); same again, and the
   drift alert is what triggers a pipeline run;
3. the run: pull, observe, review (the generator's ground truth, carried in each simulated
   capture's sidecar, plays the annotator), freeze, train (fine-tuning the deployed model),
   compress, gate, approval (auto) and a staged deploy;
4. *after*: the devices run under the drift with the new model for a phase.

Device accuracy in each phase is measured on the captures the devices kept *at random*
(``random_sample``), against their ground truth: captures kept for low confidence would make
any model look bad. Each phase and step is timed; :class:`DemoResult` holds the table.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from app.core.augment import AugmentConfig
from app.core.compress_service import CompressRequest, compress_model
from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.drift_monitor import DriftReport, DriftSettings, build_baseline, measure_drift
from app.core.gate import GateBudget, run_gate
from app.core.model_store import find_model
from app.core.models import (
    AnnotationSource, Capture, CaptureReason, LabelClass, ModelKind, ModelStatus, ReviewItem,
    Role,
)
from app.core.pipeline import PipelineRunner, view_run
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.project import Project, init_project
from app.core.review_queue import resolve_item
from app.core.roles import Actor
from app.core.training import TrainConfig
from app.core.triggers import TriggerSettings, due_trigger
from app.core.users import actor_named, add_user
from app.fleet.approval import approve_model
from app.fleet.context import FleetContext
from app.fleet.discovery import discover_sync
from app.fleet.enrollment import Bootstrap, enroll
from app.fleet.health import poll_fleet
from app.fleet.loop_steps import LoopSettings, loop_steps
from app.fleet.pull import pull_devices
from app.fleet.registry import DeviceRegistry
from app.fleet.rollout_plan import HealthBounds
from app.fleet.signing import load_or_create_signing_key
from app.fleet.simulator import SimDeviceSpec, SimulatedFleet

Say = Callable[[str], None]
ANNOTATOR = "sim-annotator"


@dataclass(frozen=True)
class DemoSettings:
    """The size of the demo; the defaults take a few minutes on a 2-core CPU."""

    devices: int = 3
    scenario: str = "lighting"
    drifted: int | None = None  # how many devices drift (the first N); None: all
    fps: float = 10.0
    random_rate: float = 0.5
    size: int = 96
    baseline_per_device: int = 400
    edge_epochs: int = 12
    observer_arch: str = "edgenet"
    observer_width: float = 2.0
    observer_epochs: int = 10
    phase_seconds: float = 30.0
    # Under the drift the devices run longer: that is where the new labels come from, and
    # the retrained model needs several hundred of them (measured: ~250 drifted labels got
    # the lighting drift back to 0.5 accuracy, ~1,000 to 0.85).
    drift_seconds: float = 60.0
    retrain: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=10, lr=3e-3, patience=10, augment=AugmentConfig.preset("mild")))
    budget: GateBudget = field(default_factory=lambda: GateBudget(recall_tolerance=0.05))
    seed: int = 100
    # The simulated devices' ids are "<tag>-01"...: mDNS on loopback is shared by everything
    # on this machine, so two fleets running at once (a demo and a test) need different tags.
    device_tag: str = "sim"

    def specs(self, tag: str) -> list[SimDeviceSpec]:
        return [SimDeviceSpec(f"{tag}-{i + 1:02d}", seed=self.seed + i, fps=self.fps,
                              random_rate=self.random_rate) for i in range(self.devices)]


@dataclass
class Phase:
    """One stretch of the demo: which model ran under which scenario, and how well."""

    name: str
    model: str
    scenario: str
    accuracy: float | None
    captures: int
    seconds: float
    alerts: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    """The recovery table and the time of each stage."""

    phases: list[Phase] = field(default_factory=list)
    stages: list[tuple[str, float]] = field(default_factory=list)
    run_id: int | None = None
    run_state: str | None = None
    trigger: str | None = None

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def table(self) -> str:
        lines = [f"{'phase':<8} {'model':<8} {'scenario':<12} {'accuracy':>9} {'n':>5} "
                 f"{'seconds':>8}  alerts"]
        for p in self.phases:
            accuracy = "-" if p.accuracy is None else f"{p.accuracy:.3f}"
            lines.append(f"{p.name:<8} {p.model:<8} {p.scenario:<12} {accuracy:>9} "
                         f"{p.captures:>5} {p.seconds:>8.1f}  {', '.join(p.alerts) or '-'}")
        lines.append("")
        lines.append(f"{'stage':<22} {'seconds':>8}")
        lines += [f"{name:<22} {seconds:>8.1f}" for name, seconds in self.stages]
        return "\n".join(lines)


class ClosedLoopDemo:
    """Sets up a project and fleet under ``root`` and runs the loop through one drift."""

    def __init__(self, root: Path, settings: DemoSettings = DemoSettings(), *,
                 say: Say = print, progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None) -> None:
        self.root = Path(root)
        self.settings = settings
        self.say, self.progress = say, progress
        self.cancel = cancel or CancelToken()
        self.result = DemoResult()
        self.project: Project | None = None
        self.fleet: SimulatedFleet | None = None

    # -- the whole demo ------------------------------------------------------------------------
    def run(self) -> DemoResult:
        try:
            ctx, admin = self.prepare()
            self.run_pipeline(ctx, admin)
            self._phase(ctx, admin, "after", self.settings.scenario)
        finally:
            self.close()
        return self.result

    def prepare(self, drift: bool = True) -> tuple[FleetContext, Actor]:
        """Everything before the pipeline: the project, the running fleet, the clean phase
        and (with ``drift``) the drifted one, whose alert is what a pipeline run answers.
        The desktop demo stops here and hands the running fleet to the app."""
        ctx, admin = self._timed("set up the project", self._setup_project)
        self._timed("start the fleet", lambda: self._start_fleet(ctx, admin))
        self._phase(ctx, admin, "before", "none")
        if drift:
            self._switch_drift()
            self._phase(ctx, admin, "drift", self.settings.scenario, self.settings.drift_seconds)
        return ctx, admin

    def fill_review_queue(self, ctx: FleetContext, admin: Actor) -> int:
        """Pull what the devices captured since, observe it, and queue what needs a person
        (the desktop demo's Review and Label pages start with work); how many were queued."""
        from app.core.observer import observe_captures
        from app.core.review_queue import mine_disagreements

        pull_devices(ctx, admin, cancel=self.cancel)
        outcome = observe_captures(ctx.db, ctx.blobs, ctx.audit, admin, cancel=self.cancel)
        queued = mine_disagreements(ctx.db, ctx.audit, admin, outcome.observer_id).total
        self.say(f"   {queued} captures queued for review")
        return queued

    def release_project(self) -> Path:
        """Close the project (the fleet keeps running) so another process or window can own
        it; its folder."""
        assert self.project is not None
        root = self.project.root
        self.project.close()
        self.project = None
        return root

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
            self.fleet = None
        if self.project is not None:
            self.project.close()
            self.project = None

    def _timed(self, name: str, work: Callable[[], object]) -> object:
        self.cancel.check()
        self.say(f"== {name}")
        started = time.perf_counter()
        value = work()
        self.result.stages.append((name, time.perf_counter() - started))
        return value

    # -- setup ---------------------------------------------------------------------------------
    def _setup_project(self) -> tuple[FleetContext, Actor]:
        from app.core.train_service import TrainRequest, train_model

        s = self.settings
        project = self.project = init_project(self.root / "project", admin="admin")
        admin = actor_named(project.db, "admin")
        add_user(project.db, project.audit, admin, ANNOTATOR, Role.ANNOTATOR,
                 full_name="the generator's ground truth, playing the annotator")
        db, blobs, audit = project.db, project.blobs, project.audit
        for i, spec in enumerate(s.specs("station")):
            import_generated(db, blobs, audit, admin, s.baseline_per_device, seed=spec.seed,
                             size=s.size, device_uid=f"station-{i + 1:02d}",
                             progress=self.progress, cancel=self.cancel)
        version = freeze_version(db, audit, admin, notes="generated scenes of the stations")
        self.say(f"   dataset {version.ref}: {version.total} labelled scenes")
        runs = project.root / "runs"
        edge = train_model(db, blobs, audit, admin, TrainRequest(
            kind=ModelKind.EDGE, dataset=version.ref, size=s.size,
            config=TrainConfig(epochs=s.edge_epochs, augment=AugmentConfig.preset("flip"))),
            runs_dir=runs, progress=self.progress, cancel=self.cancel)
        self.say(f"   {edge.version}: test accuracy {edge.metrics['test_accuracy']:.3f}")
        observer = train_model(db, blobs, audit, admin, TrainRequest(
            kind=ModelKind.OBSERVER, dataset=version.ref, size=s.size, arch=s.observer_arch,
            width=s.observer_width,
            config=TrainConfig(epochs=s.observer_epochs, augment=AugmentConfig.preset("mild"))),
            runs_dir=runs, progress=self.progress, cancel=self.cancel)
        self.say(f"   {observer.version}: test accuracy "
                 f"{observer.metrics['test_accuracy']:.3f}")
        compress_model(db, blobs, audit, admin, edge.version, CompressRequest(
            formats=LoopSettings().formats), progress=self.progress, cancel=self.cancel)
        verdict = run_gate(db, blobs, audit, admin, edge.version, s.budget, latency_repeats=20)
        if not verdict.passed:
            raise RuntimeError(f"release 1 failed the gate: {verdict.reasons}")
        ctx = FleetContext.of(project)
        release = approve_model(ctx, admin, edge.version, note="release 1 of the demo fleet")
        folder = self.root / "releases" / edge.version
        with tarfile.open(fileobj=io.BytesIO(release.tar), mode="r:") as archive:
            archive.extractall(folder, filter="data")
        self.release_dir = folder
        build_baseline(db, blobs, edge=edge.version, observer=observer.version,
                       progress=self.progress, cancel=self.cancel)
        return ctx, admin

    def _start_fleet(self, ctx: FleetContext, admin: Actor) -> None:
        s = self.settings
        assert self.project is not None
        key = load_or_create_signing_key(ctx.keys_dir)
        self.fleet = SimulatedFleet(self.root / "fleet", key, self.release_dir, s.specs(s.device_tag),
                                    authorized_keys=[ctx.identity.public_line], size=s.size,
                                    drift_flush_s=5.0)
        devices = self.fleet.start()
        wanted = {d.spec.device_id for d in devices}
        found: set[str] = set()
        deadline = time.monotonic() + 30
        while not wanted <= found and time.monotonic() < deadline:
            sightings = [x for x in discover_sync(["127.0.0.1"], 1.5) if x.uid in wanted]
            DeviceRegistry(ctx.db, ctx.audit, ctx.clock).record_many(sightings)
            found |= {x.uid for x in sightings}
        missing = wanted - found
        if missing:
            raise RuntimeError(f"mDNS did not find {sorted(missing)} on loopback in 30 s")
        key_file = ctx.keys_dir / "workstation_ed25519"
        for device in devices:
            enroll(ctx, admin, device.spec.device_id,
                   confirmed_fingerprint=device.endpoint.host_key_fingerprint,
                   bootstrap=Bootstrap(key_file=key_file))
        self._mark_factory_deployed(ctx, admin)
        self.say(f"   {len(devices)} devices discovered over mDNS and enrolled")

    def _mark_factory_deployed(self, ctx: FleetContext, admin: Actor) -> None:
        """Release 1 is the devices' factory image: they run it from the start."""
        with ctx.db.write() as session:
            row = find_model(session, self.release_dir.name)
            row.status = ModelStatus.DEPLOYED
            ctx.audit.append(session, actor=admin.name, action="model.deployed",
                             object_type="model_version", object_id=row.version,
                             after={"how": "factory image of the simulated fleet"})

    # -- phases --------------------------------------------------------------------------------
    def _switch_drift(self) -> None:
        assert self.fleet is not None
        ids = [d.spec.device_id for d in self.fleet.devices]
        drifted = ids[: self.settings.drifted] if self.settings.drifted else ids
        self.fleet.set_scenario(self.settings.scenario, drifted)
        self.say(f"== drift: {self.settings.scenario} on {', '.join(drifted)}")

    def _phase(self, ctx: FleetContext, admin: Actor, name: str, scenario: str,
               seconds: float | None = None) -> Phase:
        seconds = self.settings.phase_seconds if seconds is None else seconds
        self.say(f"== phase {name}: devices run {seconds:.0f} s ({scenario})")
        started_at = ctx.clock()
        started = time.perf_counter()
        self.cancel.check()
        if self.cancel.wait(seconds):
            self.cancel.check()
        pull_devices(ctx, admin, cancel=self.cancel)
        poll_fleet(ctx)
        report = self._observe_and_measure(ctx, admin, started_at)
        model = self._running_model(ctx)
        accuracy, n = self._accuracy(ctx, started_at, model, scenario)
        phase = Phase(name, model, scenario, accuracy, n, time.perf_counter() - started,
                      [f"{m.scope}:{m.metric}" for m in report.alerts])
        self.result.phases.append(phase)
        self.say(f"   accuracy {'-' if accuracy is None else f'{accuracy:.3f}'} on {n} "
                 f"random captures; alerts: {', '.join(phase.alerts) or 'none'}")
        return phase

    def _observe_and_measure(self, ctx: FleetContext, admin: Actor,
                             since: datetime) -> DriftReport:
        from app.core.observer import observe_captures

        observe_captures(ctx.db, ctx.blobs, ctx.audit, admin, cancel=self.cancel)
        return measure_drift(ctx.db, ctx.audit, admin, since=since, clock=ctx.clock,
                             settings=DriftSettings(min_frames=100))

    @staticmethod
    def _running_model(ctx: FleetContext) -> str:
        with ctx.db.read() as session:
            return session.scalars(select(Capture.model_version).order_by(
                Capture.captured_at.desc()).limit(1)).first() or "-"

    @staticmethod
    def _accuracy(ctx: FleetContext, since: datetime, model: str,
                  scenario: str) -> tuple[float | None, int]:
        """Share of random captures since ``since`` by ``model`` under ``scenario`` whose edge
        prediction is the ground truth."""
        with ctx.db.read() as session:
            names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
            rows = session.execute(select(Capture.edge_class_id, Capture.device_meta).where(
                Capture.captured_at >= since, Capture.reason == CaptureReason.RANDOM_SAMPLE,
                Capture.model_version == model)).all()
        hits = [names.get(edge) == meta["truth"]["label"] for edge, meta in rows
                if meta and (meta.get("truth") or {}).get("scenario") == scenario]
        return (sum(hits) / len(hits) if hits else None), len(hits)

    # -- the pipeline --------------------------------------------------------------------------
    def run_pipeline(self, ctx: FleetContext, admin: Actor) -> None:
        """Answer the drift: one pipeline run, the generator's truth as the annotator."""
        from app.core.train_service import code_version

        trigger = due_trigger(ctx.db, TriggerSettings(min_new_labels=None),
                              code_version=code_version(), now=ctx.clock())
        self.result.trigger = trigger.name if trigger else None
        if trigger is None:
            self.say("== no trigger fired: no drift alert; running the loop on request")
        settings = LoopSettings(size=self.settings.size, train=self.settings.retrain,
                                budget=self.settings.budget, auto_approve=True,
                                enough_labels=10**9, spot_check_share=1.0, near_window_s=0.0,
                                bounds=HealthBounds(window_s=3.0, timeout_s=60.0))
        assert self.project is not None
        annotator = actor_named(ctx.db, ANNOTATOR)
        steps = loop_steps(ctx, admin, settings, runs_dir=self.project.root / "runs",
                           annotator=lambda: annotate_from_truth(ctx, annotator))
        runner = PipelineRunner(ctx.db, ctx.audit, admin, steps, clock=ctx.clock)
        run_id = runner.start(trigger.name if trigger else "request",
                              trigger.reason if trigger else "headless demo")
        self.result.run_id = run_id
        self.say(f"== pipeline run {run_id} ({self.result.trigger or 'request'})")
        state = runner.advance(run_id, progress=self.progress, cancel=self.cancel)
        view = view_run(ctx.db, run_id)
        self.result.run_state = state.value
        for name, step_state, seconds, summary, error in view.steps:
            self.result.stages.append((f"loop: {name}", seconds or 0.0))
            self.say(f"   {name:<9} {step_state.value:<9} {seconds or 0:7.1f} s  "
                     f"{error or summary}")
        if view.error:
            raise RuntimeError(f"pipeline run {run_id} {state.value}: {view.error}")
        # The new model's training data is its drift baseline from now on.
        build_baseline(ctx.db, ctx.blobs, edge=view.context["model"], cancel=self.cancel)


def annotate_from_truth(ctx: FleetContext, annotator: Actor) -> int:
    """Resolve every open review item whose capture carries the generator's ground truth."""
    with ctx.db.read() as session:
        rows = session.execute(
            select(ReviewItem.capture_id, Capture.device_meta)
            .join(Capture, Capture.id == ReviewItem.capture_id)
            .where(ReviewItem.resolved_at.is_(None))
            .order_by(ReviewItem.priority.desc(), ReviewItem.id)).all()
    done = 0
    for capture_id, meta in rows:
        label = ((meta or {}).get("truth") or {}).get("label")
        if label:
            resolve_item(ctx.db, ctx.audit, annotator, capture_id, label,
                         source=AnnotationSource.HUMAN, clock=ctx.clock)
            done += 1
    return done


def demo_progress(say: Say) -> ProgressFn:
    """A progress callback printing one line per stage change (and per epoch of training)."""
    last: dict[str, str] = {}

    def report(p: Progress) -> None:
        if p.stage in ("train", "epoch") or last.get("stage") != p.stage:
            if p.message and p.message != last.get("message"):
                say(f"   {p.stage}: {p.message}")
        last.update(stage=p.stage, message=p.message or "")
    return report
