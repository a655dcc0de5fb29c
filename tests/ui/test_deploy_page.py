"""The Deploy page against a real simulated fleet of two devices, driven as a user would:
approve a gated model on the Models page, start its rollout, watch each device become
healthy; halt a rollout and roll it back; and a role that may not deploy finds the controls
disabled.

Fixture order matters: ``env`` comes before ``runner`` in each signature, so the runner stops
its workers before the fleet and the project close.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush
from sqlalchemy import select

from app.core.augment import AugmentConfig
from app.core.compress_service import CompressRequest, compress_model
from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.errors import PermissionDenied
from app.core.gate import run_gate
from app.core.models import (
    ArtifactFormat, AuditEvent, Deployment, DeploymentState, Device, EnrollmentState,
    ModelStatus, ModelVersion, Role, Rollout, RolloutState,
)
from app.core.project import Project
from app.core.train_service import TrainRequest, train_model
from app.core.training import TrainConfig
from app.core.users import actor_named, add_user
from app.fleet.agent.home import AgentHome
from app.fleet.context import FleetContext
from app.fleet.deploy import halt_rollout, start_rollout
from app.fleet.releases import register_release
from app.fleet.signing import load_or_create_signing_key
from app.ui.pages.base import PageContext
from app.ui.pages.deploy import DeployPage
from app.ui.pages.models import ModelsPage
from app.ui.pages.rollout_tables import DEPLOYMENT_COLOURS
from app.ui.tasks import TaskRunner
from tests.fleet.fleet_env import FleetEnv, fleet_env
from tests.support.releases import make_release

QUICK = TrainConfig(epochs=1, batch_size=16, lr=5e-3, patience=1,
                    augment=AugmentConfig.preset("none"))
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    with fleet_env(tmp_path, count=2) as built:
        built.enroll(0)
        built.enroll(1)
        yield built


def _page(qtbot, project: Project, runner: TaskRunner, user: str = "admin") -> DeployPage:  # type: ignore[no-untyped-def]
    page = DeployPage(PageContext(project, actor_named(project.db, user), runner))
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    page.refresh()
    return page


def _states(page: DeployPage) -> dict[str, str]:
    """Each device's state as the devices table shows it."""
    model = page.devices
    return {model.data(model.index(r, 1)): model.data(model.index(r, 2))
            for r in range(model.rowCount())}


