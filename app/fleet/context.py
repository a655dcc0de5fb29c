"""What the fleet services need from a project, handed over explicitly.

The services (enrollment, pull, deploy, health) take a :class:`FleetContext` instead of
reaching for globals, so a test builds one from a temporary project and a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models import Device, EnrollmentState
from app.core.project import Project
from app.fleet.errors import DeviceNotEnrolled
from app.fleet.ssh import DeviceAddress, WorkstationIdentity


@dataclass
class FleetContext:
    """The project's database, blobs, audit trail, clock, key folder and SSH identity."""

    db: Database
    blobs: BlobStore
    audit: AuditTrail
    clock: Callable[[], datetime]
    keys_dir: Path
    identity: WorkstationIdentity

    @classmethod
    def of(cls, project: Project) -> FleetContext:
        return cls(project.db, project.blobs, project.audit, project.clock, project.keys_dir,
                   WorkstationIdentity.load_or_create(project.keys_dir))


def find_device(session: Session, uid: str) -> Device:
    """The device with this uid, or an error saying how to list them."""
    device = session.scalar(select(Device).where(Device.uid == uid))
    if device is None:
        raise InvalidInput(f"no device {uid!r} in this project; `edgeloop devices list` "
                           "shows the known ones")
    return device


def enrolled_address(device: Device) -> DeviceAddress:
    """The SSH address of an enrolled device, with its pinned host key."""
    if device.enrollment is not EnrollmentState.ENROLLED or not device.host_key_fingerprint:
        raise DeviceNotEnrolled(
            f"device {device.uid} is {device.enrollment.value}, not enrolled; "
            f"`edgeloop devices enroll {device.uid}` first")
    if not device.address or not device.ssh_port:
        raise InvalidInput(f"device {device.uid} has no known address; wait until discovery "
                           "sees it, or enroll it with --address and --port")
    return DeviceAddress(device.uid, device.address, device.ssh_port, device.ssh_user,
                         device.host_key_fingerprint)
