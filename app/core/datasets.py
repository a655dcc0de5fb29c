"""Dataset versions: freeze the current labels into an immutable, split version; list,
compare, verify and load them.

A version is named ``name@N`` (``inspection@3``); ``name`` alone means its newest version.
Freezing takes the current approved label of every reviewed capture (the newest
non-superseded annotation with a class), leaves out captures whose current labels by
different people disagree (a conflict, :mod:`app.core.label_agreement`: an engineer resolves
it first; the audit event and the log say how many were left out), splits them with :mod:`app.core.dataset_split`
(stratified, near-duplicates together, deterministic in content and seed), and writes the
version, its samples (each a copy of the label and boxes it had) and an audit event in one
transaction. The ORM guards (:mod:`app.core.models.guards`) then refuse any change to it;
the content hash lets :func:`verify_version` catch what got past them.

Freezing when nothing changed since the newest version (the same content hash) is refused
with a message, unless ``allow_unchanged`` asks for the duplicate on purpose: an identical
version adds nothing but a number to keep apart from the real ones.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, aliased

from app.core.audit import AuditTrail
from app.core.blobs import BlobStore
from app.core.dataset_split import (
    DEFAULT_FRACTIONS, DEFAULT_NEAR_WINDOW_S, SplitItem, assign_splits, check_fractions,
    check_window, content_hash,
)
from app.core.db import Database
from app.core.errors import BlobCorrupt, BlobError, InvalidInput
from app.core.label_agreement import conflicts
from app.core.models import (
    Annotation, AnnotationBox, Capture, Dataset, DatasetSample, DatasetVersion, Device,
    LabelClass, ReviewStatus, Split, User, utcnow,
)
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)

DEFAULT_DATASET = "inspection"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_IN_CHUNK = 500  # ids per IN (...) list, well inside SQLite's parameter limit
_DECODE_CHUNK = 256
HOW_TO_LABEL = ("Review and label captures in the annotation view (a capture counts once it is "
                "reviewed and has a class), or import generated labelled data "
                "(app.core.dataset_import.import_generated).")


@dataclass(frozen=True)
class VersionSummary:
    """What a dataset version holds: who froze it when, its lineage, hash and counts.

    ``counts`` maps split value -> class name -> samples; :attr:`by_split` and
    :attr:`by_class` are its two marginals.
    """

    id: int
    dataset: str
    number: int
    created_at: datetime
    created_by: str | None
    frozen_at: datetime | None
    content_hash: str | None
    split_seed: int
    label_schema: tuple[str, ...]
    parent_number: int | None
    notes: str
    counts: dict[str, dict[str, int]]

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.number}"

    @property
    def by_split(self) -> dict[str, int]:
        return {split: sum(classes.values()) for split, classes in self.counts.items()}

    @property
    def by_class(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for classes in self.counts.values():
            for name, n in classes.items():
                totals[name] += n
        return dict(totals)

    @property
    def total(self) -> int:
        return sum(self.by_split.values())


@dataclass(frozen=True)
class Relabel:
    """A capture in both versions whose class differs."""

    capture_id: int
    old: str
    new: str


@dataclass(frozen=True)
class Move:
    """A capture in both versions whose split differs."""

    capture_id: int
    old: Split
    new: Split


@dataclass(frozen=True)
class VersionDiff:
    """What changed from version ``a`` to version ``b`` (capture ids, sorted)."""

    a: str
    b: str
    added: tuple[int, ...]
    removed: tuple[int, ...]
    relabelled: tuple[Relabel, ...]
    moved: tuple[Move, ...]
    counts_before: dict[str, int]
    counts_after: dict[str, int]
    schema_before: tuple[str, ...]
    schema_after: tuple[str, ...]

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.relabelled or self.moved
                    or self.schema_before != self.schema_after)


@dataclass(frozen=True, eq=False)
class SplitData:
    """One split of a version, ready for training or evaluation.

    ``images`` is uint8 (N, size, size, 3) in BGR order; ``labels`` int64 indices into
    ``label_names`` (the version's label schema); ``capture_ids`` says which capture each
    row is. Rows are in the version's sample order, which does not depend on database ids.
    """

    version: str
    split: Split
    images: np.ndarray
    labels: np.ndarray
    capture_ids: np.ndarray
    label_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class _Labelled:
    capture_id: int
    annotation_id: int
    class_id: int
    device: str
    device_capture_id: str
    captured_at: datetime
    blob_sha256: str


def freeze_version(
    db: Database,
    audit: AuditTrail,
    actor: Actor,
    dataset: str = DEFAULT_DATASET,
    *,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    near_window_s: float = DEFAULT_NEAR_WINDOW_S,
    notes: str = "",
    allow_unchanged: bool = False,
    clock: Clock = utcnow,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> VersionSummary:
    """Freeze the current approved labels into version N+1 of ``dataset`` (see the module
    docstring); return its summary.

    The label schema is the project's non-retired classes in position order; a capture whose
    current label is a retired class is left out, and so is a capture in conflict (people's
    current labels disagree); the audit event counts both. Raises
    :class:`InvalidInput` when nothing is labelled, or when nothing changed since the newest
    version and ``allow_unchanged`` is false.
    """
    authorize(db, audit, actor, Permission.TRAIN, f"freeze a version of dataset {dataset!r}")
    _check_name(dataset)
    shares = check_fractions(fractions)
    near_window_s = check_window(near_window_s)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise InvalidInput(f"the split seed must be a whole number from 0 to 2^31-1, not {seed!r}")
    cancel = cancel or CancelToken()
    # One write transaction from the first read to the last row: the labels selected, the
    # version number taken and the samples written all belong to the same moment, and a
    # second freeze waits for this one instead of numbering its version the same.
    with db.write() as session:
        progress(Progress("freeze", 0, 3, "reading the current labels"))
        classes = {c.id: c for c in session.scalars(select(LabelClass))}
        schema_classes = [c for c in sorted(classes.values(), key=lambda c: (c.position, c.id))
                          if not c.retired]
        schema = [c.name for c in schema_classes]
        labelled, conflicted = _current_labels(session)
        if conflicted:
            log.warning("freezing %s leaves out %d capture(s) whose labels by different people "
                        "disagree; resolve them (`edgeloop labels conflicts`)", dataset,
                        conflicted)
        kept = [row for row in labelled if not classes[row.class_id].retired]
        if not kept:
            raise InvalidInput(f"there are no labelled captures to freeze into {dataset!r}. "
                               + HOW_TO_LABEL)
        cancel.check()

        progress(Progress("freeze", 1, 3, f"splitting {len(kept)} captures"))
        splits = assign_splits(
            [SplitItem(row.capture_id, row.device, row.device_capture_id, row.captured_at,
                       classes[row.class_id].name) for row in kept],
            seed=seed, fractions=shares, near_window_s=near_window_s)
        boxes = _boxes_of(session, [row.annotation_id for row in kept], classes)
        kept.sort(key=lambda row: (row.device, row.device_capture_id))
        digest = content_hash(schema, ((row.blob_sha256, classes[row.class_id].name,
                                        splits[row.capture_id].value,
                                        boxes.get(row.annotation_id, []))
                                       for row in kept))
        cancel.check()

        progress(Progress("freeze", 2, 3, "writing the version"))
        record = session.scalar(select(Dataset).where(Dataset.name == dataset).with_for_update())
        now = clock()
        if record is None:
            record = Dataset(name=dataset, created_at=now)
            session.add(record)
            session.flush()
        parent = session.scalar(select(DatasetVersion).where(DatasetVersion.dataset_id == record.id)
                                .order_by(DatasetVersion.number.desc()).limit(1))
        if parent is not None and parent.content_hash == digest and not allow_unchanged:
            raise InvalidInput(
                f"nothing changed since {dataset}@{parent.number} (same captures, labels, split "
                f"and label schema; content hash {digest[:12]}), so no version was made. Label or "
                "import more captures or use another seed; to freeze an identical version "
                "anyway, allow unchanged versions.")
        # Frozen from birth: the version and its samples are written in this transaction and
        # never exist unfrozen, so there is no window in which they could be edited.
        version = DatasetVersion(
            dataset_id=record.id, number=(parent.number + 1) if parent else 1,
            parent_id=parent.id if parent else None, created_by_id=actor.user_id,
            created_at=now, frozen_at=now, content_hash=digest, split_seed=seed,
            label_schema=schema, label_class_ids=[c.id for c in schema_classes], notes=notes)
        session.add(version)
        session.flush()
        # One bulk INSERT, not one ORM object per sample: thousands of rows in a statement
        # (the flush guards, which look at ORM objects, have nothing to refuse here anyway).
        session.execute(insert(DatasetSample), [{
            "version_id": version.id, "capture_id": row.capture_id,
            "blob_sha256": row.blob_sha256, "split": splits[row.capture_id],
            "class_id": row.class_id, "boxes": boxes.get(row.annotation_id, []),
        } for row in kept])
        summary = _summaries(session, [version])[0]
        audit.append(session, actor=actor.name, action="dataset.freeze",
                     object_type="dataset_version", object_id=summary.ref,
                     after={"content_hash": digest, "samples": summary.total,
                            "by_split": summary.by_split, "by_class": summary.by_class,
                            "seed": seed, "fractions": list(shares),
                            "near_window_s": near_window_s,
                            "parent": f"{dataset}@{parent.number}" if parent else None,
                            "left_out_retired_class": len(labelled) - len(kept),
                            "left_out_conflicted": conflicted})
        cancel.check()
    progress(Progress("freeze", 3, 3, f"froze {summary.ref}: {summary.total} samples"))
    return summary


def list_versions(db: Database, dataset: str | None = None) -> list[VersionSummary]:
    """Every version (of ``dataset``, or of all datasets), by dataset name then number."""
    with db.read() as session:
        query = (select(DatasetVersion).join(Dataset, Dataset.id == DatasetVersion.dataset_id)
                 .order_by(Dataset.name, DatasetVersion.number))
        if dataset is not None:
            _dataset_named(session, dataset)
            query = query.where(Dataset.name == dataset)
        return _summaries(session, list(session.scalars(query)))


def get_version(db: Database, ref: str | int) -> VersionSummary:
    """The version ``ref`` names: ``"name@N"``, ``"name"`` (its newest) or a version id."""
    with db.read() as session:
        return _summaries(session, [_resolve(session, ref)])[0]


def diff_versions(db: Database, ref_a: str | int, ref_b: str | int) -> VersionDiff:
    """What changed from version ``ref_a`` to ``ref_b``: captures added and removed, classes
    changed, splits changed, and the class counts before and after."""
    with db.read() as session:
        a, b = _resolve(session, ref_a), _resolve(session, ref_b)
        current = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
        names_a, names_b = _version_names(a, current), _version_names(b, current)
        before, after = _sample_map(session, a.id), _sample_map(session, b.id)
        summary_a, summary_b = _summaries(session, [a, b])
    common = sorted(before.keys() & after.keys())
    return VersionDiff(
        a=summary_a.ref, b=summary_b.ref,
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        relabelled=tuple(Relabel(c, names_a.get(before[c][0], "?"),
                                 names_b.get(after[c][0], "?"))
                         for c in common if before[c][0] != after[c][0]),
        moved=tuple(Move(c, before[c][1], after[c][1])
                    for c in common if before[c][1] != after[c][1]),
        counts_before=summary_a.by_class, counts_after=summary_b.by_class,
        schema_before=summary_a.label_schema, schema_after=summary_b.label_schema)


def verify_version(db: Database, ref: str | int) -> bool:
    """Whether the version's samples still hash to its content hash.

    The ORM guards stop changes made through sessions; this catches the rest (raw SQL, a
    restored backup). Class names are the version's own (``label_class_ids``), so renaming a
    class later does not change what an old version hashes to.
    """
    with db.read() as session:
        version = _resolve(session, ref)
        names = _version_names(version, dict(session.execute(
            select(LabelClass.id, LabelClass.name)).all()))
        rows = session.execute(select(DatasetSample.blob_sha256, DatasetSample.class_id,
                                      DatasetSample.split, DatasetSample.boxes)
                               .where(DatasetSample.version_id == version.id)).all()
        expected, schema = version.content_hash, version.label_schema
    actual = content_hash(schema, ((sha, names.get(class_id, "?"), split.value, boxes or [])
                                   for sha, class_id, split, boxes in rows))
    return actual == expected


def load_split(
    db: Database,
    blobs: BlobStore,
    ref_or_id: str | int,
    split: Split | str,
    size: int,
    *,
    workers: int | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> SplitData:
    """Decode one split of a version into arrays (see :class:`SplitData`).

    Images are decoded with OpenCV and resized to ``size`` x ``size`` with INTER_AREA, on
    ``workers`` threads (OpenCV releases the GIL while it decodes). A missing or undecodable
    blob raises a :class:`BlobError` that names the capture.
    """
    try:
        wanted = Split(split)
    except ValueError:
        raise InvalidInput(f"unknown split {split!r}; use train, val or test") from None
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 2048:
        raise InvalidInput(f"image size must be a whole number of pixels from 8 to 2048, not {size!r}")
    cancel = cancel or CancelToken()
    with db.read() as session:
        version = _resolve(session, ref_or_id)
        ref, schema = f"{version.dataset.name}@{version.number}", tuple(version.label_schema)
        names = _version_names(version, dict(session.execute(
            select(LabelClass.id, LabelClass.name)).all()))
        rows = session.execute(
            select(DatasetSample.capture_id, DatasetSample.blob_sha256, DatasetSample.class_id,
                   Device.uid, Capture.device_capture_id)
            .join(Capture, Capture.id == DatasetSample.capture_id)
            .join(Device, Device.id == Capture.device_id)
            .where(DatasetSample.version_id == version.id, DatasetSample.split == wanted)
            .order_by(DatasetSample.id)).all()
    index = {name: i for i, name in enumerate(schema)}
    labels = np.empty(len(rows), dtype=np.int64)
    for i, (capture_id, _, class_id, uid, name) in enumerate(rows):
        class_name = names.get(class_id)
        if class_name not in index:
            raise InvalidInput(f"{ref}: capture {capture_id} ({uid}/{name}) has class "
                               f"{class_name!r}, which is not in the version's label schema "
                               f"{list(schema)}")
        labels[i] = index[class_name]
    images = np.empty((len(rows), size, size, 3), dtype=np.uint8)

    def decode(i: int) -> None:
        capture_id, sha, _, uid, name = rows[i]
        images[i] = decode_blob_image(blobs, sha, size, f"capture {capture_id} ({uid}/{name}) of {ref}")

    threads = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="load-split") as pool:
        for start in range(0, len(rows), _DECODE_CHUNK):
            cancel.check()
            list(pool.map(decode, range(start, min(start + _DECODE_CHUNK, len(rows)))))
            done = min(start + _DECODE_CHUNK, len(rows))
            progress(Progress("load", done, len(rows), f"{ref} {wanted.value}: {done} images"))
    return SplitData(version=ref, split=wanted, images=images, labels=labels,
                     capture_ids=np.array([r[0] for r in rows], dtype=np.int64),
                     label_names=schema)


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"name@N"`` -> (name, N); ``"name"`` -> (name, None) for the newest."""
    name, at, number = ref.strip().partition("@")
    if not at:
        return _check_name(name), None
    if not number.isdigit() or int(number) < 1:
        raise InvalidInput(f"{ref!r} is not a dataset version: use name@N with N >= 1, "
                           "e.g. inspection@3, or just the name for its newest version")
    return _check_name(name), int(number)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"dataset name {name!r} is not allowed: use 1-128 letters, digits, "
                           "'_', '.' or '-'")
    return name


