"""Pulling captures from devices: verified, committed, and only then acknowledged.

Per device, a pull is a loop of batches, each one exec channel
(``edgeloop-agent ctl pull --after CURSOR``, docs/device-protocol.md):

1. the device streams a tar of up to ``limit`` captures after the device's cursor;
2. every member is checked (:mod:`app.fleet.capture_check`); refused captures are
   quarantined with their reason, never imported;
3. the good images go into the blob store (one flush for the batch), then one database
   transaction inserts the captures, the quarantine rows and the new cursor;
4. only then the ack line goes back on the same channel: delete up to the cursor, but hold
   (keep, in the device's quarantine folder) the refused ones.

A connection cut at any point loses nothing and imports nothing twice: before step 3
commits, the device still has everything and the cursor has not moved; after it, the
unique (device, capture id) key and the cursor make a repeat harmless, and the next ack
(every ack carries the cursor) deletes what was committed. Many devices are pulled at once
on a bounded thread pool; progress is reported through a callback and a cancel token stops
between members.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import paramiko
from sqlalchemy import insert, select, update

from app.core.models import (
    Blob, Capture, Device, EnrollmentState, LabelClass, QuarantinedCapture,
)
from app.core.blobs import BlobBatch
from app.core.class_names import prediction_class_ids
from app.core.errors import EdgeLoopError
from app.core.progress import Cancelled, CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize
from app.fleet.capture_check import (
    MAX_IMAGE_BYTES, MAX_SIDECAR_BYTES, CaptureAssembler, CheckedCapture, Refusal, device_meta,
)
from app.fleet.context import FleetContext, enrolled_address, find_device
from app.fleet.errors import DeviceProtocolError, DeviceUnreachable, reason
from app.fleet.ssh import DeviceAddress, DeviceConnection, agent_command

log = logging.getLogger(__name__)

DEFAULT_BATCH = 5000
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
DEFAULT_CONCURRENCY = 4
_READ_CHUNK = 1 << 20


@dataclass
class PullResult:
    """What one device's pull did."""

    uid: str
    imported: int = 0
    already_had: int = 0
    quarantined: int = 0
    bytes: int = 0
    batches: int = 0
    seconds: float = 0.0
    cursor: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class PullSettings:
    """Batch size and concurrency of a pull."""

    batch: int = DEFAULT_BATCH
    batch_bytes: int = DEFAULT_BATCH_BYTES
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = 120.0


@dataclass
class _Batch:
    # Images go to temp files while the rest of the stream arrives; see BlobBatch.
    blobs: BlobBatch
    good: list[CheckedCapture] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    last_id: str | None = None
    bytes: int = 0

    @property
    def captures(self) -> int:
        return len(self.good) + sum(1 for r in self.refused if r.holdable)


