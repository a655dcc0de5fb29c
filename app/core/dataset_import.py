"""Importing generated, labelled captures from the synthetic factory scene.

Until people label captures in the annotation view, this is where tests and the demo get
labelled data: :func:`import_generated` renders scenes with :class:`SceneGenerator` (a pure
function of seed, size, scenario and index), stores each image as a PNG blob, and records it
as a reviewed capture of a "generator" device with an imported annotation (class and box).

Generated frames come in bursts: :data:`FRAMES_PER_BURST` frames :data:`FRAME_INTERVAL`
apart, bursts :data:`BURST_INTERVAL` apart. That is how a camera's kept frames look, and it
gives the dataset split real near-duplicate chains to keep together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import cv2
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.class_names import prediction_class_ids
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models.devices import GENERATOR_HARDWARE
from app.core.models import (
    Annotation, AnnotationBox, AnnotationSource, Blob, Capture, CaptureReason, Device,
    LabelClass, ReviewStatus, utcnow,
)
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize
from app.core.scene import CLASSES, SceneGenerator
from app.core.scene.scenarios import Scenario

Clock = Callable[[], datetime]

GENERATED_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
FRAMES_PER_BURST = 4
FRAME_INTERVAL = timedelta(seconds=2)
BURST_INTERVAL = timedelta(minutes=5)
MEDIA_TYPE = "image/png"
# Render, encode and store this many at a time: bounded memory, and a cancel point.
CHUNK = 128


@dataclass(frozen=True)
class _Rendered:
    index: int
    sha256: str
    size: int
    label: str
    boxes: tuple[tuple[str, float, float, float, float], ...]


def generated_capture_time(index: int) -> datetime:
    """When generated frame ``index`` is said to have been captured (deterministic)."""
    burst, frame = divmod(index, FRAMES_PER_BURST)
    return GENERATED_EPOCH + burst * BURST_INTERVAL + frame * FRAME_INTERVAL


def generated_capture_id(seed: int, size: int, scenario: Scenario, index: int) -> str:
    """The device capture id of a generated frame: everything that decides its pixels."""
    return f"gen-s{seed}-{size}px-{scenario}-{index:07d}"


def import_generated(
    db: Database,
    blobs: BlobStore,
    audit: AuditTrail,
    actor: Actor,
    count: int,
    *,
    seed: int = 0,
    size: int = 96,
    device_uid: str = "generator",
    start_index: int = 0,
    scenario: str | None = None,
    clock: Clock = utcnow,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> int:
    """Import generated frames ``start_index`` .. ``start_index + count - 1``; return how many
    were new.

    Each becomes a reviewed capture of device ``device_uid`` (created if missing) with an
    imported annotation by ``actor``; label classes the project lacks are added. Frames the
    device already has (same device capture id) are skipped, so running it twice imports
    nothing twice. Images go to the blob store first; the rows and one audit event
    ("captures.import_generated") commit in a single transaction at the end, so a cancel or
    a crash leaves no half import (only unreferenced blobs, which garbage collection takes).
    """
    authorize(db, audit, actor, Permission.PULL, f"import {count} generated captures")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidInput(f"count must be a whole number >= 0, not {count!r}")
    if isinstance(start_index, bool) or not isinstance(start_index, int) or start_index < 0:
        raise InvalidInput(f"start_index must be a whole number >= 0, not {start_index!r}")
    if not device_uid or len(device_uid) > 64:
        raise InvalidInput(f"device uid {device_uid!r} must be 1 to 64 characters")
    try:
        generator = SceneGenerator(seed=seed, size=size, scenario=scenario or "none")
    except ValueError as exc:
        raise InvalidInput(f"cannot generate scenes: {exc}") from exc
    cancel = cancel or CancelToken()
    ids = {generated_capture_id(seed, size, generator.scenario, i): i
           for i in range(start_index, start_index + count)}

    with db.read() as session:
        refuse_other_device(session, device_uid, GENERATOR_HARDWARE)
        have = existing_capture_ids(session, device_uid, list(ids))
    wanted = [i for name, i in ids.items() if name not in have]
    rendered = _render_and_store(generator, blobs, wanted, progress, cancel)
    cancel.check()

    now = clock()
    with db.write() as session:
        device_id = source_device(session, device_uid, hardware=GENERATOR_HARDWARE,
                                  name="Synthetic scene generator",
                                  advertised={"source": "app.core.scene"}, now=now)
        # Checked again under the write lock: another import may have committed meanwhile.
        have = existing_capture_ids(session, device_uid, list(ids))
        fresh = [r for r in rendered
                 if generated_capture_id(seed, size, generator.scenario, r.index) not in have]
        class_ids, created = _label_classes(session)
        insert_blob_rows(session, {r.sha256: (r.size, MEDIA_TYPE) for r in fresh}, now)
        _insert_captures(session, device_id, fresh, seed, size, generator.scenario, class_ids,
                         actor, now)
        audit.append(
            session, actor=actor.name, action="captures.import_generated",
            object_type="device", object_id=device_uid,
            after={"imported": len(fresh), "already_had": count - len(fresh), "seed": seed,
                   "size": size, "scenario": str(generator.scenario),
                   "start_index": start_index, "count": count,
                   "label_classes_created": created},
        )
    progress(Progress("import", count, count, f"{len(fresh)} generated captures imported"))
    return len(fresh)


def existing_capture_ids(session: Session, device_uid: str, names: Sequence[str]) -> set[str]:
    """Which of ``names`` (device capture ids) device ``device_uid`` already has."""
    found: set[str] = set()
    for start in range(0, len(names), 500):  # keep IN lists well inside SQLite's limits
        found.update(session.scalars(
            select(Capture.device_capture_id).join(Device, Device.id == Capture.device_id)
            .where(Device.uid == device_uid,
                   Capture.device_capture_id.in_(names[start:start + 500]))))
    return found


def _render_and_store(generator: SceneGenerator, blobs: BlobStore, indices: Sequence[int],
                      progress: ProgressFn, cancel: CancelToken) -> list[_Rendered]:
    """Render, PNG-encode and store the frames; keep only what the rows need."""
    rendered: list[_Rendered] = []
    for start in range(0, len(indices), CHUNK):
        cancel.check()
        chunk = [generator.sample(i) for i in indices[start:start + CHUNK]]
        encoded = []
        for sample in chunk:
            ok, data = cv2.imencode(".png", sample.image)
            if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
                raise RuntimeError(f"OpenCV could not encode generated frame {sample.index}")
            encoded.append(data.tobytes())
        hashes = blobs.put_many(encoded)
        for sample, data, sha in zip(chunk, encoded, hashes):
            rendered.append(_Rendered(
                index=sample.index, sha256=sha, size=len(data), label=sample.label,
                boxes=tuple((b.label, b.x, b.y, b.w, b.h) for b in sample.boxes)))
        progress(Progress("import", len(rendered), len(indices),
                          f"rendered {len(rendered)} of {len(indices)} frames"))
    return rendered


def refuse_other_device(session: Session, uid: str, hardware: str) -> Device | None:
    """Device ``uid`` if it exists and is of ``hardware`` (the generator's, an import's);
    a device of other hardware (a real camera) is refused, because frames from elsewhere
    mixed into its captures would pass for its own."""
    existing = session.scalar(select(Device).where(Device.uid == uid))
    if existing is not None and existing.hardware != hardware:
        raise InvalidInput(f"device {uid!r} is a real device or another source's (hardware "
                           f"{existing.hardware!r}, not {hardware!r}); these captures go to a "
                           "device of their own (choose another device uid)")
    return existing


def source_device(session: Session, uid: str, *, hardware: str, name: str,
                  advertised: dict[str, str], now: datetime) -> int:
    """The id of the device that holds the captures of a source other than a camera (the
    scene generator, an import), created if missing (see :func:`refuse_other_device`)."""
    existing = refuse_other_device(session, uid, hardware)
    if existing is not None:
        return existing.id
    device = Device(uid=uid, name=name, hardware=hardware, advertised=advertised,
                    first_seen=now)
    session.add(device)
    session.flush()
    return device.id


def _label_classes(session: Session) -> tuple[dict[str, int], list[str]]:
    """Ids of the generator's classes; those the project lacks are added after the others."""
    # A generator class that was renamed or merged lands on the class it became.
    found = prediction_class_ids(session, CLASSES)
    created = [name for name in CLASSES if name not in found]
    top = session.scalar(select(func.max(LabelClass.position)))
    position = 0 if top is None else top + 1
    for name in created:
        label = LabelClass(name=name, position=position)
        session.add(label)
        session.flush()
        found[name] = label.id
        position += 1
    return found, created