def _dataset_named(session: Session, name: str) -> Dataset:
    record = session.scalar(select(Dataset).where(Dataset.name == _check_name(name)))
    if record is None:
        known = list(session.scalars(select(Dataset.name).order_by(Dataset.name)))
        raise InvalidInput(f"no dataset {name!r}; "
                           + (f"there are: {', '.join(known)}" if known else
                              "none has been frozen yet (freeze a version first)"))
    return record


def _resolve(session: Session, ref: str | int) -> DatasetVersion:
    if isinstance(ref, int) and not isinstance(ref, bool):
        version = session.get(DatasetVersion, ref)
        if version is None:
            raise InvalidInput(f"no dataset version with id {ref}")
        return version
    if not isinstance(ref, str):
        raise InvalidInput(f"{ref!r} is not a dataset version reference (name@N)")
    name, number = parse_ref(ref)
    record = _dataset_named(session, name)
    query = select(DatasetVersion).where(DatasetVersion.dataset_id == record.id)
    if number is None:
        version = session.scalar(query.order_by(DatasetVersion.number.desc()).limit(1))
    else:
        version = session.scalar(query.where(DatasetVersion.number == number))
    if version is None:
        numbers = list(session.scalars(select(DatasetVersion.number)
                                       .where(DatasetVersion.dataset_id == record.id)
                                       .order_by(DatasetVersion.number)))
        have = f"it has versions {numbers[0]} to {numbers[-1]}" if numbers else "it has no versions"
        raise InvalidInput(f"no version {ref!r}: {have}")
    return version


