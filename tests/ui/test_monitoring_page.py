"""The Monitoring page, driven as a user would (offscreen): scope, range, statistic, charts,
alerts, the empty state and "Measure drift now".

The history (drift measurements, health samples) is stored as rows of the real ORM classes
(tests/support/monitoring.py says why); "Measure drift now" runs the real measure_drift over
hourly statistics that the real device agent code computed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt
from sqlalchemy import select

from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.drift_math import histogram
from app.core.drift_monitor import INPUT_STATS
from app.core.models import (
    AuditEvent, Device, DeviceDriftHour, DriftBaseline, DriftMeasurement, HealthSample,
    ModelKind, ModelStatus, ModelVersion,
)
from app.core.project import Project
from app.core.scene import SceneGenerator
from app.core.users import actor_named
from app.fleet.agent.drift_stats import BINS, RANGES, DriftStatistics, image_statistics
from app.ui.charts import ALERT_LEVEL, epoch_ms
from app.ui.main_window import MainWindow
from app.ui.pages.base import PageContext
from app.ui.pages.monitoring import ALERT_TINT, MonitoringPage
from app.ui.tasks import TaskRunner
from tests.support.monitoring import add_device, add_measurement, add_sample

WAIT = 10_000



def _page(qtbot, project: Project, runner: TaskRunner) -> MonitoringPage:  # type: ignore[no-untyped-def]
    page = MonitoringPage(PageContext(project, actor_named(project.db, "admin"), runner))
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()  # shown: it reads on its own
    qtbot.waitUntil(lambda: page.view is not None, timeout=WAIT)
    return page


def _pick(qtbot, page: MonitoringPage, scope: str | None = None,  # type: ignore[no-untyped-def]
          range_label: str | None = None) -> None:
    """Choose in the selectors as a user does, then wait for what they chose to show."""
    if scope is not None:
        page.scope_box.setCurrentIndex(page.scope_box.findData(scope))
    if range_label is not None:
        page.range_box.setCurrentIndex(page.range_box.findText(range_label))
    wanted = (page.scope(), page.span())
    qtbot.waitUntil(lambda: page.view is not None and page._loading is None
                    and (page.view.scope, page.view.until - page.view.since) == wanted,
                    timeout=WAIT)


def _stored_drift(project: Project, uid: str | None, metric: str, since: datetime,
                  until: datetime) -> list[tuple[float, float]]:
    """What the database holds for a line, oldest first, as chart points."""
    with project.db.read() as session:
        device = session.scalar(select(Device.id).where(Device.uid == uid)) if uid else None
        rows = session.execute(
            select(DriftMeasurement.window_end, DriftMeasurement.value)
            .where(DriftMeasurement.device_id.is_(None) if device is None
                   else DriftMeasurement.device_id == device,
                   DriftMeasurement.metric == metric, DriftMeasurement.window_end >= since,
                   DriftMeasurement.window_end <= until)
            .order_by(DriftMeasurement.window_end)).all()
    return [(epoch_ms(at), value) for at, value in rows]


def _stored_latency(project: Project, uid: str, since: datetime, until: datetime,
                    column: str) -> list[tuple[float, float]]:
    with project.db.read() as session:
        rows = session.execute(
            select(HealthSample.at, getattr(HealthSample, column)).join(Device)
            .where(Device.uid == uid, HealthSample.at >= since, HealthSample.at <= until,
                   getattr(HealthSample, column).is_not(None))
            .order_by(HealthSample.at)).all()
    return [(epoch_ms(at), value) for at, value in rows]


def _history(project: Project) -> datetime:
    """Two cameras measured hourly for three days; cam-a's input drifted 2 h and 50 h ago."""
    now = project.clock()
    add_device(project, "cam-a", "Line A camera")
    add_device(project, "cam-b", "Line B camera")
    for h in range(72):
        at = now - timedelta(hours=h)
        psi = 0.43 if h in (2, 50) else 0.08 + h / 1000
        add_measurement(project, "cam-a", "psi_input", psi, at)
        add_measurement(project, "cam-a", "mmd_embedding", 0.01 + h / 10_000, at, threshold=0.05)
        add_measurement(project, "cam-b", "psi_input", 0.03, at)
        add_measurement(project, None, "psi_input", 0.06 + h / 2000, at)
        add_sample(project, "cam-a", at, p50=11.0 + (h % 5), p99=25.0 + h % 7)
        add_sample(project, "cam-b", at + timedelta(minutes=3), p50=7.5, p99=16.0)
    return now


