"""Recording what discovery saw in the project database.

A sighting only proposes (DESIGN.md): a new uid becomes a DISCOVERED device, and an audit
event says so; a known device gets its last-seen time and advertised facts refreshed as far
as its enrollment state allows. Nothing here touches the pinned host key or the enrollment
state, and a device that withdraws its advertisement keeps its record untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.audit import AuditTrail
from app.core.db import Database
from app.core.models import Device, EnrollmentState, utcnow
from app.core.project import SYSTEM_ACTOR
from app.fleet.discovery import Sighting

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _new_device(sighting: Sighting, now: datetime) -> Device:
    return Device(
        uid=sighting.uid,
        name=sighting.name,
        address=sighting.address,
        ssh_port=sighting.ssh_port,
        enrollment=EnrollmentState.DISCOVERED,
        advertised=sighting.advertised,
        agent_version=sighting.agent_version,
        model_version=sighting.model_version,
        hardware=sighting.hardware,
        first_seen=now,
        last_seen=now,
    )


def _refresh(device: Device, sighting: Sighting, now: datetime) -> None:
    device.last_seen = now
    device.advertised = sighting.advertised
    if device.enrollment is EnrollmentState.FORGOTTEN:
        # Dropped on purpose: it stays forgotten and what it reports is not adopted, but
        # its address is followed, so that enrolling it again (which confirms its host key
        # afresh) reaches it where it is now.
        device.address, device.ssh_port = sighting.address, sighting.ssh_port
        return
    device.agent_version = sighting.agent_version
    device.model_version = sighting.model_version
    device.hardware = sighting.hardware
    # Enrollment pins the SSH host key, not the address: a device that moved (DHCP, a new
    # port) is still checked against its pinned key on the next connection, so following it
    # is safe, and an impostor at the new address is refused there.
    device.address = sighting.address
    device.ssh_port = sighting.ssh_port
    if device.enrollment is EnrollmentState.DISCOVERED:
        device.name = sighting.name  # an enrolled device keeps the name it was confirmed with


def _discovered_summary(sighting: Sighting) -> dict[str, object]:
    return {"name": sighting.name, "address": sighting.address, "ssh_port": sighting.ssh_port,
            "agent": sighting.agent_version, "model": sighting.model_version,
            "hw": sighting.hardware}


class DeviceRegistry:
    """Keeps the project's device table in step with discovery.

    Times come from the injected clock: ``last_seen`` is when the project recorded a
    sighting (one time per batch), so it never runs backward however late a batch is written.
    """

    def __init__(self, db: Database, audit: AuditTrail, clock: Clock = utcnow) -> None:
        self.db = db
        self.audit = audit
        self.clock = clock

    def record(self, sighting: Sighting) -> bool:
        """Record one sighting; True if it was a device the project had never seen."""
        return bool(self.record_many([sighting]))

    def record_many(self, sightings: Iterable[Sighting]) -> list[str]:
        """Record sightings in one write transaction; return the uids of the new devices."""
        latest = {sighting.uid: sighting for sighting in sightings}  # the last one of a uid wins
        if not latest:
            return []
        try:
            return self._write(list(latest.values()))
        except IntegrityError:
            # Another workstation on the same PostgreSQL project inserted one of these new
            # devices between our read and our insert; a second pass finds it and updates it.
            logger.info("a device was recorded concurrently; recording the batch again")
            return self._write(list(latest.values()))

    def gone(self, uid: str) -> None:
        """A device withdrew its advertisement. Nothing is written: powered off or rebooting,
        it keeps its record, enrollment and ``last_seen`` (which then shows how long ago)."""
        logger.info("device %s withdrew its advertisement", uid)

    def _write(self, batch: list[Sighting]) -> list[str]:
        with self.db.write() as session:
            now = self.clock()
            known = self._devices(session, [sighting.uid for sighting in batch])
            new = [sighting for sighting in batch if sighting.uid not in known]
            for sighting in batch:
                if sighting.uid in known:
                    _refresh(known[sighting.uid], sighting, now)
                else:
                    session.add(_new_device(sighting, now))
            session.flush()
            for sighting in new:
                self.audit.append(
                    session, actor=SYSTEM_ACTOR, action="device_discovered",
                    object_type="device", object_id=sighting.uid,
                    after=_discovered_summary(sighting),
                )
            return [sighting.uid for sighting in new]

    @staticmethod
    def _devices(session: Session, uids: list[str]) -> dict[str, Device]:
        found = session.scalars(select(Device).where(Device.uid.in_(uids)))
        return {device.uid: device for device in found}