def _current_labels(session: Session) -> tuple[list[_Labelled], int]:
    """Each reviewed capture's newest non-superseded annotation that gives a class, leaving
    out captures in conflict; and how many were left out for that."""
    ranked = (
        select(Annotation.id.label("annotation_id"), Annotation.capture_id,
               Annotation.class_id,
               func.row_number().over(partition_by=Annotation.capture_id,
                                      order_by=(Annotation.created_at.desc(),
                                                Annotation.id.desc())).label("rank"))
        .join(Capture, Capture.id == Annotation.capture_id)
        .where(Annotation.superseded.is_(False), Annotation.class_id.is_not(None),
               Capture.review_status == ReviewStatus.REVIEWED)
        .subquery())
    rows = session.execute(
        select(Capture.id, ranked.c.annotation_id, ranked.c.class_id, Device.uid,
               Capture.device_capture_id, Capture.captured_at, Capture.blob_sha256)
        .join(ranked, ranked.c.capture_id == Capture.id)
        .join(Device, Device.id == Capture.device_id)
        .where(ranked.c.rank == 1))
    labelled = [_Labelled(*row) for row in rows]
    # Only captures two people labelled can be in conflict: the query inside looks at those
    # alone, so this costs nothing while everyone labels different captures.
    conflicted = conflicts(session).keys()
    if not conflicted:
        return labelled, 0
    kept = [row for row in labelled if row.capture_id not in conflicted]
    return kept, len(labelled) - len(kept)