def test_a_device_and_a_range_show_exactly_the_stored_values_and_the_alert(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner) -> None:
    p = sqlite_project
    now = _history(p)
    page = _page(qtbot, p, runner)
    assert [page.scope_box.itemText(i) for i in range(page.scope_box.count())] == [
        "Fleet", "cam-a (Line A camera)", "cam-b (Line B camera)"]

    _pick(qtbot, page, scope="cam-a", range_label="Last 24 hours")
    since, until = page.view.since, page.view.until
    drift = page.drift_chart
    assert page.drift_stack.currentWidget() is drift
    stored = _stored_drift(p, "cam-a", "psi_input", since, until)
    assert len(stored) == 24 and drift.points("cam-a") == stored
    assert drift.points(ALERT_LEVEL) == [(stored[0][0], 0.25), (stored[-1][0], 0.25)]
    assert drift.points("cam-b") == [] and drift.points("fleet") == []
    latency = page.latency_chart
    assert latency.points("p50") == _stored_latency(p, "cam-a", since, until, "latency_p50_ms")
    assert latency.points("p99") == _stored_latency(p, "cam-a", since, until, "latency_p99_ms")
    assert page.alerts.rowCount() == 1
    cells = [page.alerts.data(page.alerts.index(0, c)) for c in range(4)]
    assert cells == [(now - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M"), "cam-a",
                     "PSI of input statistics", "0.4300"]
    assert page.alerts.data(page.alerts.index(0, 1), Qt.ItemDataRole.BackgroundRole) == ALERT_TINT
    assert "1, newest first" in page.alerts_label.text()

    _pick(qtbot, page, range_label="Last 7 days")
    assert drift.points("cam-a") == _stored_drift(p, "cam-a", "psi_input", page.view.since,
                                                    page.view.until)
    assert len(drift.points("cam-a")) == 72
    assert [page.alerts.data(page.alerts.index(r, 0)) for r in range(page.alerts.rowCount())] == [
        (now - timedelta(hours=h)).strftime("%Y-%m-%d %H:%M") for h in (2, 50)]  # newest first

    # Another statistic: its own values and its own threshold, without reading again.
    page.statistic_box.setCurrentIndex(page.statistic_box.findData("mmd_embedding"))
    assert drift.points("cam-a") == _stored_drift(p, "cam-a", "mmd_embedding", page.view.since,
                                                    page.view.until)
    assert {y for _, y in drift.points(ALERT_LEVEL)} == {0.05}
    # A statistic cam-a never had says why, instead of showing empty axes.
    page.statistic_box.setCurrentIndex(page.statistic_box.findData("label_disagreement"))
    assert page.drift_stack.currentWidget() is page.drift_empty
    assert "reviewed captures" in page.drift_empty.text()


def test_the_fleet_scope_shows_the_fleet_and_every_device(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner) -> None:
    p = sqlite_project
    _history(p)
    page = _page(qtbot, p, runner)
    _pick(qtbot, page, scope=None, range_label="Last 24 hours")
    assert page.scope_box.currentText() == "Fleet"
    since, until = page.view.since, page.view.until
    assert set(page.drift_chart.series) == {"fleet", "cam-a", "cam-b", ALERT_LEVEL}
    for uid in ("fleet", "cam-a", "cam-b"):
        expected = _stored_drift(p, None if uid == "fleet" else uid, "psi_input", since, until)
        assert page.drift_chart.points(uid) == expected and expected
    assert set(page.latency_chart.series) == {"cam-a", "cam-b"}
    for uid in ("cam-a", "cam-b"):
        expected = _stored_latency(p, uid, since, until, "latency_p50_ms")
        assert page.latency_chart.points(uid) == expected and expected
    assert [page.alerts.data(page.alerts.index(0, c)) for c in (1, 2)] == [
        "cam-a", "PSI of input statistics"]


def test_the_page_reads_again_while_visible_and_stops_when_hidden(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner) -> None:
    p = sqlite_project
    _history(p)
    page = _page(qtbot, p, runner)
    _pick(qtbot, page, scope="cam-b")
    assert page.timer.isActive()
    before = len(page.drift_chart.points("cam-b"))
    p.clock.advance(minutes=10)  # type: ignore[attr-defined]
    add_measurement(p, "cam-b", "psi_input", 0.5, p.clock())  # measured by someone else
    page.timer.setInterval(50)  # rather than the 30 s a user waits
    qtbot.waitUntil(lambda: len(page.drift_chart.points("cam-b")) == before + 1, timeout=WAIT)
    assert page.drift_chart.points("cam-b")[-1][1] == 0.5
    assert page.alerts.rowCount() == 1
    page.hide()
    assert not page.timer.isActive()


def test_an_empty_project_explains_what_to_do(qtbot, sqlite_project: Project, runner) -> None:  # type: ignore[no-untyped-def]
    page = _page(qtbot, sqlite_project, runner)
    assert page.drift_stack.currentWidget() is page.drift_empty and page.drift_empty.isVisible()
    assert not page.drift_chart.isVisible()
    assert page.drift_empty.text().startswith("No drift measured yet: ")
    assert "edgeloop drift baseline" in page.drift_empty.text()
    assert page.latency_stack.currentWidget() is page.latency_empty
    assert "edgeloop devices health" in page.latency_empty.text()
    assert page.alerts.rowCount() == 0 and page.scope_box.count() == 1


# -- Measure drift now ----------------------------------------------------------------------
def _models(project: Project) -> None:
    """A deployed edge model and an observer, registered without training (measure_drift
    reads their baseline, never their weights)."""
    with project.db.write() as session:
        session.add(ModelVersion(version="edge-1", kind=ModelKind.EDGE,
                                 status=ModelStatus.DEPLOYED, labels=["ok", "dent"]))
        session.add(ModelVersion(version="observer-1", kind=ModelKind.OBSERVER,
                                 status=ModelStatus.CANDIDATE, labels=["ok", "dent"]))


def _confidence(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng(seed).beta(8, 2, count)


def _baseline(project: Project) -> None:
    """The baseline of edge-1: histograms of clean station images, as build_baseline keeps."""
    admin = actor_named(project.db, "admin")
    import_generated(project.db, project.blobs, project.audit, admin, 20, seed=5, size=64)
    version = freeze_version(project.db, project.audit, admin)
    images = [s.image for s in SceneGenerator(seed=5, size=64).batch(0, 300)]
    stats = [image_statistics(image) for image in images]
    histograms = {name: histogram(np.array([s[name] for s in stats]), *RANGES[name], BINS).tolist()
                  for name in INPUT_STATS}
    histograms["confidence"] = histogram(_confidence(1, 300), *RANGES["confidence"], BINS).tolist()
    with project.db.write() as session:
        edge, observer = (session.scalar(select(ModelVersion.id).where(ModelVersion.version == v))
                          for v in ("edge-1", "observer-1"))
        session.add(DriftBaseline(edge_model_id=edge, observer_model_id=observer,
                                  dataset_version_id=version.id, dims=0,
                                  profile={"n": 300, "bins": BINS, "histograms": histograms}))


def _device_hour(project: Project, uid: str, scenario: str, tmp: Path) -> None:
    """This hour's statistics of 300 frames, computed by the device agent's own code and
    stored as a health poll stores them."""
    now = project.clock()
    stats = DriftStatistics(tmp / f"drift-{uid}", clock=now.timestamp)
    frames = SceneGenerator(seed=5, size=64).batch(10_000, 300, scenario)
    for sample, confidence in zip(frames, _confidence(2, 300)):
        stats.add(sample.image, float(confidence), "ok", "edge-1")
    record = stats.record()
    with project.db.write() as session:
        device = session.scalar(select(Device.id).where(Device.uid == uid))
        session.add(DeviceDriftHour(device_id=device, hour=record["hour"], record=record,
                                    received_at=now))


def test_measure_drift_now_says_what_is_missing_then_measures_and_shows_the_alert(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner, settings: QSettings, tmp_path: Path) -> None:
    p = sqlite_project
    add_device(p, "cam-clean")
    add_device(p, "cam-dim")
    _models(p)
    errors: list[tuple[str, str]] = []
    window = MainWindow(PageContext(p, actor_named(p.db, "admin"), runner), [MonitoringPage],
                        settings=settings, show_error=lambda *error: errors.append(error))
    qtbot.addWidget(window)
    window.show()
    page = window.page("Monitoring")
    assert isinstance(page, MonitoringPage)
    qtbot.waitUntil(lambda: page.view is not None, timeout=WAIT)
    assert page.measure_button.isEnabled() and "last hour" in page.measure_button.toolTip()

    # No baseline yet: the failure is a dialog that names the command that builds one.
    qtbot.mouseClick(page.measure_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(errors) and page.measure_button.isEnabled(), timeout=WAIT)
    assert errors[0][0] == "Measuring drift"
    assert "build it with `edgeloop drift baseline edge-1`" in errors[0][1]
    assert "edgeloop drift baseline edge-1" in page.status.text()

    _baseline(p)
    _device_hour(p, "cam-clean", "none", tmp_path)
    _device_hour(p, "cam-dim", "lighting", tmp_path)
    qtbot.mouseClick(page.measure_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.status.text().startswith("Measured"), timeout=WAIT)
    with p.db.read() as session:
        stored = {(uid or "fleet", metric): (value, alert) for uid, metric, value, alert in
                  session.execute(select(Device.uid, DriftMeasurement.metric,
                                         DriftMeasurement.value, DriftMeasurement.alert)
                                  .outerjoin(Device, Device.id == DriftMeasurement.device_id))}
        audited = session.scalars(select(AuditEvent.object_id)
                                  .where(AuditEvent.action == "drift.alert")).all()
    assert stored[("cam-dim", "psi_input")][1] and not stored[("cam-clean", "psi_input")][1]
    assert "cam-dim" in audited
    assert page.status.text().endswith(f"{sum(alert for _, alert in stored.values())} alert(s).")

    # The page read again: the new values are on the chart, the alert in the table.
    qtbot.waitUntil(lambda: page.drift_stack.currentWidget() is page.drift_chart, timeout=WAIT)
    for scope in ("fleet", "cam-clean", "cam-dim"):
        (x, y), = page.drift_chart.points(scope)
        assert y == stored[(scope, "psi_input")][0]
    rows = [[page.alerts.data(page.alerts.index(r, c)) for c in (1, 2)]
            for r in range(page.alerts.rowCount())]
    assert ["cam-dim", "PSI of input statistics"] in rows and errors == [errors[0]]
