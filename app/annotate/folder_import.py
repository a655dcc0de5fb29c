"""Importing a folder of labelled images (any of :mod:`app.annotate.formats`) as captures
with imported labels.

The import reads a folder in a format, stores each image in the blob store and makes it a
capture (reason IMPORTED) of a device of its own (``device_uid``, hardware ``import``), named
by its sha256: the same image imported again is the same capture, whatever its file name.
Each label is recorded as the importing user's with source IMPORTED through
:func:`app.core.annotations.record_label`, the write path of
:func:`app.annotate.labeling.save_label` (audited, supersedes that user's earlier label,
marks the capture reviewed), in the import's one transaction; a label equal to the user's
current one (boxes within 1e-6 px) is not recorded again, so importing twice changes
nothing. A class the files name by an old name (a class renamed or merged since) is taken
as the class it is now. Classes the project lacks are added first through
:func:`app.annotate.schema.add_class` (audited; needs TRAIN; its naming rule applies), and
stay if the import then fails. Images that are missing, not decodable or not the size
the labels say are skipped and reported. Images with no label become unreviewed captures.
A capture's time is the ``captured_at`` attribute when the files carry one (EdgeLoop's own
COCO and Label Studio exports), else the file's modification time.
"""


from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.annotate.formats import (
    FolderLabels, Format, LabeledImage, Skipped, format_named, read_labels,
)
from app.annotate.formats.imagesize import MEDIA_TYPES, NotAnImage, size_of_file
from app.annotate.formats.labelset import TOLERANCE_PX
from app.annotate.schema import add_class
from app.core.annotations import BoxDraft, LabelDraft, record_label
from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.class_names import active_class_ids, prediction_class_ids
from app.core.dataset_import import (
    existing_capture_ids, insert_blob_rows, refuse_other_device, source_device,
)
from app.core.db import Database
from app.core.errors import InvalidInput
from app.core.models import (
    Annotation, AnnotationBox, AnnotationSource, Capture, CaptureReason, LabelClass,
    ReviewStatus, utcnow,
)
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize

Clock = Callable[[], datetime]

IMPORT_DEVICE = "import"
IMPORT_HARDWARE = "import"
STEP = 500  # labels between progress reports and cancel checks
_CHUNK = 128  # images read, checked and stored at a time