def _boxes_of(session: Session, annotation_ids: list[int],
              classes: dict[int, LabelClass]) -> dict[int, list[dict]]:
    boxes: dict[int, list[dict]] = defaultdict(list)
    for start in range(0, len(annotation_ids), _IN_CHUNK):
        for box in session.scalars(select(AnnotationBox).where(
                AnnotationBox.annotation_id.in_(annotation_ids[start:start + _IN_CHUNK]))
                .order_by(AnnotationBox.id)):
            boxes[box.annotation_id].append({
                "class": classes[box.class_id].name, "x": box.x, "y": box.y,
                "w": box.width, "h": box.height})
    return boxes


def _version_names(version: DatasetVersion, current: dict[int, str]) -> dict[int, str]:
    """Class id -> name as ``version`` was frozen with them (a later rename changes nothing);
    ids it does not record fall back to today's names."""
    recorded = version.label_class_ids or []
    return {**current, **dict(zip(recorded, version.label_schema))}


def _sample_map(session: Session, version_id: int) -> dict[int, tuple[int | None, Split]]:
    return {capture_id: (class_id, split) for capture_id, class_id, split in session.execute(
        select(DatasetSample.capture_id, DatasetSample.class_id, DatasetSample.split)
        .where(DatasetSample.version_id == version_id))}


