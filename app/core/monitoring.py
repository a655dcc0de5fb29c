"""What the Monitoring page shows: drift statistics, inference latency and drift alerts over time.

:func:`monitoring_view` reads, for one scope (a device, or the whole fleet) and a time range,
the drift measurements :func:`~app.core.drift_monitor.measure_drift` stored, the latency the
devices reported in their health samples (``app.fleet.health``), and the alerts among the
measurements. It only reads; it never measures.

Long ranges stay cheap: every series is one grouped query that returns at most
``max_points`` points per line (time buckets of ``(until - since) / max_points``), and each
query filters on the leading columns of an index (``ix_drift_device_metric``: device, metric,
window end; ``ix_device_health_samples_device_at``: device, time). A bucket holding one row
shows that row exactly; a fuller bucket shows the worst drift value (an alert must not be
averaged away) and the mean p50 / worst p99 latency.

Fleet-wide, the latency chart has one line per device rather than the fleet's median: a
median hides the one slow device, which is the reason to look at the chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, extract, func, literal_column, or_, select
from sqlalchemy.orm import Session

from app.core.db import Database
from app.core.drift_monitor import FLEET, DriftSettings
from app.core.errors import InvalidInput
from app.core.models import Device, DriftMeasurement, EnrollmentState, HealthSample

STATISTICS: dict[str, str] = {
    "psi_input": "PSI of input statistics",
    "psi_confidence": "PSI of confidence",
    "mmd_embedding": "MMD² of observer embeddings",
    "label_disagreement": "Label disagreement (concept drift)",
}
"""The drift statistics measure_drift stores, with the names people read. The queries name
them (``metric IN (...)``) so that the database can use the (device, metric, time) index;
a statistic added to measure_drift must be added here to be shown."""


def unmeasured_reason(metric: str) -> str:
    """Why ``metric`` may have no value: what measure_drift needs before it measures it."""
    need = DriftSettings()
    return {
        "psi_input": f"it needs at least {need.min_frames} frames of the devices' hourly "
                     "statistics in the window (they arrive with each health poll)",
        "psi_confidence": f"it needs at least {need.min_frames} frames of the devices' hourly "
                          "statistics in the window (they arrive with each health poll)",
        "mmd_embedding": f"it needs at least {need.min_embeddings} random or imported captures "
                         "that the observer has seen (pull, then observe)",
        "label_disagreement": f"it needs at least {need.min_reviewed} reviewed captures the "
                              "edge model predicted, in the window",
    }.get(metric, "it was not measured")


MAX_POINTS = 360
ALERTS_SHOWN = 500


@dataclass(frozen=True)
class Line:
    """One line of a chart: a name and its (time, value) points, oldest first."""

    name: str
    points: tuple[tuple[datetime, float], ...]


@dataclass(frozen=True)
class StatisticSeries:
    """One drift statistic over time: a line per scope, and its alert threshold (the newest
    one measured in the range)."""

    metric: str
    label: str
    threshold: float | None
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class AlertRow:
    """One drift measurement over its threshold."""

    measured_at: datetime
    scope: str  # a device uid, or "fleet"
    metric: str
    value: float
    threshold: float | None
    window_start: datetime
    window_end: datetime
    samples: int | None


@dataclass(frozen=True)
class DeviceScope:
    """A device the scope selector offers."""

    uid: str
    name: str
    enrollment: EnrollmentState


@dataclass(frozen=True)
class MonitoringView:
    """Everything the Monitoring page shows for one scope and range.

    ``drift`` holds every statistic of :data:`STATISTICS`, with no lines where nothing was
    measured. ``ever_measured`` and ``ever_sampled`` say whether the project holds any drift
    measurement or latency sample at all, so an empty chart can say why it is empty.
    """

    scope: str | None  # a device uid, or None for the fleet
    since: datetime
    until: datetime
    bucket_seconds: int
    devices: tuple[DeviceScope, ...]
    drift: dict[str, StatisticSeries]
    latency: tuple[Line, ...]
    alerts: tuple[AlertRow, ...]
    ever_measured: bool
    ever_sampled: bool

    @property
    def has_drift(self) -> bool:
        return any(s.lines for s in self.drift.values())


def monitoring_view(db: Database, scope: str | None, since: datetime, until: datetime, *,
                    max_points: int = MAX_POINTS) -> MonitoringView:
    """Drift, latency and alerts of device ``scope`` (a uid), or of the fleet when None,
    measured from ``since`` to ``until`` (both included)."""
    if since >= until:
        raise InvalidInput(f"the range starts ({since}) after it ends ({until})")
    width = max(1, math.ceil((until - since).total_seconds() / max(1, max_points)))
    with db.read() as session:
        devices = [DeviceScope(uid, name, state) for uid, name, state in session.execute(
            select(Device.uid, Device.name, Device.enrollment).order_by(Device.uid))]
        uids = dict(session.execute(select(Device.id, Device.uid)).all())
        if scope is None:
            device_ids = sorted(uids)
        else:
            found = [i for i, uid in uids.items() if uid == scope]
            if not found:
                raise InvalidInput(f"no device {scope!r} in this project; pick one the scope "
                                   "list shows")
            device_ids = found
        drift = _drift(session, scope, device_ids, uids, since, until, width)
        latency = _latency(session, scope, device_ids, uids, since, until, width)
        alerts = _alerts(session, scope, device_ids, uids, since, until)
        # Newest by primary key: no scan, however long the history.
        ever_measured = session.scalar(select(DriftMeasurement.id)
                                       .order_by(DriftMeasurement.id.desc()).limit(1)) is not None
        ever_sampled = session.scalar(select(HealthSample.id)
                                      .order_by(HealthSample.id.desc()).limit(1)) is not None
    return MonitoringView(scope, since, until, width, tuple(devices), drift, latency, alerts,
                          ever_measured, ever_sampled)


def _bucket(column: Any, width: int) -> ColumnElement[int]:
    # Whole seconds since the epoch, integer-divided: the same SQL meaning on SQLite
    # (strftime('%s')) and PostgreSQL (extract(epoch)). The width is written into the SQL,
    # not bound, so that PostgreSQL sees the SELECT and GROUP BY expressions as the same.
    return extract("epoch", column).cast(BigInteger) // literal_column(str(width), BigInteger)


def _scoped(column: Any, scope: str | None, device_ids: Sequence[int]) -> ColumnElement[bool]:
    """The scope's rows: one device's, or (fleet) every device's and the fleet-wide ones.

    Both databases answer ``device_id IN (...) OR device_id IS NULL`` from the index (SQLite
    as a multi-index OR)."""
    condition = column.in_(device_ids)
    return condition if scope is not None else or_(condition, column.is_(None))


def _drift(session: Session, scope: str | None, device_ids: Sequence[int],
           uids: dict[int, str], since: datetime, until: datetime,
           width: int) -> dict[str, StatisticSeries]:
    m = DriftMeasurement
    bucket = _bucket(m.window_end, width)
    points: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    newest: dict[str, tuple[datetime, float | None]] = {}
    rows = session.execute(
        select(m.device_id, m.metric, func.max(m.window_end), func.max(m.value),
               func.max(m.threshold))
        .where(_scoped(m.device_id, scope, device_ids), m.metric.in_(list(STATISTICS)),
               m.window_end >= since, m.window_end <= until)
        .group_by(m.device_id, m.metric, bucket)
        .order_by(m.device_id, m.metric, func.max(m.window_end)))
    for device_id, metric, at, value, threshold in rows:
        name = FLEET if device_id is None else uids[device_id]
        points.setdefault((metric, name), []).append((at, float(value)))
        if metric not in newest or at > newest[metric][0]:
            newest[metric] = (at, threshold)
    series: dict[str, StatisticSeries] = {}
    for metric, label in STATISTICS.items():
        # The fleet's own line first, then the devices by uid.
        names = sorted((n for (k, n) in points if k == metric), key=lambda n: (n != FLEET, n))
        lines = tuple(Line(n, tuple(points[(metric, n)])) for n in names)
        threshold = newest[metric][1] if metric in newest else None
        series[metric] = StatisticSeries(metric, label, threshold, lines)
    return series


def _latency(session: Session, scope: str | None, device_ids: Sequence[int],
             uids: dict[int, str], since: datetime, until: datetime,
             width: int) -> tuple[Line, ...]:
    if not device_ids:
        return ()
    h = HealthSample
    bucket = _bucket(h.at, width)
    rows = session.execute(
        select(h.device_id, func.max(h.at), func.avg(h.latency_p50_ms),
               func.max(h.latency_p99_ms))
        .where(h.device_id.in_(device_ids), h.at >= since, h.at <= until,
               h.latency_p50_ms.is_not(None))
        .group_by(h.device_id, bucket)
        .order_by(h.device_id, func.max(h.at))).all()
    if scope is not None:
        return (Line("p50", tuple((at, float(p50)) for _, at, p50, _ in rows)),
                Line("p99", tuple((at, float(p99)) for _, at, _, p99 in rows
                                  if p99 is not None)))
    by_device: dict[str, list[tuple[datetime, float]]] = {}
    for device_id, at, p50, _ in rows:
        by_device.setdefault(uids[device_id], []).append((at, float(p50)))
    return tuple(Line(uid, tuple(by_device[uid])) for uid in sorted(by_device))


def _alerts(session: Session, scope: str | None, device_ids: Sequence[int],
            uids: dict[int, str], since: datetime, until: datetime) -> tuple[AlertRow, ...]:
    m = DriftMeasurement
    rows = session.execute(
        select(m.measured_at, m.device_id, m.metric, m.value, m.threshold, m.window_start,
               m.window_end, m.details)
        .where(_scoped(m.device_id, scope, device_ids), m.metric.in_(list(STATISTICS)),
               m.window_end >= since, m.window_end <= until, m.alert.is_(True))
        .order_by(m.measured_at.desc(), m.id.desc()).limit(ALERTS_SHOWN))
    return tuple(AlertRow(at, FLEET if device_id is None else uids[device_id], metric,
                          float(value), threshold, start, end, _samples(details))
                 for at, device_id, metric, value, threshold, start, end, details in rows)


def _samples(details: dict[str, Any] | None) -> int | None:
    samples = (details or {}).get("n")  # measure_drift stores the sample count there
    return samples if isinstance(samples, int) and not isinstance(samples, bool) else None
