"""COCO JSON (object detection): ``annotations/instances_default.json`` and ``images/``.

Layout as CVAT and Datumaro write it. Categories are numbered 1..N in schema order; boxes
are ``bbox: [x, y, width, height]`` in pixels, exactly as held (JSON floats round-trip).

Conventions for what COCO has no field for:

- the image class goes in the image object as ``"edgeloop": {"class": name}``; COCO tools
  (pycocotools, Detectron2, Ultralytics' converter) ignore keys they do not know, so a
  detector trained on the file sees only the boxes. Reading, an annotation with no ``bbox``
  (Datumaro's "labels" task) is taken as the image class too.
- image attributes go in the same object (``"edgeloop": {"attributes": {...}}``).

Carries: classes and order, file names, sizes, image class, boxes (exact), attributes.
Cannot carry: nothing of a LabelSet is lost. Read but ignored: segmentation, ``iscrowd``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.annotate.formats.common import (
    ImageSource, Tick, clipped_box, copy_image, field, invalid, listed, load_json, no_tick,
    safe_name, text, whole, write_file, number,
)
from app.annotate.formats.labelset import (
    FolderLabels, LabeledImage, LabelSet, check_class_name,
)
from app.core.errors import InvalidInput

TITLE = "COCO JSON"
ANNOTATIONS = "annotations/instances_default.json"
IMAGES = "images"
CARRIES_ATTRIBUTES = True
TOLERANCE_PX = 0.0


def to_document(labels: LabelSet) -> dict[str, Any]:
    """The COCO document of ``labels`` (a plain dict, ready for ``json.dumps``)."""
    category = {name: i for i, name in enumerate(labels.classes, 1)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, image in enumerate(labels.images, 1):
        entry: dict[str, Any] = {"id": image_id, "file_name": image.file_name,
                                 "width": image.width, "height": image.height}
        extra: dict[str, Any] = {}
        if image.class_name is not None:
            extra["class"] = image.class_name
        if image.attributes:
            extra["attributes"] = dict(image.attributes)
        if extra:
            entry["edgeloop"] = extra
        images.append(entry)
        for box in image.boxes:
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": category[box.class_name],
                "bbox": [box.x, box.y, box.width, box.height],
                "area": box.width * box.height, "iscrowd": 0, "segmentation": []})
    return {
        "info": {"description": "Exported by EdgeLoop", "version": "1.0"},
        "licenses": [],
        "categories": [{"id": i, "name": name, "supercategory": ""}
                       for name, i in category.items()],
        "images": images,
        "annotations": annotations,
    }


def write(labels: LabelSet, root: Path, *, images: ImageSource | None = None,
          lossy: bool = False, tick: Tick = no_tick) -> list[str]:
    """Write ``labels`` (and the images, if ``images`` says where they are) under ``root``;
    nothing is dropped, so the notes returned are none."""
    if images is not None:
        for i, image in enumerate(labels.images, 1):
            copy_image(images, image.file_name, root / IMAGES / image.file_name)
            tick(i)
    # dumps, not dump: dump runs the pure-Python encoder, several times slower.
    write_file(root / ANNOTATIONS, json.dumps(to_document(labels), ensure_ascii=False,
                                              separators=(",", ":")))
    tick(len(labels.images))
    return []


def find_file(folder: Path) -> Path:
    """The COCO JSON of a folder: ``annotations/instances_default.json``, ``annotations.json``,
    or the only ``.json`` in ``annotations/`` or the folder; or the file itself."""
    if folder.is_file():
        return folder
    if not folder.is_dir():
        raise invalid(folder, "no such folder")
    for name in (ANNOTATIONS, "annotations.json"):
        if (folder / name).is_file():
            return folder / name
    for where in (folder / "annotations", folder):
        found = sorted(p for p in where.glob("*.json") if p.is_file())
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise invalid(where, "several COCO JSON files here ("
                          + ", ".join(p.name for p in found[:5]) + "); give the one to read")
    raise invalid(folder, f"no COCO JSON here (looked for {ANNOTATIONS} and *.json)")


def read(folder: Path) -> FolderLabels:
    """Read a COCO JSON file (or a folder holding one); see the module docstring."""
    path = find_file(folder)
    root = folder if folder.is_dir() else (
        path.parent.parent if path.parent.name == "annotations" else path.parent)
    doc = load_json(path)
    if not isinstance(doc, dict):
        raise invalid(path, "a COCO file is a JSON object with categories, images and "
                            "annotations")
    categories = _categories(path, doc)
    class_ids = {name: cid for cid, name in categories.items()}
    images, classes_of = _images(path, doc, set(class_ids))
    boxes: dict[int, list] = {image_id: [] for image_id in images}
    for n, ann in enumerate(listed(doc.get("annotations", []), path, "annotations")):
        where = f"annotation {n}"
        image_id = whole(field(ann, "image_id", path, where), path, f"{where} image_id")
        cat = whole(field(ann, "category_id", path, where), path, f"{where} category_id")
        if image_id not in images:
            raise invalid(path, f"{where} is of image {image_id}, which is not in images")
        if cat not in categories:
            raise invalid(path, f"{where} has category {cat}, which is not in categories")
        name = categories[cat]
        bbox = ann.get("bbox")
        if bbox is None or bbox == []:
            # Datumaro's image-level label: an annotation without a box.
            if classes_of.get(image_id, name) != name:
                raise invalid(path, f"{where}: image {image_id} already has class "
                                    f"{classes_of[image_id]!r}; one class per image")
            classes_of[image_id] = name
            continue
        bbox = listed(bbox, path, f"{where} bbox")
        if len(bbox) != 4:
            raise invalid(path, f"{where} bbox has {len(bbox)} numbers; COCO boxes are "
                                "[x, y, width, height]")
        x, y, w, h = (number(v, path, f"{where} bbox") for v in bbox)
        info = images[image_id]
        boxes[image_id].append(clipped_box(name, x, y, w, h, info["width"], info["height"],
                                           path, f"{where} ({info['file_name']})"))
    labelled = []
    paths = {}
    for image_id, info in images.items():
        try:
            labelled.append(LabeledImage(
                file_name=info["file_name"], width=info["width"], height=info["height"],
                class_name=classes_of.get(image_id), boxes=tuple(boxes[image_id]),
                attributes=info["attributes"]))
        except InvalidInput as exc:
            raise invalid(path, str(exc)) from None
        paths[info["file_name"]] = _image_path(root, info["file_name"])
    try:
        labels = LabelSet(tuple(categories.values()), tuple(labelled))
    except InvalidInput as exc:
        raise invalid(path, str(exc)) from None
    return FolderLabels(labels, paths)


def _image_path(root: Path, file_name: str) -> Path:
    preferred = root / IMAGES / file_name
    if not preferred.exists() and (root / file_name).exists():
        return root / file_name
    return preferred


def _categories(path: Path, doc: dict) -> dict[int, str]:
    categories: dict[int, str] = {}
    for n, cat in enumerate(listed(field(doc, "categories", path, "the file"), path,
                                   "categories")):
        cid = whole(field(cat, "id", path, f"category {n}"), path, f"category {n} id")
        name = text(field(cat, "name", path, f"category {n}"), path, f"category {n} name")
        try:
            check_class_name(name)
        except InvalidInput as exc:
            raise invalid(path, f"category {cid}: {exc}") from None
        if cid in categories:
            raise invalid(path, f"two categories have id {cid}")
        if name in categories.values():
            raise invalid(path, f"two categories are called {name!r}")
        categories[cid] = name
    return categories


def _images(path: Path, doc: dict, known: set[str]) -> tuple[dict[int, dict], dict[int, str]]:
    images: dict[int, dict] = {}
    classes_of: dict[int, str] = {}
    for n, entry in enumerate(listed(field(doc, "images", path, "the file"), path, "images")):
        where = f"image {n}"
        image_id = whole(field(entry, "id", path, where), path, f"{where} id")
        if image_id in images:
            raise invalid(path, f"two images have id {image_id}")
        name = safe_name(field(entry, "file_name", path, where), path, f"{where} file_name")
        width = whole(field(entry, "width", path, where), path, f"{where} ({name}) width", 1)
        height = whole(field(entry, "height", path, where), path, f"{where} ({name}) height", 1)
        extra = entry.get("edgeloop", {})
        if not isinstance(extra, dict):
            raise invalid(path, f"{where} ({name}): 'edgeloop' is not an object")
        attributes = extra.get("attributes", {})
        if not isinstance(attributes, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
            raise invalid(path, f"{where} ({name}): attributes must map text to text")
        if "class" in extra:
            name_of_class = text(extra["class"], path, f"{where} ({name}) class")
            if name_of_class not in known:
                raise invalid(path, f"{where} ({name}) has class {name_of_class!r}, which "
                                    "is not among the categories")
            classes_of[image_id] = name_of_class
        images[image_id] = {"file_name": name, "width": width, "height": height,
                            "attributes": attributes}
    return images, classes_of
