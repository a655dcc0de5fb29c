"""One simulated device with a spool the test fills by hand, served by the simulator's SSH
server, enrolled in a project: the bench for pull tests that need exact control."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from app.core.models import Capture, Device, DeviceHealth, EnrollmentState
from app.core.project import Project, init_project
from app.core.roles import Actor
from app.core.users import actor_named
from app.fleet.agent.home import AgentConfig, AgentHome
from app.fleet.agent.spool import Spool
from app.fleet.context import FleetContext
from app.fleet.sim_ssh import DeviceSSHServer, SSHEndpoint, authorize_client_key
from app.fleet.sim_ssh_thread import DeviceSSHServerThread
from app.fleet.simulator import agent_command


def jpeg(seed: int, size: int = 32) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def sidecar(uid: str, seq: int) -> dict:  # type: ignore[type-arg]
    return {"device_id": uid, "captured_at": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(),
            "reason": "random_sample", "prediction": ["ok", "scratch"][seq % 2],
            "confidence": 0.5, "model_version": "edge-1"}


@dataclass
class PullDevice:
    """A project, an enrolled device reachable at ``port`` (maybe through a proxy)."""

    project: Project
    ctx: FleetContext
    admin: Actor
    home: AgentHome
    spool: Spool
    endpoint: SSHEndpoint
    uid: str

    def add(self, count: int, start_seed: int = 0) -> list[str]:
        return [self.spool.add(jpeg(start_seed + i), "jpg", sidecar(self.uid, start_seed + i))
                for i in range(count)]

    def spool_ids(self) -> set[str]:
        return {p.stem for p in self.home.spool.glob("*.json")}

    def held_ids(self) -> set[str]:
        folder = self.home.root / "quarantine"
        return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()

    def db_ids(self) -> list[str]:
        with self.project.db.read() as session:
            return list(session.scalars(select(Capture.device_capture_id)))

    def point_at(self, port: int) -> None:
        with self.project.db.write() as session:
            device = session.scalar(select(Device).where(Device.uid == self.uid))
            device.ssh_port = port

    def write_raw(self, seq: int, files: dict[str, bytes]) -> str:
        """Put hand-made files into the spool as capture ``seq`` (bypassing Spool.add)."""
        cid = f"{seq:012d}"
        for name, data in files.items():
            (self.home.spool / name.replace("ID", cid)).write_bytes(data)
        return cid

    def good_files(self, seq: int) -> dict[str, bytes]:
        import hashlib

        image = jpeg(seq)
        cid = f"{seq:012d}"
        record = dict(sidecar(self.uid, seq), id=cid, file=f"{cid}.jpg", size=len(image),
                      sha256=hashlib.sha256(image).hexdigest())
        return {"ID.jpg": image, "ID.json": json.dumps(record).encode()}


@contextmanager
def pull_device(tmp_path: Path, uid: str = "pull-1") -> Iterator[PullDevice]:
    project = init_project(tmp_path / "project", admin="admin")
    ctx = FleetContext.of(project)
    home = AgentHome(tmp_path / "device")
    home.create(AgentConfig(device_id=uid, authorized_keys="ssh/authorized_keys"))
    authorize_client_key(home.root, ctx.identity.public_line)
    server = DeviceSSHServerThread(DeviceSSHServer(
        home.root, commands={"edgeloop-agent": agent_command(home.root)}))
    endpoint = server.start()
    try:
        with project.db.write() as session:
            session.add(Device(uid=uid, name=uid, address=endpoint.host, ssh_port=endpoint.port,
                               ssh_user=endpoint.user, enrollment=EnrollmentState.ENROLLED,
                               health=DeviceHealth.UNKNOWN,
                               host_key_fingerprint=endpoint.host_key_fingerprint))
        yield PullDevice(project, ctx, actor_named(project.db, "admin"), home,
                         home.open_spool(home.load_config()), endpoint, uid)
    finally:
        server.stop()
        project.close()
