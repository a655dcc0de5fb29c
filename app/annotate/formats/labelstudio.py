"""Label Studio JSON (the "JSON" export): ``tasks.json``, ``label_config.xml``, ``images/``.

``tasks.json`` is a list of tasks as Label Studio exports them. Each has
``data.image`` (``/data/local-files/?d=images/<name>``: Label Studio serves it when local
file serving points at the export folder) and one annotation whose ``result`` holds a
``rectanglelabels`` region per box (``x``, ``y``, ``width``, ``height`` in percent of the
image, which is in ``original_width`` / ``original_height``) and a ``choices`` result for
the image class. ``label_config.xml`` is the labeling config to create the Label Studio
project with; it lists the classes in order (``RectangleLabels`` and ``Choices`` over the
same names).

Conventions: ``data.edgeloop`` holds the file name, the size (a task without boxes has no
``original_width`` anywhere else) and the attributes; Label Studio keeps task data as given
and shows only what the config asks for.

Carries: classes and order (from the config), file names, sizes, image class, boxes
(within tolerance: percent), attributes. Reading others' exports: the last annotation that
was not cancelled counts; predictions, rotated boxes and other region types are ignored
(said in the notes); without ``data.edgeloop`` the file name comes from ``data.image``
(the ``d=`` path of local files, the last part of an upload or a URL).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.etree.ElementTree import Element, SubElement, tostring

from app.annotate.formats.common import (
    ImageSource, Tick, clipped_box, copy_image, field, invalid, known_class, listed, load_json,
    no_tick, number, parse_xml, safe_name, text, whole, write_file,
)
from app.annotate.formats.imagesize import NotAnImage, size_of_file
from app.annotate.formats.labelset import (
    FolderLabels, LabeledImage, LabelSet, Skipped, check_class_name,
)
from app.core.errors import InvalidInput

TITLE = "Label Studio JSON"
TASKS = "tasks.json"
CONFIG = "label_config.xml"
IMAGES = "images"
CARRIES_ATTRIBUTES = True
TOLERANCE_PX = 1e-6
BOX_FROM, CLASS_FROM, TO_NAME = "label", "class", "image"


def label_config(classes: tuple[str, ...]) -> bytes:
    """The Label Studio labeling config for ``classes``: boxes and one image class."""
    view = Element("View")
    SubElement(view, "Image", name=TO_NAME, value="$image", zoom="true")
    boxes = SubElement(view, "RectangleLabels", name=BOX_FROM, toName=TO_NAME)
    choices = SubElement(view, "Choices", name=CLASS_FROM, toName=TO_NAME, choice="single")
    for name in classes:
        SubElement(boxes, "Label", value=name)
        SubElement(choices, "Choice", value=name)
    return tostring(view, encoding="utf-8", xml_declaration=True)


def to_task(n: int, image: LabeledImage) -> dict:
    size = {"original_width": image.width, "original_height": image.height,
            "image_rotation": 0}
    result: list[dict] = []
    for k, box in enumerate(image.boxes):
        result.append({
            "id": f"b{n}-{k}", "type": "rectanglelabels", "from_name": BOX_FROM,
            "to_name": TO_NAME, **size,
            "value": {"x": box.x / image.width * 100, "y": box.y / image.height * 100,
                      "width": box.width / image.width * 100,
                      "height": box.height / image.height * 100, "rotation": 0,
                      "rectanglelabels": [box.class_name]}})
    if image.class_name is not None:
        result.append({"id": f"c{n}", "type": "choices", "from_name": CLASS_FROM,
                       "to_name": TO_NAME, **size, "value": {"choices": [image.class_name]}})
    return {
        "id": n,
        "data": {"image": f"/data/local-files/?d={IMAGES}/{quote(image.file_name)}",
                 "edgeloop": {"file_name": image.file_name, "width": image.width,
                              "height": image.height, "attributes": dict(image.attributes)}},
        "annotations": [{"id": n, "result": result, "was_cancelled": False,
                         "ground_truth": False}],
        "predictions": [],
    }


def write(labels: LabelSet, root: Path, *, images: ImageSource | None = None,
          lossy: bool = False, tick: Tick = no_tick) -> list[str]:
    """Write ``labels`` (and the images, if ``images`` says where they are) under ``root``;
    nothing is dropped, so the notes returned are none."""
    tasks = []
    for n, image in enumerate(labels.images, 1):
        tasks.append(to_task(n, image))
        if images is not None:
            copy_image(images, image.file_name, root / IMAGES / image.file_name)
        tick(n)
    write_file(root / TASKS, json.dumps(tasks, ensure_ascii=False, indent=1))
    write_file(root / CONFIG, label_config(labels.classes))
    return []


def read(folder: Path) -> FolderLabels:
    """Read a Label Studio JSON export (a folder holding one, or the file); see the module
    docstring."""
    if folder.is_file():
        path, root = folder, folder.parent
    else:
        root = folder
        path = folder / TASKS
        if not path.is_file():
            found = sorted(p for p in folder.glob("*.json") if p.is_file()) if folder.is_dir() else []
            if len(found) != 1:
                raise invalid(folder, f"no {TASKS} (or a single other .json) to read")
            path = found[0]
    schema = _config_classes(root / CONFIG) if (root / CONFIG).is_file() else None
    classes = {name: i for i, name in enumerate(schema)} if schema is not None else None
    tasks = listed(load_json(path), path, "a Label Studio JSON export (a list of tasks)")
    found_classes: list[str] = []
    notes: list[str] = []
    skipped: list[Skipped] = []
    labelled: list[LabeledImage] = []
    paths: dict[str, Path] = {}
    for n, task in enumerate(tasks):
        where = f"task {task.get('id', n) if isinstance(task, dict) else n}"
        image = _task(path, root, task, where, classes, found_classes, notes, skipped)
        if image is None:
            continue
        if image.file_name in paths:
            raise invalid(path, f"{where}: another task is of {image.file_name!r} too")
        labelled.append(image)
        paths[image.file_name] = root / IMAGES / image.file_name
    names = tuple(schema if schema is not None else found_classes)
    return FolderLabels(LabelSet(names, tuple(labelled)), paths, tuple(skipped), tuple(notes))


def _task(path: Path, root: Path, task: object, where: str, classes: dict[str, int] | None,
          found: list[str], notes: list[str], skipped: list[Skipped]) -> LabeledImage | None:
    data = field(task, "data", path, where)
    if not isinstance(data, dict):
        raise invalid(path, f"{where}: data is not an object")
    ours = data.get("edgeloop", {})
    if not isinstance(ours, dict):
        raise invalid(path, f"{where}: data.edgeloop is not an object")
    if "file_name" in ours:
        file_name = safe_name(ours["file_name"], path, f"{where} file_name")
    else:
        url = text(field(data, "image", path, f"{where} data"), path, f"{where} data.image")
        file_name = safe_name(_name_from_url(url, path, where), path, f"{where} data.image")
    where = f"{where} ({file_name})"
    assert isinstance(task, dict)  # field() above refused anything else
    annotations = listed(task.get("annotations", []), path, f"{where} annotations")
    if any(not isinstance(a, dict) for a in annotations):
        raise invalid(path, f"{where}: an annotation is not an object")
    current = [a for a in annotations if not a.get("was_cancelled")]
    result = listed(current[-1].get("result", []), path, f"{where} result") if current else []
    if len(current) > 1:
        notes.append(f"{where}: {len(current)} annotations; the last one was read")
    size = _size(path, ours, result, where)
    if size is None:
        try:
            _, *wh = size_of_file(root / IMAGES / file_name)
            size = (wh[0], wh[1])
        except (NotAnImage, OSError) as exc:
            skipped.append(Skipped(file_name, f"{path}: {where} gives no image size and the "
                                              f"image's cannot be read ({exc})"))
            return None
    width, height = size
    class_name: str | None = None
    boxes = []
    for k, item in enumerate(result):
        kind = field(item, "type", path, f"{where} result {k}")
        value = field(item, "value", path, f"{where} result {k}")
        if not isinstance(value, dict):
            raise invalid(path, f"{where} result {k}: value is not an object")
        if kind == "choices":
            chosen = listed(field(value, "choices", path, f"{where} result {k}"), path,
                            f"{where} choices")
            if len(chosen) > 1 or (chosen and class_name is not None):
                raise invalid(path, f"{where}: more than one image class; EdgeLoop keeps one")
            if chosen:
                class_name = known_class(chosen[0], classes, found, path, f"{where} choice")
        elif kind == "rectanglelabels":
            if number(value.get("rotation", 0), path, f"{where} rotation") != 0:
                notes.append(f"{where}: a rotated box was ignored")
                continue
            names = listed(field(value, "rectanglelabels", path, f"{where} result {k}"), path,
                           f"{where} rectanglelabels")
            if len(names) != 1:
                raise invalid(path, f"{where} result {k} has {len(names)} labels; a box has one")
            name = known_class(names[0], classes, found, path, f"{where} box label")
            x, y, w, h = (number(field(value, key, path, f"{where} result {k}"), path,
                                 f"{where} box {key}") for key in ("x", "y", "width", "height"))
            pw, ph = w * width / 100, h * height / 100
            boxes.append(clipped_box(name, x * width / 100, y * height / 100, pw, ph, width,
                                     height, path, f"{where} result {k}"))
        else:
            notes.append(f"{where}: a {str(kind)[:40]} result was ignored")
    try:
        return LabeledImage(file_name, width, height, class_name, tuple(boxes),
                            ours.get("attributes", {}))
    except InvalidInput as exc:
        raise invalid(path, f"{where}: {exc}") from None


def _size(path: Path, ours: dict, result: list, where: str) -> tuple[int, int] | None:
    if "width" in ours or "height" in ours:
        return (whole(ours.get("width"), path, f"{where} width", 1),
                whole(ours.get("height"), path, f"{where} height", 1))
    for item in result:
        if isinstance(item, dict) and "original_width" in item:
            return (whole(item["original_width"], path, f"{where} original_width", 1),
                    whole(item.get("original_height"), path, f"{where} original_height", 1))
    return None


def _name_from_url(url: str, path: Path, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "file":
        raise invalid(path, f"{where}: data.image {url[:80]!r} is a file: URL, which is not "
                            f"followed; put the images in {IMAGES}/ next to the JSON")
    local = parse_qs(parts.query).get("d")
    if local:
        name = local[0]
    else:
        name = unquote(parts.path)
        if parts.scheme or parts.netloc or name.startswith("/data/"):
            name = name.rsplit("/", 1)[-1]  # an upload or a URL: its last part
    if name.startswith(f"{IMAGES}/"):
        name = name[len(IMAGES) + 1:]
    return name


def _config_classes(path: Path) -> list[str]:
    root = parse_xml(path)
    names: list[str] = []
    for elem in root.iter():
        if elem.tag in ("Label", "Choice"):
            name = elem.attrib.get("value")
            try:
                check_class_name(name)
            except InvalidInput as exc:
                raise invalid(path, f"<{elem.tag}>: {exc}") from None
            if name not in names:
                names.append(name)  # type: ignore[arg-type]
    return names
