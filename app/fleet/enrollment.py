"""Enrollment: from a device discovery proposed to a device the project trusts.

The engineer sees the host-key fingerprint the device presents and confirms it; only then
does the workstation log in (with a bootstrap password or key the first time, if its own key
is not yet installed), check that the device answers with the expected id, install the
workstation's public key, provision the project's model-signing public key, and prove the
installed key works alone. The confirmed fingerprint is pinned: every later connection
refuses any other key (:mod:`app.fleet.ssh`). Nothing secret is stored in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import paramiko
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput
from app.core.models import Device, DeviceHealth, EnrollmentState
from app.core.roles import Actor, Permission, authorize
from app.fleet.agent.manifest import public_key_to_text
from app.fleet.context import FleetContext, find_device
from app.fleet.errors import DeviceProtocolError, HostKeyMismatch
from app.fleet.signing import load_or_create_signing_key
from app.fleet.ssh import DeviceAddress, DeviceConnection, HostKeyInfo, probe_host_key

DEFAULT_SSH_USER = "edgeloop"
SIGNING_TRUST_NAME = "project"


@dataclass(frozen=True)
class Bootstrap:
    """How to log in the first time, before the workstation key is installed."""

    password: str | None = None
    key_file: Path | None = None

    def key(self) -> paramiko.PKey | None:
        if self.key_file is None:
            return None
        try:
            return paramiko.Ed25519Key.from_private_key_file(str(self.key_file))
        except (OSError, paramiko.SSHException) as exc:
            raise InvalidInput(f"--bootstrap-key {self.key_file}: cannot read an ed25519 "
                               f"private key ({exc})") from exc


@dataclass(frozen=True)
class EnrollmentResult:
    """What enrollment confirmed about the device."""

    uid: str
    fingerprint: str
    address: str
    port: int
    model_version: str | None
    agent_version: str | None


def device_endpoint(ctx: FleetContext, uid: str, address: str | None = None,
                    port: int | None = None) -> tuple[str, int]:
    """Where to reach ``uid``: the given address/port, else what discovery last saw."""
    if address and port:
        return address, port
    with ctx.db.read() as session:
        device = find_device(session, uid)
        host, ssh_port = address or device.address, port or device.ssh_port
    if not host or not ssh_port:
        raise InvalidInput(f"device {uid} has no known address; give --address and --port")
    return host, ssh_port


def probe(ctx: FleetContext, uid: str, address: str | None = None,
          port: int | None = None) -> HostKeyInfo:
    """The host key the device presents now, for the engineer to compare and confirm."""
    host, ssh_port = device_endpoint(ctx, uid, address, port)
    return probe_host_key(host, ssh_port)


def enroll(ctx: FleetContext, actor: Actor, uid: str, *, confirmed_fingerprint: str,
           address: str | None = None, port: int | None = None,
           user: str = DEFAULT_SSH_USER, bootstrap: Bootstrap = Bootstrap()) -> EnrollmentResult:
    """Enroll ``uid`` at the confirmed host key; see the module docstring for the steps."""
    authorize(ctx.db, ctx.audit, actor, Permission.MANAGE_DEVICES, f"device {uid}")
    host, ssh_port = device_endpoint(ctx, uid, address, port)
    target = DeviceAddress(uid, host, ssh_port, user, confirmed_fingerprint)
    seen = probe_host_key(host, ssh_port)
    if seen.fingerprint != confirmed_fingerprint:
        raise HostKeyMismatch(
            f"{target} presents host key {seen.fingerprint}, not the confirmed "
            f"{confirmed_fingerprint}; nothing was enrolled. Check the fingerprint on the "
            "device's own console before trusting it.")
    signing_public = public_key_to_text(load_or_create_signing_key(ctx.keys_dir).public_key())
    with DeviceConnection.connect(target, ctx.identity, password=bootstrap.password,
                                  extra_key=bootstrap.key()) as conn:
        status = conn.agent("ctl", "status")
        _check_identity(target, status)
        conn.agent("ctl", "authorize", stdin=(ctx.identity.public_line + "\n").encode())
        conn.agent("ctl", "trust", SIGNING_TRUST_NAME, stdin=signing_public.encode())
    # Prove the installed key works on its own before calling the device enrolled.
    with DeviceConnection.connect(target, ctx.identity) as conn:
        status = conn.agent("ctl", "status")
    return _record(ctx, actor, target, status)


def _check_identity(target: DeviceAddress, status: dict) -> None:  # type: ignore[type-arg]
    answered = status.get("device_id") or (status.get("status") or {}).get("device_id")
    if answered is not None and answered != target.uid:
        raise DeviceProtocolError(
            f"{target} answers as device {answered!r}; the address belongs to another device "
            "(discovery may be stale). Nothing was enrolled.")


def _record(ctx: FleetContext, actor: Actor, target: DeviceAddress,
            status: dict) -> EnrollmentResult:  # type: ignore[type-arg]
    now = ctx.clock()
    with ctx.db.write() as session:
        device = _device_row(session, target.uid)
        before = {"enrollment": device.enrollment.value,
                  "host_key_fingerprint": device.host_key_fingerprint}
        device.last_seen = now
        device.address, device.ssh_port, device.ssh_user = target.host, target.port, target.user
        device.host_key_fingerprint = target.host_key_fingerprint
        device.enrollment = EnrollmentState.ENROLLED
        device.enrolled_at = now
        device.last_seen = now
        device.model_version = status.get("current") or device.model_version
        device.agent_version = status.get("agent") or device.agent_version
        device.health = DeviceHealth.UNKNOWN
        session.flush()
        ctx.audit.append(session, actor=actor.name, action="device.enroll", object_type="device",
                         object_id=target.uid, before=before,
                         after={"enrollment": "enrolled",
                                "host_key_fingerprint": target.host_key_fingerprint,
                                "address": f"{target.host}:{target.port}", "user": target.user})
        return EnrollmentResult(target.uid, target.host_key_fingerprint or "", target.host,
                                target.port, device.model_version, device.agent_version)


def _device_row(session: Session, uid: str) -> Device:
    device = session.scalar(select(Device).where(Device.uid == uid))
    if device is None:
        device = Device(uid=uid, name=uid, enrollment=EnrollmentState.DISCOVERED)
        session.add(device)
    return device


def forget(ctx: FleetContext, actor: Actor, uid: str) -> None:
    """Stop trusting a device: drop its pinned host key; its captures stay."""
    authorize(ctx.db, ctx.audit, actor, Permission.MANAGE_DEVICES, f"device {uid}")
    with ctx.db.write() as session:
        device = find_device(session, uid)
        before = {"enrollment": device.enrollment.value,
                  "host_key_fingerprint": device.host_key_fingerprint}
        device.enrollment = EnrollmentState.FORGOTTEN
        device.host_key_fingerprint = None
        ctx.audit.append(session, actor=actor.name, action="device.forget", object_type="device",
                         object_id=uid, before=before, after={"enrollment": "forgotten"})
