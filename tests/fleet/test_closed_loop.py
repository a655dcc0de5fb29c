"""The whole loop, headless, on CPU: a simulated fleet drifts, the drift is caught, a model is
retrained on reviewed captures, deployed in stages, and device accuracy recovers.

One run of :class:`ClosedLoopDemo` (a few minutes) is shared by the module's tests. The
fleet is real: agent processes, SSH servers and mDNS on loopback.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.core.models import AuditEvent, PipelineRun, PipelineState, ReviewItem
from app.core.project import open_project
from app.fleet.closed_loop import ClosedLoopDemo, DemoResult, DemoSettings

# Device ids of its own: a demo running on this machine advertises sim-01... on loopback too.
SETTINGS = DemoSettings(devices=3, baseline_per_device=400, edge_epochs=12, observer_width=1.0,
                        observer_epochs=6, phase_seconds=25.0, drift_seconds=60.0,
                        device_tag=f"loop{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoResult, Path]]:
    root = tmp_path_factory.mktemp("loop")
    lines: list[str] = []
    result = ClosedLoopDemo(root, SETTINGS, say=lines.append).run()
    print("\n".join(lines))
    print(result.table())
    yield result, root


def test_a_run_without_drift_raises_no_alert(loop: tuple[DemoResult, Path]) -> None:
    result, _ = loop
    before = result.phase("before")
    assert before.alerts == [], before
    assert before.accuracy is not None and before.captures >= 30


def test_the_injected_drift_raises_an_alert_and_triggers_the_loop(
        loop: tuple[DemoResult, Path]) -> None:
    result, _ = loop
    drift = result.phase("drift")
    assert any(a.endswith(("psi_input", "mmd_embedding")) for a in drift.alerts), drift
    assert result.trigger == "drift"
    assert result.run_state == PipelineState.SUCCEEDED.value


def test_accuracy_on_the_drifted_scene_recovers_after_the_deployment(
        loop: tuple[DemoResult, Path]) -> None:
    result, _ = loop
    before, drift, after = (result.phase(n) for n in ("before", "drift", "after"))
    assert drift.accuracy is not None and after.accuracy is not None, result.table()
    assert drift.accuracy < before.accuracy - 0.3, result.table()
    assert after.model != drift.model  # the devices run the retrained model
    assert after.accuracy > drift.accuracy + 0.3, result.table()
    assert after.captures >= 30


def test_every_step_is_recorded_and_audited(loop: tuple[DemoResult, Path]) -> None:
    result, root = loop
    project = open_project(root / "project")
    try:
        with project.db.read() as session:
            run = session.get(PipelineRun, result.run_id)
            assert run is not None and run.state is PipelineState.SUCCEEDED
            steps = session.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "pipeline.step.succeeded",
                AuditEvent.object_id == str(result.run_id)))
            reviewed = session.scalar(select(func.count(ReviewItem.id)).where(
                ReviewItem.resolved_at.is_not(None)))
            alerts = session.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "drift.alert"))
            retired = session.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "model.retire", AuditEvent.object_id == "edge-1"))
            chain = project.audit.verify(session)
        assert steps == 9 and reviewed > 0 and alerts > 0
        assert retired == 1  # no device runs release 1 any more
        assert chain.ok, chain
    finally:
        project.close()