def _column(model, column: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [model.data(model.index(r, column)) for r in range(model.rowCount())]


def _running(env: FleetEnv, index: int) -> str:
    return AgentHome(env.device(index).home.root).current.resolve().name


def _gated_candidate(project: Project) -> str:
    """A small trained model (edge-2: the fleet's factory image is edge-1), compressed and
    through the gate, as the Training and Models pages leave it."""
    db, blobs, audit = project.db, project.blobs, project.audit
    admin = actor_named(db, "admin")
    import_generated(db, blobs, audit, admin, 120, seed=5, size=64)
    freeze_version(db, audit, admin)
    trained = train_model(db, blobs, audit, admin,
                          TrainRequest(size=32, config=QUICK, version="edge-2"),
                          runs_dir=project.root / "runs", device=torch.device("cpu"))
    compress_model(db, blobs, audit, admin, trained.version,
                   CompressRequest(formats=(ArtifactFormat.ONNX,)))
    assert run_gate(db, blobs, audit, admin, trained.version, latency_repeats=3).passed
    return trained.version


def test_approve_a_model_and_start_a_rollout(qtbot, env: FleetEnv, runner) -> None:  # type: ignore[no-untyped-def]
    version = _gated_candidate(env.project)
    first, second = (d.spec.device_id for d in env.devices)
    admin = actor_named(env.project.db, "admin")
    models = ModelsPage(PageContext(env.project, admin, runner))
    qtbot.addWidget(models)
    models.refresh()
    qtbot.waitUntil(lambda: models.model.rowCount() == 1, timeout=10_000)
    models.table.selectRow(0)
    qtbot.mouseClick(models.approve_button, LEFT)
    qtbot.waitUntil(lambda: "approved and signed" in models.status.text(), timeout=60_000)

    page = _page(qtbot, env.project, runner)
    qtbot.waitUntil(lambda: page.form.version.count() == 1, timeout=10_000)
    assert page.form.version.currentText() == version
    assert page.form.plan.text() == f"1: {first}   2: {second}"  # the canary, then the rest
    assert page.form.start_button.isEnabled()
    assert not page.halt_button.isEnabled() and not page.roll_back_button.isEnabled()
    page.form.window.setValue(2)  # a short health window keeps the test short
    seen: dict[str, set[str]] = {}

    def record() -> None:
        for uid, state in _states(page).items():
            seen.setdefault(uid, set()).add(state)

    page.devices.modelReset.connect(record)
    page.devices.dataChanged.connect(record)
    qtbot.mouseClick(page.form.start_button, LEFT)

    qtbot.waitUntil(lambda: _column(page.rollouts, 2) == ["completed"], timeout=120_000)
    qtbot.waitUntil(lambda: _states(page) == {first: "healthy", second: "healthy"},
                    timeout=10_000)
    assert "pending" in seen[second]  # it waited, live on screen, while the canary went first
    healthy = page.devices.data(page.devices.index(0, 2), Qt.ItemDataRole.BackgroundRole)
    assert isinstance(healthy, QBrush)
    assert healthy.color().name() == DEPLOYMENT_COLOURS[DeploymentState.HEALTHY]
    assert _column(page.stages, 2) == ["done", "done"]
    assert page.summary.text().startswith(f"Rollout 1: {version}, completed, stage 2 of 2")
    qtbot.waitUntil(lambda: page.status.text() == f"Rollout 1 of {version}: completed.")
    assert not page.halt_button.isEnabled() and page.roll_back_button.isEnabled()
    assert [_running(env, i) for i in (0, 1)] == [version, version]
    with env.project.db.read() as session:
        assert session.get(Rollout, 1).state is RolloutState.COMPLETED
        assert {d.state for d in session.scalars(select(Deployment))} == {
            DeploymentState.HEALTHY}
        assert session.scalar(select(ModelVersion.status).where(
            ModelVersion.version == version)) is ModelStatus.DEPLOYED


def test_halt_a_rollout_then_roll_it_back(qtbot, env: FleetEnv, runner) -> None:  # type: ignore[no-untyped-def]
    first, second = (d.spec.device_id for d in env.devices)
    key = load_or_create_signing_key(env.ctx.keys_dir)
    folder, _ = make_release(env.workdir / "new", "edge-2", key, seed=2, openvino=False)
    register_release(env.ctx, env.admin, folder)  # as `edgeloop releases add` does
    page = _page(qtbot, env.project, runner)
    qtbot.waitUntil(lambda: page.form.version.count() == 1, timeout=10_000)
    qtbot.mouseClick(page.form.start_button, LEFT)
    # The canary is watched for its health window (6 s by default): halt it meanwhile.
    qtbot.waitUntil(lambda: _states(page).get(first) == "activating", timeout=60_000)
    assert page.halt_button.isEnabled()
    qtbot.mouseClick(page.halt_button, LEFT)
    dialog = page.reason_dialog
    assert dialog is not None and dialog.isVisible()
    assert not dialog.ok_button.isEnabled()  # a reason is required
    qtbot.keyClicks(dialog.reason, "scratch rate doubled on line 2")
    qtbot.mouseClick(dialog.ok_button, LEFT)

    qtbot.waitUntil(lambda: page.halt_reason.text() == "Halted: scratch rate doubled on line 2",
                    timeout=10_000)
    assert ", halted, stage 1 of 2" in page.summary.text()
    assert not page.halt_button.isEnabled()
    # The canary finishes its window; the second stage never starts.
    qtbot.waitUntil(lambda: _states(page) == {first: "healthy", second: "pending"},
                    timeout=60_000)
    assert _column(page.stages, 2) == ["halted", "not started"]
    assert _running(env, 0) == "edge-2" and _running(env, 1) == "edge-1"

    assert page.roll_back_button.isEnabled()
    qtbot.mouseClick(page.roll_back_button, LEFT)
    dialog = page.reason_dialog
    qtbot.keyClicks(dialog.reason, "go back to edge-1")
    qtbot.mouseClick(dialog.ok_button, LEFT)
    qtbot.waitUntil(lambda: _states(page) == {first: "rolled back", second: "pending"},
                    timeout=90_000)
    qtbot.waitUntil(lambda: ", rolled back, " in page.summary.text(), timeout=10_000)
    assert page.status.text().startswith("Rollout 1 rolled back")
    assert not page.halt_button.isEnabled() and not page.roll_back_button.isEnabled()
    assert "Nothing to roll back" in page.roll_back_button.toolTip()
    assert [_running(env, i) for i in (0, 1)] == ["edge-1", "edge-1"]
    with env.project.db.read() as session:
        assert session.get(Rollout, 1).state is RolloutState.ROLLED_BACK
        rows = {uid: d for d, uid in session.execute(
            select(Deployment, Device.uid).join(Device, Device.id == Deployment.device_id))}
        reasons = {e.action: e.after.get("reason") for e in session.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "rollout"))}
    assert rows[first].state is DeploymentState.ROLLED_BACK
    assert rows[second].state is DeploymentState.PENDING
    assert rows[second].detail == "never sent: the rollout was rolled back"
    assert reasons["rollout.halt"] == "scratch rate doubled on line 2"
    assert reasons["rollout.rollback"] == "go back to edge-1"