def _summaries(session: Session, versions: list[DatasetVersion]) -> list[VersionSummary]:
    if not versions:
        return []
    ids = [v.id for v in versions]
    current = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    names = {v.id: _version_names(v, current) for v in versions}
    counts: dict[int, dict[str, dict[str, int]]] = {
        v.id: {s.value: {name: 0 for name in v.label_schema} for s in Split} for v in versions}
    for start in range(0, len(ids), _IN_CHUNK):
        for version_id, split, class_id, n in session.execute(
                select(DatasetSample.version_id, DatasetSample.split, DatasetSample.class_id,
                       func.count())
                .where(DatasetSample.version_id.in_(ids[start:start + _IN_CHUNK]))
                .group_by(DatasetSample.version_id, DatasetSample.split, DatasetSample.class_id)):
            per_class = counts[version_id][split.value]
            name = names[version_id].get(class_id, "?")
            per_class[name] = per_class.get(name, 0) + n
    parent = aliased(DatasetVersion)
    extra = {row[0]: row[1:] for row in session.execute(
        select(DatasetVersion.id, Dataset.name, User.name, parent.number)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .outerjoin(User, User.id == DatasetVersion.created_by_id)
        .outerjoin(parent, parent.id == DatasetVersion.parent_id)
        .where(DatasetVersion.id.in_(ids)))}
    return [VersionSummary(
        id=v.id, dataset=extra[v.id][0], number=v.number, created_at=v.created_at,
        created_by=extra[v.id][1], frozen_at=v.frozen_at, content_hash=v.content_hash,
        split_seed=v.split_seed, label_schema=tuple(v.label_schema),
        parent_number=extra[v.id][2], notes=v.notes, counts=counts[v.id]) for v in versions]


def decode_blob_image(blobs: BlobStore, sha256: str, size: int, what: str) -> np.ndarray:
    try:
        data = blobs.read_bytes(sha256)
    except BlobError as exc:
        raise type(exc)(f"{what}: {exc}") from exc
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BlobCorrupt(f"{what}: blob {sha256} is not a decodable image; "
                          "`edgeloop blobs verify` checks the store")
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return image
