"""Labels between the project and files: export a project's labels in one of the label
formats (:mod:`app.annotate.formats`), and import a folder of labelled images as captures.

**Export** takes either the current labels or a frozen dataset version:

- current labels: each capture's newest current annotation (the effective label, the rule of
  :func:`app.annotate.labeling.label_of` with no author), leaving out captures whose
  annotators disagree (a conflict has no label to export until an engineer resolves it);
- a dataset version (``dataset_ref``, ``name@N``): its samples with the labels they were
  frozen with and their split (as the ``split`` attribute).

Each image is named ``<device>-<device capture id>.<ext>`` with anything but letters,
digits, ``.``, ``_`` and ``-`` replaced by ``_`` (the capture id is added where two names
would collide); its size is read from the blob's header. A box drawn past the image edge is
clipped to it. Attributes carry where each image came from: capture id, device, device
capture id, sha256 and capture time.

**Import** is :func:`app.annotate.folder_import.import_folder`, re-exported here so that
both directions are found in one place.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotate.folder_import import (
    IMPORT_DEVICE, IMPORT_HARDWARE, ImportReport, import_folder,
)
from app.annotate.formats import (
    Box, Format, LabeledImage, LabelSet, Skipped, check_out_dir, format_named, write_labels,
)
from app.annotate.formats.imagesize import EXTENSIONS, NotAnImage, size_of_file
from app.annotate.formats.labelset import MIN_BOX_SIDE
from app.core.blobs import BlobStore
from app.core.class_names import active_class_ids
from app.core.datasets import get_version
from app.core.db import Database
from app.core.label_agreement import conflicts
from app.core.models import (
    Annotation, AnnotationBox, Capture, DatasetSample, DatasetVersion, Device, LabelClass,
)
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress

__all__ = ["IMPORT_DEVICE", "IMPORT_HARDWARE", "ExportReport", "ImportReport", "export_labels",
           "import_folder"]

STEP = 500  # images between progress reports and cancel checks
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote, and what it had to leave out (and why)."""

    format: Format
    out_dir: Path
    source: str
    images: int
    boxes: int
    classes: tuple[str, ...]
    left_out: tuple[Skipped, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Row:
    capture_id: int
    device: str
    device_capture_id: str
    sha256: str
    captured_at: datetime
    class_name: str | None
    boxes: tuple[tuple[str, float, float, float, float], ...]
    split: str | None = None


# -- export ------------------------------------------------------------------------------------
def export_labels(db: Database, blobs: BlobStore, fmt: str | Format, out_dir: Path, *,
                  dataset_ref: str | None = None, copy_images: bool = True,
                  lossy: bool = False, progress: ProgressFn = no_progress,
                  cancel: CancelToken | None = None) -> ExportReport:
    """Export the current labels, or dataset version ``dataset_ref``, in ``fmt`` into
    ``out_dir`` (new or empty); see the module docstring. ``copy_images=False`` writes the
    label files alone; ``lossy`` lets a format drop what it cannot hold (ImageFolder)."""
    info = format_named(fmt)
    check_out_dir(out_dir)  # before the work, not after it
    cancel = cancel or CancelToken()
    progress(Progress("export", 0, 0, "reading the labels"))
    with db.read() as session:
        if dataset_ref is None:
            rows, classes, notes = _current_rows(session)
            source = "current labels"
        else:
            source = get_version(db, dataset_ref).ref
            rows, classes, notes = _version_rows(session, source)
    cancel.check()
    labels, shas, left_out, clipped = _label_set(blobs, rows, classes, cancel)
    if clipped:
        notes.append(f"{clipped} boxes reaching past the image edge were clipped to it (or "
                     f"dropped, where less than {MIN_BOX_SIDE} px of them was inside)")
    total = len(labels.images)

    def tick(done: int) -> None:
        if done % STEP == 0 or done == total:
            cancel.check()
            progress(Progress("export", done, total, f"{done} of {total} images"))

    notes += write_labels(info.format, labels, Path(out_dir),
                          images=(lambda name: blobs.path_of(shas[name])) if copy_images
                          else None, lossy=lossy,
                          tick=tick)
    written = [image for image in labels.images
               if info.carries_unclassified or image.class_name is not None]
    return ExportReport(info.format, Path(out_dir), source, len(written),
                        sum(len(image.boxes) for image in written) if info.carries_boxes else 0,
                        labels.classes, tuple(left_out), tuple(notes))


def _current_rows(session: Session) -> tuple[list[_Row], list[str], list[str]]:
    ranked = (select(Annotation.id.label("annotation_id"), Annotation.capture_id,
                     Annotation.class_id,
                     func.row_number().over(partition_by=Annotation.capture_id,
                                            order_by=(Annotation.created_at.desc(),
                                                      Annotation.id.desc())).label("rank"))
              .where(Annotation.superseded.is_(False)).subquery())
    newest = (select(ranked.c.annotation_id, ranked.c.capture_id, ranked.c.class_id)
              .where(ranked.c.rank == 1).subquery())
    names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    boxes: dict[int, list] = defaultdict(list)
    for annotation_id, class_id, x, y, w, h in session.execute(
            select(AnnotationBox.annotation_id, AnnotationBox.class_id, AnnotationBox.x,
                   AnnotationBox.y, AnnotationBox.width, AnnotationBox.height)
            .join(newest, newest.c.annotation_id == AnnotationBox.annotation_id)
            .order_by(AnnotationBox.annotation_id, AnnotationBox.id)):
        boxes[annotation_id].append((names[class_id], x, y, w, h))
    disputed = conflicts(session).keys()
    rows = [_Row(capture_id, uid, dcid, sha, at, names.get(class_id),
                 tuple(boxes.get(annotation_id, ())))
            for capture_id, uid, dcid, sha, at, annotation_id, class_id in session.execute(
                select(Capture.id, Device.uid, Capture.device_capture_id, Capture.blob_sha256,
                       Capture.captured_at, newest.c.annotation_id, newest.c.class_id)
                .join(newest, newest.c.capture_id == Capture.id)
                .join(Device, Device.id == Capture.device_id).order_by(Capture.id))
            if capture_id not in disputed]
    notes = [f"{len(disputed)} captures in conflict (annotators disagree) left out; resolve "
             "them first"] if disputed else []
    schema = [name for name, _ in session.execute(
        select(LabelClass.name, LabelClass.id).order_by(LabelClass.retired, LabelClass.position,
                                                        LabelClass.id))]
    active = set(active_class_ids(session))
    used = {row.class_name for row in rows} | {b[0] for row in rows for b in row.boxes}
    # The active schema, and retired classes only where a label still gives them.
    return rows, [name for name in schema if name in active or name in used], notes


def _version_rows(session: Session, ref: str) -> tuple[list[_Row], list[str], list[str]]:
    name, _, number = ref.partition("@")
    version = session.scalar(select(DatasetVersion).join(DatasetVersion.dataset)
                             .where(DatasetVersion.number == int(number))
                             .where(DatasetVersion.dataset.has(name=name)))
    names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    # As app.core.datasets names a version's classes: the names it was frozen with.
    names.update(zip(version.label_class_ids or [], version.label_schema))
    rows = [_Row(capture_id, uid, dcid, sha, at, names.get(class_id),
                 tuple((b["class"], b["x"], b["y"], b["w"], b["h"]) for b in boxes or []),
                 split.value)
            for capture_id, uid, dcid, sha, at, class_id, boxes, split in session.execute(
                select(Capture.id, Device.uid, Capture.device_capture_id,
                       DatasetSample.blob_sha256, Capture.captured_at, DatasetSample.class_id,
                       DatasetSample.boxes, DatasetSample.split)
                .join(Capture, Capture.id == DatasetSample.capture_id)
                .join(Device, Device.id == Capture.device_id)
                .where(DatasetSample.version_id == version.id).order_by(DatasetSample.id))]
    schema = list(version.label_schema)
    for row in rows:
        for used in [row.class_name, *(b[0] for b in row.boxes)]:
            if used is not None and used not in schema:
                schema.append(used)
    return rows, schema, []


def _label_set(blobs: BlobStore, rows: list[_Row], classes: list[str], cancel: CancelToken,
               ) -> tuple[LabelSet, dict[str, str], list[Skipped], int]:
    """The labels of ``rows``, the blob of each file name, what was left out, and how many
    boxes were clipped."""
    sizes: dict[str, tuple[str, int, int] | str] = {}
    taken: set[str] = set()
    images: list[LabeledImage] = []
    shas: dict[str, str] = {}
    left_out: list[Skipped] = []
    clipped = 0
    for n, row in enumerate(rows):
        if n % STEP == 0:
            cancel.check()
        if row.sha256 not in sizes:
            try:
                sizes[row.sha256] = size_of_file(blobs.path_of(row.sha256))
            except (OSError, NotAnImage) as exc:
                sizes[row.sha256] = f"its image (blob {row.sha256[:12]}) cannot be read: {exc}"
        size = sizes[row.sha256]
        where = f"capture {row.capture_id} ({row.device}/{row.device_capture_id})"
        if isinstance(size, str):
            left_out.append(Skipped(where, size))
            continue
        kind, width, height = size
        name = _file_name(row, EXTENSIONS.get(kind, ".img"), taken)
        boxes = []
        for class_name, x, y, w, h in row.boxes:
            box = _fit(class_name, x, y, w, h, width, height)
            clipped += box != (class_name, x, y, w, h)
            if box is not None:
                boxes.append(Box(*box))
        attributes = {"capture_id": str(row.capture_id), "device": row.device,
                      "device_capture_id": row.device_capture_id, "sha256": row.sha256,
                      "captured_at": row.captured_at.isoformat()}
        if row.split is not None:
            attributes["split"] = row.split
        images.append(LabeledImage(name, width, height, row.class_name, tuple(boxes),
                                   attributes))
        shas[name] = row.sha256
    return LabelSet(tuple(classes), tuple(images)), shas, left_out, clipped


def _file_name(row: _Row, ext: str, taken: set[str]) -> str:
    base = "-".join(_UNSAFE.sub("_", part).lstrip(".")[:80] or "_"
                    for part in (row.device, row.device_capture_id))
    name, n = f"{base}{ext}", 0
    while name.casefold() in taken:  # case too: the files may land on a case-blind disk
        n += 1
        name = f"{base}-{row.capture_id}{'' if n == 1 else f'-{n}'}{ext}"
    taken.add(name.casefold())
    return name


def _fit(class_name: str, x: float, y: float, w: float, h: float, width: int,
         height: int) -> tuple[str, float, float, float, float] | None:
    """The box clipped to the image; None if nothing of it is left (or too little to be a
    box: the labeling checks only that a side is above 0)."""
    if (x >= 0 and y >= 0 and x + w <= width and y + h <= height
            and w >= MIN_BOX_SIDE and h >= MIN_BOX_SIDE):
        return class_name, x, y, w, h
    left, top = max(0.0, x), max(0.0, y)
    right, bottom = min(float(width), x + w), min(float(height), y + h)
    if right - left < MIN_BOX_SIDE or bottom - top < MIN_BOX_SIDE:
        return None
    return class_name, left, top, right - left, bottom - top