def test_a_role_that_may_not_deploy_finds_the_controls_disabled(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner) -> None:
    p = sqlite_project
    admin = actor_named(p.db, "admin")
    folder, _ = make_release(p.root.parent / "releases", "edge-2",
                             load_or_create_signing_key(p.keys_dir), seed=2, openvino=False)
    ctx = FleetContext.of(p)
    register_release(ctx, admin, folder)
    with p.db.write() as session:
        session.add(Device(uid="cam-1", name="Line camera", address="127.0.0.1", ssh_port=2200,
                           host_key_fingerprint="SHA256:fp", enrollment=EnrollmentState.ENROLLED,
                           enrolled_at=p.clock()))
    rollout_id = start_rollout(ctx, admin, "edge-2")  # running; nothing delivered yet
    add_user(p.db, p.audit, admin, "ann", Role.ANNOTATOR)
    add_user(p.db, p.audit, admin, "eng", Role.ENGINEER)

    viewer = _page(qtbot, p, runner, "ann")
    qtbot.waitUntil(lambda: viewer.shown is not None and viewer.form.version.count() == 1,
                    timeout=10_000)
    assert viewer.shown.state is RolloutState.RUNNING
    assert _states(viewer) == {"cam-1": "pending"}  # an annotator still sees everything
    for button in (viewer.form.start_button, viewer.halt_button, viewer.roll_back_button):
        assert not button.isEnabled()
        assert "may not deploy" in button.toolTip()
    with pytest.raises(PermissionDenied):  # and the service refuses anyway
        halt_rollout(ctx, actor_named(p.db, "ann"), rollout_id, "not mine to halt")

    engineer = _page(qtbot, p, runner, "eng")  # engineers may deploy
    qtbot.waitUntil(lambda: engineer.shown is not None and engineer.form.version.count() == 1,
                    timeout=10_000)
    assert engineer.form.start_button.isEnabled() and engineer.halt_button.isEnabled()
    assert not engineer.roll_back_button.isEnabled()  # the release reached no device yet
    assert "Nothing to roll back" in engineer.roll_back_button.toolTip()