@dataclass(frozen=True)
class ImportReport:
    """What an import made of a folder (counts of images), and what it skipped (and why)."""

    format: Format
    folder: Path
    images: int
    captures_new: int
    captures_existing: int
    labels_recorded: int
    labels_unchanged: int
    unlabelled: int
    classes_created: tuple[str, ...]
    skipped: tuple[Skipped, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Stored:
    image: LabeledImage
    sha256: str
    size: int
    media_type: str
    captured_at: datetime


def import_folder(db: Database, blobs: BlobStore, audit: AuditTrail, actor: Actor,
                  fmt: str | Format, folder: Path, *, device_uid: str = IMPORT_DEVICE,
                  clock: Clock = utcnow, progress: ProgressFn = no_progress,
                  cancel: CancelToken | None = None) -> ImportReport:
    """Import the labelled images of ``folder`` (in ``fmt``) as captures of device
    ``device_uid``; see the module docstring. Needs PULL and ANNOTATE (and TRAIN when a
    class must be added)."""
    info = format_named(fmt)
    authorize(db, audit, actor, Permission.PULL, f"import images from {folder}")
    authorize(db, audit, actor, Permission.ANNOTATE, f"import labels from {folder}")
    if not isinstance(device_uid, str) or not 1 <= len(device_uid) <= 64:
        raise InvalidInput(f"device uid {device_uid!r} must be 1 to 64 characters")
    cancel = cancel or CancelToken()
    progress(Progress("import", 0, 0, f"reading the {info.title} labels"))
    found = read_labels(info.format, Path(folder))
    with db.read() as session:
        refuse_other_device(session, device_uid, IMPORT_HARDWARE)
        renamed = _renamed_classes(session, found.labels.classes)
        active = active_class_ids(session)
    stored, skipped = _store_images(blobs, found, progress, cancel)
    cancel.check()
    notes = list(found.notes) + [f"class {old!r} is now called {new!r}; its labels were "
                                 "imported as such" for old, new in renamed.items()]
    created = tuple(name for name in found.labels.classes
                    if name not in active and name not in renamed)
    for name in created:
        try:
            add_class(db, audit, actor, name, clock=clock)
        except InvalidInput as exc:
            raise InvalidInput(f"{folder}: the labels use class {name!r}, which this project "
                               f"lacks and cannot add: {exc}") from None
    now = clock()
    with db.write() as session:
        device_id = source_device(session, device_uid, hardware=IMPORT_HARDWARE,
                                  name="Imported images",
                                  advertised={"source": "app.annotate.transfer"}, now=now)
        insert_blob_rows(session, {s.sha256: (s.size, s.media_type) for s in stored}, now)
        have = existing_capture_ids(session, device_uid, [s.sha256 for s in stored])
        fresh = [s for s in stored if s.sha256 not in have]
        if fresh:
            session.execute(insert(Capture), [{
                "device_id": device_id, "device_capture_id": s.sha256,
                "blob_sha256": s.sha256, "captured_at": s.captured_at, "imported_at": now,
                "reason": CaptureReason.IMPORTED, "review_status": ReviewStatus.UNREVIEWED,
                # Where it came from, for whoever looks at the capture later.
                "device_meta": {"imported_from": info.format.value,
                                "file_name": s.image.file_name,
                                "attributes": s.image.attribute_map},
            } for s in fresh])
        capture_ids = _capture_ids(session, device_id, [s.sha256 for s in stored])
        current = _labels_by(session, actor.user_id, list(capture_ids.values()))
        recorded = unchanged = unlabelled = 0
        for n, s in enumerate(stored, 1):
            if n % STEP == 0:
                cancel.check()
                progress(Progress("import", n, len(stored), f"recording label {n}"))
            draft = LabelDraft(
                renamed.get(s.image.class_name, s.image.class_name),  # type: ignore[arg-type]
                tuple(BoxDraft(renamed.get(b.class_name, b.class_name), b.x, b.y, b.width,
                               b.height) for b in s.image.boxes))
            capture_id = capture_ids[s.sha256]
            if draft.class_name is None and not draft.boxes:
                unlabelled += 1
            elif _same_draft(current.get(capture_id), draft):
                unchanged += 1
            else:
                record_label(session, audit, actor, capture_id, draft,
                             source=AnnotationSource.IMPORTED, now=now,
                             image_size=(s.image.width, s.image.height))
                current[capture_id] = draft
                recorded += 1
        report = ImportReport(info.format, Path(folder),
                              len(found.labels.images) + len(found.skipped),
                              len(fresh), len(stored) - len(fresh), recorded, unchanged,
                              unlabelled, created, tuple(skipped), tuple(notes))
        audit.append(session, actor=actor.name, action="labels.import", object_type="device",
                     object_id=device_uid,
                     after={"format": info.format.value, "folder": str(folder),
                            "images": report.images, "captures_new": report.captures_new,
                            "captures_existing": report.captures_existing,
                            "labels_recorded": recorded, "labels_unchanged": unchanged,
                            "unlabelled": unlabelled, "classes_created": list(created),
                            "skipped": len(skipped)})
    progress(Progress("import", len(stored), len(stored),
                      f"{len(fresh)} new captures, {recorded} labels recorded"))
    return report


def _renamed_classes(session: Session, names: tuple[str, ...]) -> dict[str, str]:
    """Names of the files that are old names of an active class (a rename or a merge left
    them as aliases) -> the class's name now."""
    active = {class_id: name for name, class_id in active_class_ids(session).items()}
    return {name: active[class_id]
            for name, class_id in prediction_class_ids(session, names).items()
            if class_id in active and active[class_id] != name}


def _store_images(blobs: BlobStore, found: FolderLabels, progress: ProgressFn,
                  cancel: CancelToken) -> tuple[list[_Stored], list[Skipped]]:
    """Check and store every image (a chunk at a time); skip what cannot be used."""
    skipped = list(found.skipped)
    stored: list[_Stored] = []
    seen: dict[str, LabeledImage] = {}
    images = found.labels.images
    for start in range(0, len(images), _CHUNK):
        cancel.check()
        batch: list[tuple[LabeledImage, bytes, str, datetime]] = []
        for image in images[start:start + _CHUNK]:
            path = found.image_paths[image.file_name]
            problem, data, kind, mtime = _check_image(path, image)
            if problem:
                skipped.append(Skipped(image.file_name, problem))
            else:
                batch.append((image, data, kind, _capture_time(image, mtime)))
        hashes = blobs.put_many([data for _, data, _, _ in batch])
        for (image, data, kind, at), sha in zip(batch, hashes):
            if sha in seen:
                if _same_label(seen[sha], image):
                    continue
                skipped.append(Skipped(image.file_name, f"the same image as "
                                       f"{seen[sha].file_name} with other labels; those were kept"))
                continue
            seen[sha] = image
            stored.append(_Stored(image, sha, len(data), MEDIA_TYPES.get(kind, "image/unknown"),
                                  at))
        done = min(start + _CHUNK, len(images))
        progress(Progress("import", done, len(images), f"stored {done} of {len(images)} images"))
    return stored, skipped


def _check_image(path: Path, image: LabeledImage) -> tuple[str, bytes, str, float]:
    """(problem or "", bytes, kind, modification time) of the image file."""
    try:
        data = path.read_bytes()
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        return f"the image file cannot be read ({exc.strerror or exc}): {path}", b"", "", 0.0
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        return f"not a decodable image: {path}", b"", "", 0.0
    height, width = decoded.shape[:2]
    if (width, height) != (image.width, image.height):
        return (f"the image is {width}x{height} pixels but its labels are for "
                f"{image.width}x{image.height}: {path}"), b"", "", 0.0
    try:
        kind = size_of_file(path)[0]
    except (NotAnImage, OSError):
        kind = "unknown"
    return "", data, kind, mtime


def _capture_time(image: LabeledImage, mtime: float) -> datetime:
    text = image.attribute_map.get("captured_at")
    if text:
        try:
            at = datetime.fromisoformat(text)
            return at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.fromtimestamp(mtime, tz=timezone.utc)


def _same_draft(a: LabelDraft | None, b: LabelDraft) -> bool:
    """Whether two labels are the same, box coordinates within :data:`TOLERANCE_PX` (a
    format that converts coordinates rounds them)."""
    return (a is not None and a.class_name == b.class_name and len(a.boxes) == len(b.boxes)
            and all(p.class_name == q.class_name
                    and abs(p.x - q.x) <= TOLERANCE_PX and abs(p.y - q.y) <= TOLERANCE_PX
                    and abs(p.width - q.width) <= TOLERANCE_PX
                    and abs(p.height - q.height) <= TOLERANCE_PX
                    for p, q in zip(a.boxes, b.boxes)))


def _same_label(a: LabeledImage, b: LabeledImage) -> bool:
    return (a.class_name, a.boxes, a.width, a.height) == (b.class_name, b.boxes, b.width, b.height)


def _capture_ids(session: Session, device_id: int, shas: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(shas), 500):
        ids.update(session.execute(select(Capture.device_capture_id, Capture.id).where(
            Capture.device_id == device_id,
            Capture.device_capture_id.in_(shas[start:start + 500]))).all())
    return ids


def _labels_by(session: Session, author_id: int,
               capture_ids: list[int]) -> dict[int, LabelDraft]:
    """The author's current label of each capture (their newest non-superseded one)."""
    newest: dict[int, tuple[int, int | None]] = {}
    for start in range(0, len(capture_ids), 500):
        for annotation_id, capture_id, class_id in session.execute(
                select(Annotation.id, Annotation.capture_id, Annotation.class_id)
                .where(Annotation.author_id == author_id, Annotation.superseded.is_(False),
                       Annotation.capture_id.in_(capture_ids[start:start + 500]))
                .order_by(Annotation.created_at, Annotation.id)):
            newest[capture_id] = (annotation_id, class_id)
    if not newest:
        return {}
    names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    by_annotation: dict[int, list[BoxDraft]] = defaultdict(list)
    ids = [annotation_id for annotation_id, _ in newest.values()]
    for start in range(0, len(ids), 500):
        for annotation_id, class_id, x, y, w, h in session.execute(
                select(AnnotationBox.annotation_id, AnnotationBox.class_id, AnnotationBox.x,
                       AnnotationBox.y, AnnotationBox.width, AnnotationBox.height)
                .where(AnnotationBox.annotation_id.in_(ids[start:start + 500]))
                .order_by(AnnotationBox.id)):
            by_annotation[annotation_id].append(BoxDraft(names[class_id], x, y, w, h))
    return {capture_id: LabelDraft(names.get(class_id) if class_id is not None else None,
                                   tuple(by_annotation.get(annotation_id, ())))
            for capture_id, (annotation_id, class_id) in newest.items()}
