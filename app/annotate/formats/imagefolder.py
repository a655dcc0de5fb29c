"""ImageFolder (torchvision): ``<class>/<file name>``, the folder an image is in is its class.

``classes.txt`` at the top (one name per line) keeps the schema's order and the classes no
image has; torchvision ignores it (it takes the folders, sorted). Without it, a reader takes
the class folders in sorted order, as torchvision does.

Carries: classes and order (sidecar), file names, image class. Sizes are those of the image
files. Cannot carry: boxes, images without a class, attributes. Writing refuses boxes and
unclassified images unless asked to be lossy (``lossy=True``: boxes dropped, unclassified
images left out, each said in the returned notes); attributes are never written.
The images themselves are the dataset, so writing needs them.

Reading, the same file name in two class folders (``cat/001.jpg``, ``dog/001.jpg``) is
common; those images are named with their folder (``cat/001.jpg``) so that names stay unique.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from app.annotate.formats.common import (
    ImageSource, Tick, copy_image, invalid, no_tick, read_text, refuse_without_suffix,
    safe_name, walk_files, write_file,
)
from app.annotate.formats.imagesize import IMAGE_SUFFIXES, NotAnImage, size_of_file
from app.annotate.formats.labelset import (
    FolderLabels, LabeledImage, LabelSet, Skipped, check_class_name,
)
from app.core.errors import InvalidInput

TITLE = "ImageFolder"
CLASSES = "classes.txt"
CARRIES_ATTRIBUTES = False
TOLERANCE_PX = 0.0


def write(labels: LabelSet, root: Path, *, images: ImageSource | None = None,
          lossy: bool = False, tick: Tick = no_tick) -> list[str]:
    """Write the images into class folders under ``root``; return what was dropped."""
    if images is None:
        raise InvalidInput("ImageFolder keeps labels as the folders the images are in, so "
                           "the images must be exported too")
    boxes = sum(len(image.boxes) for image in labels.images)
    unclassified = [image.file_name for image in labels.images if image.class_name is None]
    if not lossy and (boxes or unclassified):
        what = []
        if boxes:
            what.append(f"{boxes} boxes")
        if unclassified:
            what.append(f"{len(unclassified)} images without a class (e.g. {unclassified[0]})")
        raise InvalidInput(f"ImageFolder cannot hold {' or '.join(what)}; choose a format "
                           "that can (COCO, YOLO, VOC, Label Studio, CVAT) or allow dropping "
                           "them (lossy)")
    refuse_without_suffix(labels, TITLE)
    notes = []
    if boxes:
        notes.append(f"{boxes} boxes dropped (ImageFolder has no boxes)")
    if unclassified:
        notes.append(f"{len(unclassified)} images without a class left out")
    for n, image in enumerate(labels.images, 1):
        if image.class_name is not None:
            copy_image(images, image.file_name, root / image.class_name / image.file_name)
        tick(n)
    write_file(root / CLASSES, "".join(f"{name}\n" for name in labels.classes))
    return notes


def read(folder: Path) -> FolderLabels:
    """Read an ImageFolder tree; see the module docstring."""
    if not folder.is_dir():
        raise invalid(folder, "no such folder")
    folders = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in folders:
        try:
            check_class_name(name)
        except InvalidInput as exc:
            raise invalid(folder / name, f"this folder cannot be a class: {exc}") from None
    if (folder / CLASSES).is_file():
        classes = _classes(folder / CLASSES)
        extra = [name for name in folders if name not in classes]
        if extra:
            raise invalid(folder / CLASSES, f"folder {extra[0]!r} is not a class listed "
                                            "here; add it or move the folder away")
    else:
        classes = folders
    skipped: list[Skipped] = []
    notes: list[str] = []
    entries: list[tuple[str, str, Path]] = []  # class, name inside its folder, path
    for name in folders:
        for rel, path in walk_files(folder / name):
            if PurePosixPath(rel).suffix.lower() not in IMAGE_SUFFIXES:
                notes.append(f"{name}/{rel} is not an image (by its suffix); ignored")
                continue
            entries.append((name, rel, path))
    for rel, _ in walk_files(folder):
        if "/" not in rel and rel != CLASSES:
            notes.append(f"{rel} is not in a class folder; ignored")
    counts: dict[str, int] = {}
    for _, rel, _ in entries:
        counts[rel] = counts.get(rel, 0) + 1
    labelled: list[LabeledImage] = []
    paths: dict[str, Path] = {}
    for class_name, rel, path in entries:
        shown = rel if counts[rel] == 1 else f"{class_name}/{rel}"
        try:
            file_name = safe_name(shown, folder / class_name)
        except InvalidInput as exc:
            skipped.append(Skipped(shown, str(exc)))
            continue
        try:
            _, width, height = size_of_file(path)
        except (NotAnImage, OSError) as exc:
            skipped.append(Skipped(file_name, f"cannot read the image's size ({exc})"))
            continue
        labelled.append(LabeledImage(file_name, width, height, class_name))
        paths[file_name] = path
    if any(n > 1 for n in counts.values()):
        notes.append("some file names occur in several class folders; those images are "
                     "named with their folder")
    return FolderLabels(LabelSet(tuple(classes), tuple(labelled)), paths, tuple(skipped),
                        tuple(notes))


def _classes(path: Path) -> list[str]:
    lines = [line.strip() for line in read_text(path).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for n, name in enumerate(lines, 1):
        try:
            check_class_name(name)
        except InvalidInput as exc:
            raise invalid(path, f"line {n}: {exc}") from None
    if len(set(lines)) != len(lines):
        raise invalid(path, "a class name appears twice")
    return lines