class ChannelReader(io.RawIOBase):
    """A paramiko channel's stdout as a raw binary stream (for tarfile), checking cancel."""

    def __init__(self, channel: paramiko.Channel, cancel: CancelToken) -> None:
        self.channel = channel
        self.cancel = cancel

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        self.cancel.check()
        data = self.channel.recv(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _members(stream: io.BufferedReader, assembler: CaptureAssembler,
             cancel: CancelToken) -> Iterator[CheckedCapture | Refusal]:
    """Read the tar stream to its end marker, yielding checked captures and refusals."""
    try:
        archive = tarfile.open(fileobj=stream, mode="r|")
    except tarfile.ReadError as exc:
        raise DeviceProtocolError(f"the device's pull stream is not a tar archive ({exc})") from exc
    with archive:
        for member in archive:
            cancel.check()
            limit = MAX_SIDECAR_BYTES if member.name.endswith(".json") else MAX_IMAGE_BYTES
            data = None
            if member.isreg() and member.size <= limit:
                extracted = archive.extractfile(member)
                data = extracted.read() if extracted is not None else None
                if data is not None and len(data) != member.size:
                    raise DeviceUnreachable("the pull stream ended inside a file")
            yield from assembler.member(member.name, member.isreg(), data, member.size)
        yield from assembler.finish()


class DevicePuller:
    """Pulls one device's new captures into the project (see the module docstring)."""

    def __init__(self, ctx: FleetContext, actor: Actor, settings: PullSettings = PullSettings(),
                 progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> None:
        self.ctx = ctx
        self.actor = actor
        self.settings = settings
        self.progress = progress
        self.cancel = cancel or CancelToken()
        self._class_ids: dict[str, int] = {}

    def pull(self, uid: str) -> PullResult:
        """Pull until the device has nothing newer than the cursor; errors name the device."""
        started = time.perf_counter()
        result = PullResult(uid)
        with self.ctx.db.read() as session:
            device = find_device(session, uid)
            address, device_id = enrolled_address(device), device.id
            result.cursor = device.capture_cursor
        with DeviceConnection.connect(address, self.ctx.identity,
                                      timeout=self.settings.timeout) as conn:
            while True:
                self.cancel.check()
                batch = self._one_batch(conn, address, device_id, result)
                result.batches += 1
                full = (len(batch.good) + len(batch.refused) >= self.settings.batch
                        or batch.bytes >= self.settings.batch_bytes)
                if not full:
                    break
        result.seconds = time.perf_counter() - started
        return result

    def _one_batch(self, conn: DeviceConnection, address: DeviceAddress, device_id: int,
                   result: PullResult) -> _Batch:
        args = ["ctl", "pull", "--limit", str(self.settings.batch),
                "--max-bytes", str(self.settings.batch_bytes)]
        if result.cursor:
            args += ["--after", result.cursor]
        channel = conn.open_channel(agent_command(*args), self.settings.timeout)
        try:
            with self.ctx.blobs.batch() as blobs:
                batch = _Batch(blobs)
                self._receive(channel, address, batch)
                self._check_failed_early(channel, address)
                imported, had = self._commit(device_id, address.uid, batch, result)
            result.imported += imported
            result.already_had += had
            result.quarantined += len(batch.refused)
            result.bytes += batch.bytes
            self._acknowledge(channel, address, device_id, result.cursor)
            self.progress(Progress("pull", result.imported, 0.0,
                                   f"{address.uid}: {result.imported} imported, "
                                   f"{result.quarantined} quarantined"))
            return batch
        finally:
            channel.close()

    def _receive(self, channel: paramiko.Channel, address: DeviceAddress, batch: _Batch) -> None:
        """Read the batch's archive to its end, sorting checked captures from refusals."""
        stream = io.BufferedReader(ChannelReader(channel, self.cancel), _READ_CHUNK)
        try:
            for item in _members(stream, CaptureAssembler(address.uid), self.cancel):
                self._add(batch, item)
        except (OSError, EOFError, paramiko.SSHException, tarfile.TarError) as exc:
            raise DeviceUnreachable(f"{address}: the pull stream broke off ({reason(exc)}); "
                                    "nothing of this batch was imported; pull again") from exc

    def _add(self, batch: _Batch, item: CheckedCapture | Refusal) -> None:
        if isinstance(item, CheckedCapture):
            batch.good.append(item)
            batch.blobs.add(item.image, item.sha256)
            batch.bytes += len(item.image)
            batch.last_id = max(batch.last_id or "", item.capture_id)
        else:
            batch.refused.append(item)
            batch.bytes += item.size
            if item.holdable:
                batch.last_id = max(batch.last_id or "", item.capture_id)

    @staticmethod
    def _check_failed_early(channel: paramiko.Channel, address: DeviceAddress) -> None:
        """An agent that refused the command sends no archive but an exit status."""
        if channel.exit_status_ready() and channel.recv_exit_status() != 0:
            message = b""
            while channel.recv_stderr_ready():
                message += channel.recv_stderr(65536)
            raise DeviceProtocolError(f"{address}: `edgeloop-agent ctl pull` failed: "
                                      f"{message.decode('utf-8', 'replace').strip()}")

    def _commit(self, device_id: int, uid: str, batch: _Batch,
                result: PullResult) -> tuple[int, int]:
        """Blobs first (durable), then one transaction: captures, quarantine rows, cursor."""
        if batch.last_id is None and not batch.refused:
            return 0, 0
        batch.blobs.commit()
        now = self.ctx.clock()
        with self.ctx.db.write() as session:
            ids = [c.capture_id for c in batch.good]
            existing = set(session.scalars(select(Capture.device_capture_id).where(
                Capture.device_id == device_id, Capture.device_capture_id.in_(ids)))) if ids else set()
            fresh = [c for c in batch.good if c.capture_id not in existing]
            self._insert_blobs(session, fresh, now)
            class_ids = self._label_ids(session, {c.prediction for c in fresh if c.prediction})
            if fresh:
                session.execute(insert(Capture), [{
                    "device_id": device_id, "device_capture_id": c.capture_id,
                    "blob_sha256": c.sha256, "captured_at": c.captured_at, "imported_at": now,
                    "reason": c.reason, "model_version": c.model_version,
                    "edge_class_id": class_ids.get(c.prediction) if c.prediction else None,
                    "edge_confidence": c.confidence, "device_meta": device_meta(c.sidecar),
                } for c in fresh])
            self._quarantine(session, device_id, batch.refused, now)
            cursor = max(result.cursor or "", batch.last_id or "") or None
            session.execute(update(Device).where(Device.id == device_id).values(
                capture_cursor=cursor, last_seen=now))
            self.ctx.audit.append(session, actor=self.actor.name, action="captures.pull",
                                  object_type="device", object_id=uid,
                                  after={"imported": len(fresh), "already_had": len(existing),
                                         "quarantined": len(batch.refused), "cursor": cursor})
        result.cursor = cursor
        return len(fresh), len(existing)

    @staticmethod
    def _insert_blobs(session, fresh: Sequence[CheckedCapture], now) -> None:  # type: ignore[no-untyped-def]
        wanted = {c.sha256: c for c in fresh}
        if not wanted:
            return
        have = set(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(list(wanted)))))
        rows = [{"sha256": sha, "size": len(c.image), "media_type": c.media_type,
                 "created_at": now} for sha, c in wanted.items() if sha not in have]
        if rows:
            session.execute(insert(Blob), rows)

    def _label_ids(self, session, names: set[str]) -> dict[str, int]:  # type: ignore[no-untyped-def]
        """Ids of the edge model's class names (old names of renamed or merged classes
        resolve to the class they became); a name the project lacks becomes a class."""
        missing = names - set(self._class_ids)
        if missing:
            # A renamed or merged class's old name means the class it became.
            found = prediction_class_ids(session, missing)
            for name in sorted(missing - set(found)):
                label = LabelClass(name=name, position=len(found) + len(self._class_ids))
                session.add(label)
                session.flush()
                found[name] = label.id
                self.ctx.audit.append(session, actor=self.actor.name, action="label_class.create",
                                      object_type="label_class", object_id=name,
                                      after={"source": "edge model prediction"})
            self._class_ids.update(found)
        return {name: self._class_ids[name] for name in names}

    @staticmethod
    def _quarantine(session, device_id: int, refused: Sequence[Refusal], now) -> None:  # type: ignore[no-untyped-def]
        for refusal in refused:
            row = session.scalar(select(QuarantinedCapture).where(
                QuarantinedCapture.device_id == device_id,
                QuarantinedCapture.device_capture_id == refusal.capture_id))
            if row is None:
                session.add(QuarantinedCapture(
                    device_id=device_id, device_capture_id=refusal.capture_id,
                    reason=refusal.reason[:2000], size=refusal.size, quarantined_at=now,
                    held_on_device=not refusal.holdable))
            log.warning("quarantined capture %s of device %s: %s", refusal.capture_id,
                        device_id, refusal.reason)

    def _acknowledge(self, channel: paramiko.Channel, address: DeviceAddress, device_id: int,
                     cursor: str | None) -> None:
        """Tell the device what it may delete (up to the cursor) and what to hold."""
        with self.ctx.db.read() as session:
            holds = list(session.scalars(select(QuarantinedCapture.device_capture_id).where(
                QuarantinedCapture.device_id == device_id,
                QuarantinedCapture.held_on_device.is_(False))))
        line = json.dumps({"ack": cursor, "hold": holds}) + "\n"
        try:
            channel.sendall(line.encode())
            channel.shutdown_write()
            while channel.recv(_READ_CHUNK):
                pass  # the archive's padding after its end marker
            status = channel.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise DeviceUnreachable(f"{address}: the connection dropped while acknowledging "
                                    f"({reason(exc)}); the captures are committed and the next pull "
                                    "acknowledges them") from exc
        if status != 0:
            message = b""
            while channel.recv_stderr_ready():
                message += channel.recv_stderr(65536)
            raise DeviceProtocolError(f"{address}: the device refused the acknowledgement: "
                                      f"{message.decode('utf-8', 'replace').strip()}")
        if holds:
            with self.ctx.db.write() as session:
                session.execute(update(QuarantinedCapture).where(
                    QuarantinedCapture.device_id == device_id,
                    QuarantinedCapture.device_capture_id.in_(holds)).values(held_on_device=True))


