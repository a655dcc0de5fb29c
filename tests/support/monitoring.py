"""History for the monitoring tests: devices, drift measurements and health samples.

Devices come through the real registry (as discovery records them). Drift measurements and
health samples are rows of the real ORM classes: the services that write them need a trained
baseline (measure_drift) or a polled fleet over SSH (poll_device), and these tests need
chosen values at chosen times over days.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from app.core.models import Device, DriftMeasurement, HealthSample
from app.core.project import Project
from app.fleet.discovery import Sighting
from app.fleet.registry import DeviceRegistry


def add_device(project: Project, uid: str, name: str = "") -> None:
    """A device as discovery records it."""
    DeviceRegistry(project.db, project.audit, project.clock).record(Sighting(
        uid=uid, name=name or uid, address="127.0.0.1", ssh_port=2222, agent_version="0.9",
        model_version="edge-1", hardware="sim", seen_at=project.clock()))


def _device_id(session, uid: str | None) -> int | None:  # type: ignore[no-untyped-def]
    return None if uid is None else session.scalar(select(Device.id).where(Device.uid == uid))


def add_measurement(project: Project, uid: str | None, metric: str, value: float,
                    at: datetime, threshold: float = 0.25, samples: int = 300) -> None:
    """One drift measurement over the hour before ``at`` (``uid`` None: fleet-wide), stored
    as measure_drift stores it: an alert when over the threshold."""
    with project.db.write() as session:
        session.add(DriftMeasurement(
            device_id=_device_id(session, uid), metric=metric, value=value, threshold=threshold,
            alert=value > threshold, window_start=at - timedelta(hours=1), window_end=at,
            baseline="edge-1/observer-1", details={"n": samples}, measured_at=at))


def add_sample(project: Project, uid: str, at: datetime, p50: float | None,
               p99: float | None, online: bool = True) -> None:
    """One health poll of ``uid`` as poll_device stores it."""
    with project.db.write() as session:
        session.add(HealthSample(
            device_id=_device_id(session, uid), at=at, online=online,
            model_version="edge-1" if online else None, fps=20.0 if online else None,
            latency_p50_ms=p50, latency_p99_ms=p99, detail={}))
