"""YOLO txt (Ultralytics layout): ``images/``, ``labels/``, ``classes.txt``, ``data.yaml``.

Each image ``images/<path>.<ext>`` has ``labels/<path>.txt`` with one line per box,
``class_id x_center y_center width height``, the numbers fractions of the image size
(written with 17 significant digits, so converting back is within
:data:`~app.annotate.formats.labelset.TOLERANCE_PX`). An image without boxes has an empty
label file (Ultralytics: a background image). ``classes.txt`` (one name per line, line n is
class n) and ``data.yaml`` (``names:``) both hold the schema.

Conventions for what YOLO has no field for: the image class goes in a sidecar,
``image_classes.txt``, one ``class_id file_name`` line per image with a class; YOLO tools
do not look for it.

Carries: classes and order, file names (they must end in an image suffix and differ
without it), image class (sidecar), boxes (within tolerance). Sizes are those of the image
files, so the images must be there to read the labels back. Cannot carry: attributes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.annotate.formats.common import (
    ImageSource, Tick, clipped_box, copy_image, invalid, no_tick, number, read_text,
    refuse_same_stems, refuse_without_suffix, safe_name, stem, walk_files, whole, write_file,
)
from app.annotate.formats.imagesize import IMAGE_SUFFIXES, NotAnImage, size_of_file
from app.annotate.formats.labelset import (
    FolderLabels, LabeledImage, LabelSet, Skipped, check_class_name,
)
from app.core.errors import InvalidInput

TITLE = "YOLO txt"
IMAGES = "images"
LABELS = "labels"
CLASSES = "classes.txt"
DATA_YAML = "data.yaml"
IMAGE_CLASSES = "image_classes.txt"
CARRIES_ATTRIBUTES = False
TOLERANCE_PX = 1e-6


def write(labels: LabelSet, root: Path, *, images: ImageSource | None = None,
          lossy: bool = False, tick: Tick = no_tick) -> list[str]:
    """Write ``labels`` (and the images, if ``images`` says where they are) under ``root``;
    nothing is dropped, so the notes returned are none."""
    refuse_without_suffix(labels, TITLE)
    refuse_same_stems(labels, TITLE)
    ids = {name: i for i, name in enumerate(labels.classes)}
    if images is not None:
        (root / IMAGES).mkdir(parents=True, exist_ok=True)  # there even with no image
    image_classes = []
    for n, image in enumerate(labels.images, 1):
        lines = []
        for box in image.boxes:
            cx = (box.x + box.width / 2) / image.width
            cy = (box.y + box.height / 2) / image.height
            lines.append(f"{ids[box.class_name]} {cx!r} {cy!r} {box.width / image.width!r} "
                         f"{box.height / image.height!r}\n")
        write_file(root / LABELS / f"{stem(image.file_name)}.txt", "".join(lines))
        if image.class_name is not None:
            image_classes.append(f"{ids[image.class_name]} {image.file_name}\n")
        if images is not None:
            copy_image(images, image.file_name, root / IMAGES / image.file_name)
        tick(n)
    write_file(root / CLASSES, "".join(f"{name}\n" for name in labels.classes))
    if image_classes:
        write_file(root / IMAGE_CLASSES, "".join(image_classes))
    names = "".join(f"  {i}: {json.dumps(name, ensure_ascii=False)}\n"
                    for i, name in enumerate(labels.classes))
    write_file(root / DATA_YAML, (
        "# Written by EdgeLoop; classes.txt holds the same names, one per line.\n"
        f"path: .\ntrain: {IMAGES}\nval: {IMAGES}\nnc: {len(labels.classes)}\n"
        + ("names:\n" + names if names else "names: []\n")))
    return []


def read(folder: Path) -> FolderLabels:
    """Read a YOLO dataset folder; see the module docstring."""
    if not folder.is_dir():
        raise invalid(folder, "no such folder (a YOLO dataset is a folder with images/ and "
                              "labels/)")
    classes = _classes(folder)
    ids = dict(enumerate(classes))
    if not (folder / IMAGES).is_dir():
        raise invalid(folder, f"no {IMAGES}/ folder: YOLO boxes are fractions of the image "
                              "size, so the images are needed to read them")
    skipped: list[Skipped] = []
    notes: list[str] = []
    found: dict[str, Path] = {}
    by_stem: dict[str, str] = {}
    for rel, path in walk_files(folder / IMAGES):
        if Path(rel).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            name = safe_name(rel, folder / IMAGES)
        except InvalidInput as exc:
            skipped.append(Skipped(rel, str(exc)))
            continue
        if stem(name) in by_stem:
            skipped.append(Skipped(name, f"{by_stem[stem(name)]} has the same name without "
                                         "its suffix, and so the same label file"))
            continue
        by_stem[stem(name)] = name
        found[name] = path
    for rel, path in walk_files(folder / LABELS):
        if rel.endswith(".txt") and rel[:-4] not in by_stem:
            notes.append(f"{LABELS}/{rel} has no image in {IMAGES}/; ignored")
    image_classes = _image_classes(folder, ids, found)
    labelled = []
    for name, path in found.items():
        try:
            _, width, height = size_of_file(path)
        except (NotAnImage, OSError) as exc:
            skipped.append(Skipped(name, f"cannot read the image's size ({exc})"))
            continue
        label_file = folder / LABELS / f"{stem(name)}.txt"
        boxes = _boxes(label_file, ids, width, height) if label_file.is_file() else ()
        try:
            labelled.append(LabeledImage(name, width, height, image_classes.get(name), boxes))
        except InvalidInput as exc:
            raise invalid(label_file, str(exc)) from None
    return FolderLabels(LabelSet(tuple(classes), tuple(labelled)), found, tuple(skipped),
                        tuple(notes))


def _boxes(path: Path, ids: dict[int, str], width: int, height: int) -> tuple:
    boxes = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"line {n}"
        if len(parts) != 5:
            raise invalid(path, f"{where} has {len(parts)} fields; a YOLO box line is "
                                "'class x_center y_center width height' (segmentation "
                                "polygons are not read)")
        cid = whole(parts[0], path, f"{where} class id", 0)
        if cid not in ids:
            raise invalid(path, f"{where} has class id {cid}, but there are only {len(ids)} "
                                f"classes (0 to {len(ids) - 1})")
        cx, cy, w, h = (number(v, path, f"{where} box") for v in parts[1:])
        pw, ph = w * width, h * height
        boxes.append(clipped_box(ids[cid], cx * width - pw / 2, cy * height - ph / 2, pw, ph,
                                 width, height, path, where))
    return tuple(boxes)


def _classes(folder: Path) -> list[str]:
    if (folder / CLASSES).is_file():
        path = folder / CLASSES
        lines = [line.strip() for line in read_text(path).splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        names = lines
    elif (folder / DATA_YAML).is_file():
        path = folder / DATA_YAML
        names = _yaml_names(path, read_text(path))
    else:
        raise invalid(folder, f"no {CLASSES} or {DATA_YAML}: the class names are needed to "
                              "read YOLO class ids")
    for n, name in enumerate(names):
        try:
            check_class_name(name)
        except InvalidInput as exc:
            raise invalid(path, f"class {n}: {exc}") from None
    if len(set(names)) != len(names):
        raise invalid(path, "a class name appears twice")
    return names


def _image_classes(folder: Path, ids: dict[int, str], found: dict[str, Path]) -> dict[str, str]:
    path = folder / IMAGE_CLASSES
    if not path.is_file():
        return {}
    classes: dict[str, str] = {}
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        cid_text, _, name = line.partition(" ")
        cid = whole(cid_text, path, f"line {n} class id", 0)
        if cid not in ids:
            raise invalid(path, f"line {n} has class id {cid}, but there are only {len(ids)} "
                                "classes")
        name = safe_name(name, path, f"line {n} image")
        if name not in found:
            raise invalid(path, f"line {n} names {name!r}, which is not in {IMAGES}/")
        classes[name] = ids[cid]
    return classes


_MAP_ITEM = re.compile(r"^\s+(\d+)\s*:\s*(.+?)\s*$")
_LIST_ITEM = re.compile(r"^\s*-\s+(.+?)\s*$")


def _yaml_names(path: Path, text: str) -> list[str]:
    """The ``names`` of a data.yaml, in the three shapes Ultralytics and Roboflow write:
    ``names: [a, 'b']``, a block list (``- a``) and a block mapping (``0: a``). Not a YAML
    parser: the one key, read without a dependency."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("names:"):
            continue
        rest = line[len("names:"):].strip()
        if rest.startswith("["):
            return [_scalar(path, item) for item in _flow_items(path, rest)]
        if rest and not rest.startswith("#"):
            raise invalid(path, "names: is neither a list nor a mapping")
        names: dict[int, str] = {}
        listed: list[str] = []
        for follow in lines[i + 1:]:
            if not follow.strip() or follow.lstrip().startswith("#"):
                continue
            if not follow[0].isspace() and not follow.startswith("-"):
                break
            if m := _MAP_ITEM.match(follow):
                names[int(m.group(1))] = _scalar(path, m.group(2))
            elif m := _LIST_ITEM.match(follow):
                listed.append(_scalar(path, m.group(1)))
            else:
                raise invalid(path, f"cannot read the names line {follow.strip()[:40]!r}")
        if names:
            if sorted(names) != list(range(len(names))):
                raise invalid(path, "names: the class ids are not 0 to N-1")
            return [names[k] for k in range(len(names))]
        return listed
    raise invalid(path, "no names: key")


