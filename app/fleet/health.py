"""Fleet health: poll each device's status and drift statistics, keep the history.

One ``edgeloop-agent ctl status --drift-since HOUR`` per device and poll. Each poll becomes
a :class:`HealthSample` row (the charts' history) and the device's ``health``:

- offline: the device cannot be reached;
- stale: it answers, but its agent loop has not refreshed status.json since the last poll
  (the loop is stuck or stopped) or never wrote one;
- degraded: errors grew since the last poll;
- healthy: otherwise.

Hourly drift records newer than the last one stored are upserted (the current hour is
replaced as it fills).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.core.errors import EdgeLoopError
from app.core.models import Device, DeviceDriftHour, DeviceHealth, HealthSample
from app.fleet.context import FleetContext, enrolled_address, find_device
from app.fleet.errors import DeviceUnreachable
from app.fleet.pull import enrolled_uids
from app.fleet.ssh import DeviceConnection


@dataclass(frozen=True)
class HealthReport:
    """The outcome of one poll of one device."""

    uid: str
    health: DeviceHealth
    model_version: str | None
    fps: float | None
    detail: str


def poll_device(ctx: FleetContext, uid: str) -> HealthReport:
    """Poll one enrolled device and record what it said (or that it was unreachable)."""
    with ctx.db.read() as session:
        device = find_device(session, uid)
        address = enrolled_address(device)
        last_hour = session.scalar(select(func.max(DeviceDriftHour.hour))
                                   .where(DeviceDriftHour.device_id == device.id))
        previous = session.scalar(select(HealthSample).where(
            HealthSample.device_id == device.id, HealthSample.online.is_(True))
            .order_by(HealthSample.at.desc(), HealthSample.id.desc()).limit(1))
        previous_detail = dict(previous.detail) if previous is not None else {}
    try:
        with DeviceConnection.connect(address, ctx.identity) as conn:
            answer = conn.agent("ctl", "status", "--drift-since", _hour_before(last_hour))
    except DeviceUnreachable as exc:
        return _record_offline(ctx, uid, str(exc))
    return _record_status(ctx, uid, answer, previous_detail)


def _hour_before(hour: str | None) -> str:
    """The drift key one hour before ``hour`` (YYYYMMDDHH), so the agent resends ``hour`` itself.

    The agent answers records strictly newer than the key; the last stored hour is usually the
    current one, still filling up, and must be fetched again.
    """
    if not hour:
        return "0000000000"
    before = datetime.strptime(hour, "%Y%m%d%H") - timedelta(hours=1)
    return before.strftime("%Y%m%d%H")


def _classify(status: dict[str, Any], previous: dict[str, Any]) -> tuple[DeviceHealth, str]:
    if not status:
        return DeviceHealth.STALE, "the agent has written no status yet"
    if previous and status.get("time") == previous.get("time"):
        return DeviceHealth.STALE, "status.json has not changed since the last poll"
    errors, before = int(status.get("errors") or 0), int(previous.get("errors") or 0)
    if previous and errors > before:
        return DeviceHealth.DEGRADED, f"{errors - before} new error(s): {status.get('last_error')}"
    return DeviceHealth.HEALTHY, "ok"


def _record_status(ctx: FleetContext, uid: str, answer: dict[str, Any],
                   previous: dict[str, Any]) -> HealthReport:
    status = answer.get("status") if isinstance(answer.get("status"), dict) else {}
    health, detail = _classify(status, previous)
    latency = status.get("latency_ms") or {}
    now = ctx.clock()
    with ctx.db.write() as session:
        device = find_device(session, uid)
        device.health, device.last_status_at, device.last_seen = health, now, now
        device.model_version = answer.get("current") or device.model_version
        device.agent_version = answer.get("agent") or device.agent_version
        session.add(HealthSample(
            device_id=device.id, at=now, online=True, model_version=answer.get("current"),
            fps=_number(status.get("fps")), latency_p50_ms=_number(latency.get("p50")),
            latency_p99_ms=_number(latency.get("p99")),
            cpu_percent=_number(status.get("cpu_percent")),
            memory_mb=_mb(status.get("memory_bytes")),
            disk_free_mb=_mb((status.get("disk") or {}).get("free_bytes")),
            errors=_int(status.get("errors")),
            spool_captures=_int((answer.get("spool") or {}).get("captures")),
            detail={"time": status.get("time"), "errors": status.get("errors"),
                    "frames": status.get("frames"), "health_detail": detail}))
        _store_drift(session, device, answer.get("drift") or [], now)
    return HealthReport(uid, health, answer.get("current"), _number(status.get("fps")), detail)


def _store_drift(session, device: Device, records: Sequence[Any], now) -> None:  # type: ignore[no-untyped-def]
    for record in records:
        hour = str(record.get("hour", "")) if isinstance(record, dict) else ""
        if len(hour) != 10 or not hour.isdigit():
            continue  # a record without a valid hour key cannot be placed on the chart
        row = session.scalar(select(DeviceDriftHour).where(
            DeviceDriftHour.device_id == device.id, DeviceDriftHour.hour == hour))
        if row is None:
            session.add(DeviceDriftHour(device_id=device.id, hour=hour, record=record,
                                        received_at=now))
        else:
            row.record, row.received_at = record, now


def _record_offline(ctx: FleetContext, uid: str, reason: str) -> HealthReport:
    now = ctx.clock()
    with ctx.db.write() as session:
        device = find_device(session, uid)
        device.health = DeviceHealth.OFFLINE
        session.add(HealthSample(device_id=device.id, at=now, online=False,
                                 detail={"error": reason[:500]}))
    return HealthReport(uid, DeviceHealth.OFFLINE, None, None, reason)


def poll_fleet(ctx: FleetContext, uids: Sequence[str] | None = None,
               concurrency: int = 8) -> list[HealthReport]:
    """Poll several devices at once; one device's trouble is its own report."""
    targets = list(uids) if uids else enrolled_uids(ctx)

    def one(uid: str) -> HealthReport:
        try:
            return poll_device(ctx, uid)
        except EdgeLoopError as exc:
            return HealthReport(uid, DeviceHealth.UNKNOWN, None, None, str(exc))

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="health") as pool:
        return list(pool.map(one, targets))


def history(ctx: FleetContext, uid: str, limit: int = 500) -> list[HealthSample]:
    """The newest ``limit`` samples of a device, oldest first (for charts)."""
    with ctx.db.read() as session:
        device = find_device(session, uid)
        rows = list(session.scalars(select(HealthSample).where(HealthSample.device_id == device.id)
                                    .order_by(HealthSample.at.desc(), HealthSample.id.desc())
                                    .limit(limit)))
        for row in rows:
            session.expunge(row)
    return rows[::-1]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _mb(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else number / 2**20
