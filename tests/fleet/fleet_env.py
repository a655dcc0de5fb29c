"""A project plus a running simulated fleet, for the workstation-side fleet tests."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import paramiko
from sqlalchemy import func, select

from app.core.models import Capture
from app.core.project import Project, init_project
from app.core.roles import Actor
from app.core.users import actor_named
from app.fleet.context import FleetContext
from app.fleet.enrollment import Bootstrap, enroll
from app.fleet.rollout_plan import HealthBounds
from app.fleet.signing import load_or_create_signing_key
from app.fleet.simulator import SimDevice, SimDeviceSpec, SimulatedFleet
from tests.support.releases import make_release
from tests.support.ssh import client_key


@dataclass
class FleetEnv:
    """An open project, its fleet context and admin, a running fleet, a bootstrap key."""

    project: Project
    ctx: FleetContext
    admin: Actor
    fleet: SimulatedFleet
    devices: list[SimDevice]
    bootstrap: Bootstrap
    bootstrap_key: paramiko.PKey
    workdir: Path

    def device(self, index: int) -> SimDevice:
        return self.devices[index]

    def enroll(self, index: int) -> None:
        device = self.devices[index]
        enroll(self.ctx, self.admin, device.spec.device_id,
               confirmed_fingerprint=device.endpoint.host_key_fingerprint,
               address=device.endpoint.host, port=device.endpoint.port,
               bootstrap=self.bootstrap)

    def captures_in_db(self) -> int:
        with self.project.db.read() as session:
            return session.scalar(select(func.count()).select_from(Capture)) or 0

    def spool_ids(self, index: int) -> list[str]:
        return sorted(p.stem for p in self.devices[index].home.spool.glob("*.json"))

    def wait_for_spool(self, index: int, at_least: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.spool_ids(index)) < at_least:
            assert time.monotonic() < deadline, f"device {index} captured too little"
            time.sleep(0.2)

    def status(self, index: int) -> dict:  # type: ignore[type-arg]
        return json.loads(self.devices[index].home.status_path.read_text())


@contextmanager
def fleet_env(tmp_path: Path, count: int = 2, *, fps: float = 20.0,
              random_rate: float = 1.0, factory_key: Ed25519PrivateKey | None = None,
              ) -> Iterator[FleetEnv]:
    """A SQLite project whose signing key signed the fleet's factory release (edge-1), or,
    with ``factory_key``, a fleet whose factory image another key signed (as a vendor's)."""
    project = init_project(tmp_path / "project", admin="admin")
    key = factory_key or load_or_create_signing_key(project.keys_dir)
    release, _ = make_release(tmp_path / "releases", "edge-1", key, seed=1)
    pkey, public = client_key(tmp_path)
    tag = uuid.uuid4().hex[:6]  # unique ids: other fleets may advertise on this loopback
    specs = [SimDeviceSpec(f"f{tag}-{i + 1}", seed=10 + i, fps=fps, random_rate=random_rate)
             for i in range(count)]
    fleet = SimulatedFleet(tmp_path / "sim", key, release, specs, authorized_keys=[public])
    try:
        devices = fleet.start()
        ctx = FleetContext.of(project)
        yield FleetEnv(project, ctx, actor_named(project.db, "admin"), fleet, devices,
                       Bootstrap(key_file=tmp_path / "id_ed25519"), pkey, tmp_path)
    finally:
        fleet.stop()
        project.close()


FAST = HealthBounds(min_fps=1.0, max_error_rate=0.05, window_s=2.0, poll_interval_s=0.3,
                    timeout_s=30.0)
"""Health limits that judge a simulated device in seconds, not minutes."""