def enrolled_uids(ctx: FleetContext) -> list[str]:
    """Every enrolled device's uid, in order."""
    with ctx.db.read() as session:
        return list(session.scalars(select(Device.uid).where(
            Device.enrollment == EnrollmentState.ENROLLED).order_by(Device.uid)))


def pull_devices(ctx: FleetContext, actor: Actor, uids: Sequence[str] | None = None, *,
                 settings: PullSettings = PullSettings(), progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None) -> list[PullResult]:
    """Pull several devices at once (at most ``settings.concurrency``); one device's failure
    is reported in its result and does not stop the others."""
    authorize(ctx.db, ctx.audit, actor, Permission.PULL, "captures")
    targets = list(uids) if uids else enrolled_uids(ctx)
    cancel = cancel or CancelToken()
    lock = threading.Lock()
    done: dict[str, int] = {}

    def report(uid: str) -> Callable[[Progress], None]:
        def forward(step: Progress) -> None:
            with lock:
                done[uid] = int(step.done)
                progress(Progress("pull", sum(done.values()), 0.0, step.message))
        return forward

    def one(uid: str) -> PullResult:
        puller = DevicePuller(ctx, actor, settings, report(uid), cancel)
        try:
            return puller.pull(uid)
        except Cancelled:
            raise
        except EdgeLoopError as exc:  # unreachable, refused, not enrolled: this device only
            return PullResult(uid, error=str(exc))

    with ThreadPoolExecutor(max_workers=max(1, settings.concurrency),
                            thread_name_prefix="pull") as pool:
        return list(pool.map(one, targets))