def insert_blob_rows(session: Session, blobs: dict[str, tuple[int, str]], now: datetime) -> None:
    """Blob rows for stored blobs (sha256 -> (size, media type)) the table lacks."""
    have: set[str] = set()
    shas = list(blobs)
    for start in range(0, len(shas), 500):
        have.update(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(shas[start:start + 500]))))
    rows = [{"sha256": sha, "size": size, "media_type": media_type, "created_at": now}
            for sha, (size, media_type) in blobs.items() if sha not in have]
    if rows:
        session.execute(insert(Blob), rows)


def _insert_captures(session: Session, device_id: int, fresh: Sequence[_Rendered], seed: int,
                     size: int, scenario: Scenario, class_ids: dict[str, int], actor: Actor,
                     now: datetime) -> None:
    """Captures, then their annotations, then the boxes: three bulk inserts."""
    if not fresh:
        return
    names = {generated_capture_id(seed, size, scenario, r.index): r for r in fresh}
    session.execute(insert(Capture), [{
        "device_id": device_id, "device_capture_id": name, "blob_sha256": r.sha256,
        "captured_at": generated_capture_time(r.index), "imported_at": now,
        "reason": CaptureReason.IMPORTED, "review_status": ReviewStatus.REVIEWED,
    } for name, r in names.items()])
    capture_ids: dict[str, int] = {}
    keys = list(names)
    for start in range(0, len(keys), 500):
        capture_ids.update(session.execute(
            select(Capture.device_capture_id, Capture.id).where(
                Capture.device_id == device_id,
                Capture.device_capture_id.in_(keys[start:start + 500]))).all())
    by_capture = {capture_ids[name]: r for name, r in names.items()}
    session.execute(insert(Annotation), [{
        "capture_id": capture_id, "class_id": class_ids[r.label], "author_id": actor.user_id,
        "source": AnnotationSource.IMPORTED, "created_at": now,
    } for capture_id, r in by_capture.items()])
    # The captures are new, so each has exactly the one annotation just inserted.
    annotation_ids: dict[int, int] = {}
    captures = list(by_capture)
    for start in range(0, len(captures), 500):
        annotation_ids.update(session.execute(
            select(Annotation.capture_id, Annotation.id).where(
                Annotation.capture_id.in_(captures[start:start + 500]))).all())
    boxes = [{"annotation_id": annotation_ids[capture_id], "class_id": class_ids[label],
              "x": x, "y": y, "width": w, "height": h}
             for capture_id, r in by_capture.items() for label, x, y, w, h in r.boxes]
    if boxes:
        session.execute(insert(AnnotationBox), boxes)
