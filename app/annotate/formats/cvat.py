"""CVAT for images 1.1 XML: ``annotations.xml`` and ``images/``.

The task's labels (``<meta><task><labels>``) hold the schema in order. Each ``<image>``
has ``name``, ``width`` and ``height``; a ``<box>`` per box with corners ``xtl ytl xbr ybr``
in pixels; the image class is a ``<tag>``, CVAT's own image-level label.

Carries: classes and order, file names, sizes, image class, boxes (within tolerance:
corners are converted). Cannot carry: attributes (CVAT 1.1 has none on images). Read but
ignored (said in the notes): polygons, polylines, points, masks, ellipses, cuboids, rotated
boxes, shape attributes. CVAT for video (tracks) is refused: export the task as CVAT for
images.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, tostring

from app.annotate.formats.common import (
    ImageSource, Tick, clipped_box, copy_image, fmt, invalid, known_class, no_tick, number,
    parse_xml, pick_file, safe_name, whole, write_file, xml_number,
)
from app.annotate.formats.labelset import FolderLabels, LabeledImage, LabelSet, check_class_name
from app.core.errors import InvalidInput

TITLE = "CVAT for images 1.1"
ANNOTATIONS = "annotations.xml"
IMAGES = "images"
CARRIES_ATTRIBUTES = False
TOLERANCE_PX = 1e-6
_SHAPES = ("polygon", "polyline", "points", "mask", "ellipse", "cuboid", "skeleton")


def to_xml(labels: LabelSet) -> bytes:
    root = Element("annotations")
    SubElement(root, "version").text = "1.1"
    task = SubElement(SubElement(root, "meta"), "task")
    SubElement(task, "name").text = "EdgeLoop export"
    SubElement(task, "size").text = str(len(labels.images))
    SubElement(task, "mode").text = "annotation"
    declared = SubElement(task, "labels")
    for name in labels.classes:
        label = SubElement(declared, "label")
        SubElement(label, "name").text = name
        SubElement(label, "type").text = "any"
        SubElement(label, "attributes")
    for n, image in enumerate(labels.images):
        elem = SubElement(root, "image", id=str(n), name=image.file_name,
                          width=str(image.width), height=str(image.height))
        for box in image.boxes:
            SubElement(elem, "box", label=box.class_name, source="manual", occluded="0",
                       xtl=fmt(box.x), ytl=fmt(box.y), xbr=fmt(box.x + box.width),
                       ybr=fmt(box.y + box.height), z_order="0")
        if image.class_name is not None:
            SubElement(elem, "tag", label=image.class_name, source="manual")
    return tostring(root, encoding="utf-8", xml_declaration=True)


def write(labels: LabelSet, root: Path, *, images: ImageSource | None = None,
          lossy: bool = False, tick: Tick = no_tick) -> list[str]:
    """Write ``labels`` (and the images, if ``images`` says where they are) under ``root``;
    nothing is dropped, so the notes returned are none."""
    if images is not None:
        for n, image in enumerate(labels.images, 1):
            copy_image(images, image.file_name, root / IMAGES / image.file_name)
            tick(n)
    write_file(root / ANNOTATIONS, to_xml(labels))
    tick(len(labels.images))
    return []


def read(folder: Path) -> FolderLabels:
    """Read CVAT for images 1.1 XML (a folder holding ``annotations.xml``, or the file)."""
    path = pick_file(folder, [ANNOTATIONS], "*.xml", "CVAT XML file")
    root_dir = folder if folder.is_dir() else path.parent
    root = parse_xml(path)
    if root.tag != "annotations":
        raise invalid(path, f"the root element is <{root.tag}>, not <annotations>")
    if root.find("track") is not None:
        raise invalid(path, "this is CVAT for video (it has tracks); export the task as "
                            "CVAT for images 1.1")
    schema = _declared(path, root)
    classes = {name: i for i, name in enumerate(schema)} if schema else None
    found: list[str] = []
    notes: list[str] = []
    labelled: list[LabeledImage] = []
    paths: dict[str, Path] = {}
    for n, elem in enumerate(root.findall("image")):
        where = f"<image> {n}"
        file_name = safe_name(elem.attrib.get("name"), path, f"{where} name")
        where = f"<image> {file_name}"
        if file_name in paths:
            raise invalid(path, f"{where} appears twice")
        width = whole(elem.attrib.get("width"), path, f"{where} width", 1)
        height = whole(elem.attrib.get("height"), path, f"{where} height", 1)
        class_name = None
        boxes = []
        for k, child in enumerate(elem):
            what = f"{where} <{child.tag}> {k}"
            if child.tag == "tag":
                name = known_class(child.attrib.get("label"), classes, found, path, what)
                if class_name is not None and class_name != name:
                    raise invalid(path, f"{where} has two tags ({class_name!r}, {name!r}); "
                                        "EdgeLoop keeps one class per image")
                class_name = name
            elif child.tag == "box":
                if number(child.attrib.get("rotation", "0"), path, f"{what} rotation") != 0:
                    notes.append(f"{where}: a rotated box was ignored")
                    continue
                name = known_class(child.attrib.get("label"), classes, found, path, what)
                xtl, ytl, xbr, ybr = (xml_number(child, a, path, what)
                                      for a in ("xtl", "ytl", "xbr", "ybr"))
                boxes.append(clipped_box(name, xtl, ytl, xbr - xtl, ybr - ytl, width, height,
                                         path, what))
            elif child.tag in _SHAPES:
                notes.append(f"{where}: a {child.tag} was ignored (only boxes and tags are read)")
        try:
            labelled.append(LabeledImage(file_name, width, height, class_name, tuple(boxes)))
        except InvalidInput as exc:
            raise invalid(path, str(exc)) from None
        paths[file_name] = _image_path(root_dir, file_name)
    names = tuple(schema) if schema else tuple(found)
    return FolderLabels(LabelSet(names, tuple(labelled)), paths, (), tuple(notes))


def _image_path(root: Path, file_name: str) -> Path:
    preferred = root / IMAGES / file_name
    if not preferred.exists() and (root / file_name).exists():
        return root / file_name
    return preferred


def _declared(path: Path, root: Element) -> list[str]:
    """The labels of the task, project or job in ``<meta>``, in order."""
    meta = root.find("meta")
    names: list[str] = []
    if meta is None:
        return names
    for labels in meta.iter("labels"):
        for label in labels.findall("label"):
            name_elem = label.find("name")
            name = name_elem.text if name_elem is not None else None
            try:
                check_class_name(name)
            except InvalidInput as exc:
                raise invalid(path, f"<meta> label: {exc}") from None
            if name not in names:
                names.append(name)  # type: ignore[arg-type]
    return names
