"""monitoring_view: the drift, latency and alert history of a device or of the fleet, in a range."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from app.core.errors import InvalidInput
from app.core.monitoring import FLEET, STATISTICS, Line, monitoring_view
from app.core.project import Project
from tests.support.monitoring import add_device, add_measurement, add_sample

NOW = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


@pytest.fixture
def history(project: Project) -> Project:
    """Two cameras and the fleet, measured hourly for 40 hours (stored in shuffled order)."""
    add_device(project, "cam-a", "Line A camera")
    add_device(project, "cam-b")
    rows = [(uid, h) for uid in ("cam-a", "cam-b", None) for h in range(40)]
    random.Random(4).shuffle(rows)
    for uid, h in rows:
        base = {"cam-a": 0.10, "cam-b": 0.02, None: 0.05}[uid]
        # cam-a's input drifts over the threshold two hours ago and 30 hours ago.
        value = 0.41 if uid == "cam-a" and h in (2, 30) else base + h / 1000
        add_measurement(project, uid, "psi_input", value, hours_ago(h))
    for h in range(40):
        add_sample(project, "cam-a", hours_ago(h), p50=12.0 + h / 10, p99=30.0 + h)
        add_sample(project, "cam-b", hours_ago(h) + timedelta(minutes=7), p50=8.0, p99=None)
    add_sample(project, "cam-b", hours_ago(1), p50=None, p99=None, online=False)
    return project


def test_a_device_scope_holds_its_own_values_of_the_range_oldest_first(history: Project) -> None:
    view = monitoring_view(history.db, "cam-a", hours_ago(24), NOW)
    psi = view.drift["psi_input"]
    expected = tuple((hours_ago(h), 0.41 if h == 2 else 0.10 + h / 1000) for h in range(24, -1, -1))
    assert psi.lines == (Line("cam-a", expected),)  # not cam-b's, not the fleet's
    assert psi.threshold == 0.25
    assert [s.lines for m, s in view.drift.items() if m != "psi_input"] == [()] * 3
    assert view.latency == (
        Line("p50", tuple((hours_ago(h), 12.0 + h / 10) for h in range(24, -1, -1))),
        Line("p99", tuple((hours_ago(h), 30.0 + h) for h in range(24, -1, -1))))
    assert [(a.scope, a.metric, a.value, a.measured_at, a.samples) for a in view.alerts] == [
        ("cam-a", "psi_input", 0.41, hours_ago(2), 300)]
    assert [d.uid for d in view.devices] == ["cam-a", "cam-b"]
    assert view.ever_measured and view.ever_sampled

    week = monitoring_view(history.db, "cam-a", NOW - timedelta(days=7), NOW)
    assert len(week.drift["psi_input"].lines[0].points) == 40
    assert [a.measured_at for a in week.alerts] == [hours_ago(2), hours_ago(30)]  # newest first


def test_the_fleet_scope_has_the_fleet_line_and_every_device(history: Project) -> None:
    view = monitoring_view(history.db, None, hours_ago(10), NOW)
    lines = view.drift["psi_input"].lines
    assert [line.name for line in lines] == [FLEET, "cam-a", "cam-b"]
    assert lines[0].points[-1] == (NOW, 0.05)
    assert [p[0] for p in lines[2].points] == [hours_ago(h) for h in range(10, -1, -1)]
    # One latency line per device; cam-b's offline poll carries no latency and is left out.
    assert [line.name for line in view.latency] == ["cam-a", "cam-b"]
    # 7 minutes past each hour: the newest one is after the range ends.
    assert view.latency[1].points == tuple((hours_ago(h) + timedelta(minutes=7), 8.0)
                                           for h in range(10, 0, -1))
    assert [(a.scope, a.measured_at) for a in view.alerts] == [("cam-a", hours_ago(2))]


def test_a_crowded_bucket_shows_the_worst_drift_and_the_mean_latency(project: Project) -> None:
    add_device(project, "cam-a")
    # Four points over 24 hours: buckets of 6 hours, which start at 00, 06, 12 and 18 UTC.
    at = datetime(2026, 11, 1, 6, 10, tzinfo=timezone.utc)
    for minutes, value in ((0, 0.30), (20, 0.12), (40, 0.07)):
        add_measurement(project, "cam-a", "mmd_embedding", value, at + timedelta(minutes=minutes),
                        threshold=0.05)
    add_sample(project, "cam-a", at, p50=10.0, p99=50.0)
    add_sample(project, "cam-a", at + timedelta(minutes=30), p50=14.0, p99=20.0)
    add_sample(project, "cam-a", at - timedelta(hours=1), p50=9.0, p99=19.0)  # the 00-06 bucket
    view = monitoring_view(project.db, "cam-a", NOW - timedelta(hours=24), NOW, max_points=4)
    assert view.bucket_seconds == 6 * 3600
    assert view.drift["mmd_embedding"].lines == (
        Line("cam-a", ((at + timedelta(minutes=40), 0.30),)),)
    assert view.latency == (
        Line("p50", ((at - timedelta(hours=1), 9.0), (at + timedelta(minutes=30), 12.0))),
        Line("p99", ((at - timedelta(hours=1), 19.0), (at + timedelta(minutes=30), 50.0))))
    assert len(view.alerts) == 3  # alerts are rows, never merged


def test_an_empty_project_has_no_lines_and_says_it_never_measured(project: Project) -> None:
    view = monitoring_view(project.db, None, NOW - timedelta(days=30), NOW)
    assert not view.has_drift and view.latency == () and view.alerts == ()
    assert set(view.drift) == set(STATISTICS)
    assert not view.ever_measured and not view.ever_sampled


def test_an_unknown_device_or_a_backward_range_is_refused(project: Project) -> None:
    with pytest.raises(InvalidInput, match="no device 'cam-x'"):
        monitoring_view(project.db, "cam-x", NOW - timedelta(hours=1), NOW)
    with pytest.raises(InvalidInput, match="starts"):
        monitoring_view(project.db, None, NOW, NOW - timedelta(hours=1))