def _flow_items(path: Path, rest: str) -> list[str]:
    items, current, quote, i = [], "", "", 1
    while i < len(rest):
        ch = rest[i]
        if quote:
            current += ch
            if ch == "\\" and quote == '"' and i + 1 < len(rest):
                current += rest[i + 1]
                i += 1
            elif ch == quote:
                if quote == "'" and rest[i + 1:i + 2] == "'":
                    current += "'"
                    i += 1
                else:
                    quote = ""
        elif ch in "'\"":
            quote = ch
            current += ch
        elif ch == ",":
            items.append(current.strip())
            current = ""
        elif ch == "]":
            if current.strip():
                items.append(current.strip())
            return items
        else:
            current += ch
        i += 1
    raise invalid(path, "names: [ is not closed")


def _scalar(path: Path, item: str) -> str:
    item = item.strip()
    if item.startswith('"'):
        try:
            value = json.loads(item)
        except ValueError:
            raise invalid(path, f"cannot read the quoted name {item[:40]}") from None
        if not isinstance(value, str):
            raise invalid(path, f"cannot read the quoted name {item[:40]}")
        return value
    if item.startswith("'"):
        if len(item) < 2 or not item.endswith("'"):
            raise invalid(path, f"cannot read the quoted name {item[:40]}")
        return item[1:-1].replace("''", "'")
    return item.split(" #", 1)[0].strip()
