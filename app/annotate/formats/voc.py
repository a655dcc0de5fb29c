"""Pascal VOC XML: one ``Annotations/<name>.xml`` per image, images in ``JPEGImages/``.

Layout as CVAT and Datumaro write it: ``labelmap.txt`` holds the schema in order
(``name:color:parts:actions`` lines; colours left empty), ``ImageSets/Main/default.txt``
lists every image id (the file name without its suffix). Each XML has ``<filename>``,
``<size>`` and an ``<object>`` per box with ``<bndbox>`` corners ``xmin ymin xmax ymax`` in
pixels (0-based, ``xmax = x + width``; whole numbers written without ``.0``).

The image class uses VOC's own classification convention: ``ImageSets/Main/<class>_default.txt``
with ``<image id> 1`` for the images of that class and ``-1`` for the others, which is what
Datumaro and CVAT read as image-level labels. No full-image box is written: a detector
would take it for an object.

Carries: classes and order, file names (they must differ without their suffix), sizes,
image class, boxes (within tolerance: corners are converted). Cannot carry: attributes.
Read but ignored: ``difficult``, ``truncated``, ``pose``, object attributes, parts.
A class name holding ``:`` is written and read back here, but Datumaro splits it.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, tostring

from app.annotate.formats.common import (
    ImageSource, Tick, child_text, clipped_box, copy_image, invalid, no_tick, number,
    parse_xml, read_text, refuse_same_stems, safe_name, stem, walk_files, whole, write_file,
    known_class, fmt,
)
from app.annotate.formats.imagesize import NotAnImage, size_of_file
from app.annotate.formats.labelset import (
    FolderLabels, LabeledImage, LabelSet, Skipped, check_class_name,
)
from app.core.errors import InvalidInput

TITLE = "Pascal VOC XML"
ANNOTATIONS = "Annotations"
IMAGES = "JPEGImages"
IMAGE_SETS = "ImageSets/Main"
SUBSET = "default"
LABELMAP = "labelmap.txt"
# CVAT's labelmap starts with this line, which is not a class of the tasks' labels; ours
# never writes a colour, so a class of ours called "background" is not mistaken for it.
CVAT_BACKGROUND = "background:0,0,0::"
LABELMAP_HEADER = "# label:color_rgb:parts:actions"
CARRIES_ATTRIBUTES = False
TOLERANCE_PX = 1e-6


def to_xml(image: LabeledImage) -> bytes:
    """The VOC annotation of one image."""
    root = Element("annotation")
    SubElement(root, "folder").text = ""
    SubElement(root, "filename").text = image.file_name
    source = SubElement(root, "source")
    SubElement(source, "database").text = "EdgeLoop"
    size = SubElement(root, "size")
    SubElement(size, "width").text = str(image.width)
    SubElement(size, "height").text = str(image.height)
    SubElement(size, "depth").text = "3"
    SubElement(root, "segmented").text = "0"
    for box in image.boxes:
        obj = SubElement(root, "object")
        SubElement(obj, "name").text = box.class_name
        SubElement(obj, "pose").text = "Unspecified"
        SubElement(obj, "truncated").text = "0"
        SubElement(obj, "difficult").text = "0"
        corners = SubElement(obj, "bndbox")
        for tag, value in (("xmin", box.x), ("ymin", box.y), ("xmax", box.x + box.width),
                           ("ymax", box.y + box.height)):
            SubElement(corners, tag).text = fmt(value)
    return tostring(root, encoding="utf-8", xml_declaration=True)


def write(labels: LabelSet, root: Path, *, images: ImageSource | None = None,
          lossy: bool = False, tick: Tick = no_tick) -> list[str]:
    """Write ``labels`` (and the images, if ``images`` says where they are) under ``root``;
    nothing is dropped, so the notes returned are none."""
    refuse_same_stems(labels, TITLE)
    (root / ANNOTATIONS).mkdir(parents=True, exist_ok=True)  # there even with no image
    if images is not None:
        (root / IMAGES).mkdir(parents=True, exist_ok=True)
    ids = []
    for n, image in enumerate(labels.images, 1):
        ids.append(stem(image.file_name))
        write_file(root / ANNOTATIONS / f"{ids[-1]}.xml", to_xml(image))
        if images is not None:
            copy_image(images, image.file_name, root / IMAGES / image.file_name)
        tick(n)
    write_file(root / LABELMAP, f"{LABELMAP_HEADER}\n"
               + "".join(f"{name}:::\n" for name in labels.classes))
    write_file(root / IMAGE_SETS / f"{SUBSET}.txt", "".join(f"{i}\n" for i in ids))
    if any(image.class_name is not None for image in labels.images):
        for name in labels.classes:
            write_file(root / IMAGE_SETS / f"{name}_{SUBSET}.txt", "".join(
                f"{i} {1 if image.class_name == name else -1}\n"
                for i, image in zip(ids, labels.images)))
    return []


def read(folder: Path) -> FolderLabels:
    """Read a Pascal VOC folder; see the module docstring."""
    if not (folder / ANNOTATIONS).is_dir():
        raise invalid(folder, f"no {ANNOTATIONS}/ folder: not a Pascal VOC dataset")
    schema = _labelmap(folder)
    classes = {name: i for i, name in enumerate(schema)} if schema is not None else None
    found: list[str] = []
    skipped: list[Skipped] = []
    parsed: dict[str, tuple] = {}
    for rel, path in walk_files(folder / ANNOTATIONS):
        if not rel.endswith(".xml"):
            continue
        image_id = rel[:-4]
        parsed[image_id] = _annotation(folder, path, classes, found, skipped)
    image_classes = _image_classes(folder, schema if schema is not None else found,
                                   set(parsed))
    labelled: list[LabeledImage] = []
    paths: dict[str, Path] = {}
    for image_id, entry in parsed.items():
        if entry is None:
            continue
        file_name, width, height, boxes, xml_path = entry
        if file_name in paths:
            raise invalid(xml_path, f"another annotation is of {file_name!r} too")
        try:
            labelled.append(LabeledImage(file_name, width, height,
                                         image_classes.get(image_id), tuple(boxes)))
        except InvalidInput as exc:
            raise invalid(xml_path, str(exc)) from None
        paths[file_name] = folder / IMAGES / file_name
    names = tuple(schema if schema is not None else found)
    for name in image_classes.values():  # a class only the image sets name
        if name not in names:
            names += (name,)
    return FolderLabels(LabelSet(names, tuple(labelled)), paths, tuple(skipped))


def _annotation(folder: Path, path: Path, classes: dict[str, int] | None, found: list[str],
                skipped: list[Skipped]) -> tuple | None:
    root = parse_xml(path)
    if root.tag != "annotation":
        raise invalid(path, f"the root element is <{root.tag}>, not <annotation>")
    file_name = safe_name(_filename(root, path), path, "<filename>")
    size = root.find("size")
    if size is not None and size.find("width") is not None:
        width = whole(child_text(size, "width", path, "<size>"), path, "<size> width", 1)
        height = whole(child_text(size, "height", path, "<size> height"), path,
                       "<size> height", 1)
    else:  # some tools leave the size out: take it from the image
        try:
            _, width, height = size_of_file(folder / IMAGES / file_name)
        except (NotAnImage, OSError) as exc:
            skipped.append(Skipped(file_name, f"{path} has no <size> and the image's size "
                                              f"cannot be read ({exc})"))
            return None
    boxes = []
    for n, obj in enumerate(root.findall("object"), 1):
        where = f"object {n}"
        name = known_class(child_text(obj, "name", path, where), classes, found, path,
                           f"{where} <name>")
        corners = obj.find("bndbox")
        if corners is None:
            raise invalid(path, f"{where} ({name}) has no <bndbox>")
        xmin, ymin, xmax, ymax = (number(child_text(corners, tag, path, f"{where} <bndbox>"),
                                         path, f"{where} {tag}")
                                  for tag in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append(clipped_box(name, xmin, ymin, xmax - xmin, ymax - ymin, width, height,
                                 path, f"{where} ({name})"))
    return file_name, width, height, boxes, path


def _filename(root: Element, path: Path) -> str:
    """``<filename>`` as written; white space around it only dropped when the XML was
    pretty-printed onto several lines (a name may start or end with a space)."""
    elem = root.find("filename")
    if elem is None or not elem.text:
        raise invalid(path, "the annotation has no <filename>")
    return elem.text.strip() if "\n" in elem.text else elem.text


def _labelmap(folder: Path) -> list[str] | None:
    path = folder / LABELMAP
    if not path.is_file():
        return None
    names = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip() or line.strip() == LABELMAP_HEADER or (
                line.startswith("#") and line.count(":") < 3):
            continue  # a comment; "#x:::" is the class "#x"
        if line.strip() == CVAT_BACKGROUND:
            continue
        # name:color:parts:actions; a name may hold ':' itself, so split from the right.
        name = line.rsplit(":", 3)[0] if line.count(":") >= 3 else line.split(":")[0]
        try:
            check_class_name(name)
        except InvalidInput as exc:
            raise invalid(path, f"line {n}: {exc}") from None
        if name in names:
            raise invalid(path, f"line {n}: class {name!r} is listed twice")
        names.append(name)
    return names


def _image_classes(folder: Path, names: list[str], image_ids: set[str]) -> dict[str, str]:
    """Image id -> class, from ``ImageSets/Main/<class>_default.txt`` (lines ``id 1``)."""
    classes: dict[str, str] = {}
    for name in names:
        path = folder / IMAGE_SETS / f"{name}_{SUBSET}.txt"
        if not path.is_file():
            continue
        for n, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            image_id, _, flag = line.rstrip().rpartition(" ")
            if whole(flag, path, f"line {n} flag") != 1:
                continue
            if image_id not in image_ids:  # VOC pads positives: "id  1"
                image_id = image_id.rstrip(" ")
            if image_id not in image_ids:
                raise invalid(path, f"line {n}: image {image_id!r} has no annotation in "
                                    f"{ANNOTATIONS}/")
            if classes.get(image_id, name) != name:
                raise invalid(path, f"line {n}: image {image_id!r} is already of class "
                                    f"{classes[image_id]!r}; one class per image")
            classes[image_id] = name
    return classes
