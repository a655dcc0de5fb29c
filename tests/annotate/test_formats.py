"""The label formats on their own: every format writes a generated LabelSet and reads it
back the same (within the format's documented tolerance), and malformed input of any kind
is an InvalidInput that names the file, never another exception."""

from __future__ import annotations

import json
import struct
import tempfile
import unicodedata
import zlib
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.annotate.formats import (
    FORMATS, Box, Format, LabeledImage, LabelSet, differences, read_labels, write_labels,
)
from app.annotate.formats.common import stem
from app.annotate.formats.imagesize import size_of_bytes, size_of_file
from app.annotate.formats.labelset import MIN_BOX_SIDE, check_class_name, check_file_name
from app.core.errors import InvalidInput

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# -- generated label sets ----------------------------------------------------------------------
def png(width: int, height: int) -> bytes:
    """A real (grey, black) PNG of the size, built by hand: quick at any size."""
    return _png(width, height)


@lru_cache(maxsize=64)
def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"\x00" * ((width + 1) * height)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def _valid(check, value: str) -> bool:
    try:
        check(value)
        return True
    except InvalidInput:
        return False


_TEXT = st.characters(blacklist_categories=("Cc", "Cs"),
                      blacklist_characters="/\\:\ufffe\uffff\u2028\u2029\x85")
_ATTR = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
class_names = st.one_of(
    st.sampled_from(["cat", "hard hat", "défaut de surface", "Schraube M3", "傷", "a:b",
                     "rust (light)", "😀 ok"]),
    st.text(_TEXT, min_size=1, max_size=24).map(lambda s: unicodedata.normalize("NFC", s.strip())),
).filter(lambda s: _valid(check_class_name, s))

_STEM = st.text(st.characters(blacklist_categories=("Cc", "Cs"),
                              blacklist_characters="/\\:\ufffe\uffff\u2028\u2029\x85"),
                min_size=1, max_size=16)
file_names = st.builds(
    lambda folder, name, ext: f"{folder}{name}{ext}",
    st.sampled_from(["", "", "line 1/", "Gerät/"]), _STEM,
    st.sampled_from([".png", ".jpg", ".PNG"]),
).filter(lambda s: _valid(check_file_name, s) and "/." not in s)


@st.composite
def boxes_in(draw: st.DrawFn, width: int, height: int, classes: list[str]) -> Box:
    x1, x2 = sorted(draw(st.lists(st.floats(0, width), min_size=2, max_size=2, unique=True)))
    y1, y2 = sorted(draw(st.lists(st.floats(0, height), min_size=2, max_size=2, unique=True)))
    assume(x2 - x1 >= MIN_BOX_SIDE and y2 - y1 >= MIN_BOX_SIDE)
    return Box(draw(st.sampled_from(classes)), x1, y1, x2 - x1, y2 - y1)


@st.composite
def label_sets(draw: st.DrawFn, *, boxes: bool = True, always_classified: bool = False,
               attributes: bool = True) -> LabelSet:
    classes = draw(st.lists(class_names, min_size=1, max_size=6, unique=True))
    names = draw(st.lists(file_names, min_size=0, max_size=6,
                          unique_by=lambda n: stem(n).casefold()))
    images = []
    for name in names:
        width = draw(st.integers(1, 2000))
        height = draw(st.integers(1, 2000))
        cls = draw(st.sampled_from(classes) if always_classified
                   else st.none() | st.sampled_from(classes))
        found = tuple(draw(st.lists(boxes_in(width, height, classes), max_size=4))) if boxes else ()
        attrs = draw(st.dictionaries(st.text(_ATTR, min_size=1, max_size=8),
                                     st.text(_ATTR, max_size=12), max_size=3)) if attributes else {}
        images.append(LabeledImage(name, width, height, cls, found, attrs))
    return LabelSet(tuple(classes), tuple(images))


def write_images(labels: LabelSet, folder: Path) -> None:
    for image in labels.images:
        path = folder / image.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png(image.width, image.height))


def round_trip(fmt: Format, labels: LabelSet) -> tuple[LabelSet, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        write_images(labels, src)
        notes = write_labels(fmt, labels, out, images=lambda name: src / name)
        back = read_labels(fmt, out)
        assert not back.skipped, back.skipped
        for image in back.labels.images:  # every image is where the reader says
            assert back.image_paths[image.file_name].read_bytes() == png(image.width, image.height)
        return back.labels, notes


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [f for f in Format if f is not Format.IMAGEFOLDER])
@SETTINGS
@given(labels=label_sets())
def test_every_box_format_reads_back_what_it_wrote(fmt: Format, labels: LabelSet) -> None:
    info = FORMATS[fmt]
    back, notes = round_trip(fmt, labels)
    assert notes == []
    assert differences(labels, back, tolerance_px=info.tolerance_px,
                       attributes=info.carries_attributes) == []


@SETTINGS
@given(labels=label_sets(boxes=False, always_classified=True))
def test_imagefolder_reads_back_what_it_wrote(labels: LabelSet) -> None:
    back, notes = round_trip(Format.IMAGEFOLDER, labels)
    assert notes == []
    assert differences(labels, back, attributes=False) == []


def test_coco_is_exact_and_attributes_survive(tmp_path: Path) -> None:
    labels = LabelSet(("hard hat", "défaut"), (
        LabeledImage("a.png", 640, 480, "défaut",
                     (Box("hard hat", 0.1, 1 / 3, 10.000000000000002, 2e-3),),
                     {"capture_id": "7", "device": "line-1"}),))
    write_labels("coco", labels, tmp_path / "out")
    back = read_labels("coco", tmp_path / "out").labels
    assert back == labels  # bit for bit, not merely within a tolerance


def test_imagefolder_refuses_boxes_and_unclassified_images_unless_lossy(tmp_path: Path) -> None:
    labels = LabelSet(("cat", "dog"), (
        LabeledImage("a.png", 4, 3, "cat", (Box("dog", 0, 0, 1, 1),)),
        LabeledImage("b.png", 4, 3, None)))
    write_images(labels, tmp_path / "src")
    src = lambda name: tmp_path / "src" / name  # noqa: E731
    with pytest.raises(InvalidInput, match="cannot hold 1 boxes or 1 images without a class"):
        write_labels("imagefolder", labels, tmp_path / "out", images=src)
    assert not (tmp_path / "out").exists()
    notes = write_labels("imagefolder", labels, tmp_path / "out", images=src, lossy=True)
    assert notes == ["1 boxes dropped (ImageFolder has no boxes)",
                     "1 images without a class left out"]
    back = read_labels("imagefolder", tmp_path / "out").labels
    assert back == LabelSet(("cat", "dog"), (LabeledImage("a.png", 4, 3, "cat"),))
    with pytest.raises(InvalidInput, match="the images must be exported too"):
        write_labels("imagefolder", labels, tmp_path / "out2", lossy=True)


def test_export_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("stale")
    with pytest.raises(InvalidInput, match="not an empty folder"):
        write_labels("coco", LabelSet(("a",), ()), tmp_path / "out")


def test_yolo_and_voc_refuse_names_that_share_a_label_file(tmp_path: Path) -> None:
    labels = LabelSet(("a",), (LabeledImage("x.png", 2, 2), LabeledImage("x.jpg", 2, 2)))
    for fmt in ("yolo", "voc"):
        with pytest.raises(InvalidInput, match="would share one"):
            write_labels(fmt, labels, tmp_path / fmt)
        assert not (tmp_path / fmt).exists()


def test_other_tools_layouts_are_read(tmp_path: Path) -> None:
    """Files as others write them: Roboflow's flow-style data.yaml, CVAT's labelmap with
    its background line, a Label Studio upload URL and a Datumaro label-only COCO annotation."""
    yolo = tmp_path / "yolo"
    (yolo / "images" / "train").mkdir(parents=True)
    (yolo / "images" / "train" / "a.jpg").write_bytes(png(100, 50))
    (yolo / "labels" / "train").mkdir(parents=True)
    (yolo / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n\n")
    (yolo / "data.yaml").write_text("train: images/train\nnc: 2\nnames: ['scratch', \"it's ok\"]\n")
    got = read_labels("yolo", yolo).labels
    assert got.classes == ("scratch", "it's ok")
    assert got.images[0].file_name == "train/a.jpg"
    box = got.images[0].boxes[0]
    assert (box.class_name, box.x, box.y, box.width, box.height) == ("it's ok", 40, 15, 20, 20)

    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                      "dent:250,50,83::\n")
    (voc / "Annotations" / "img1.xml").write_text(
        "<annotation><filename>img1.jpg</filename><size><width>10</width><height>10</height>"
        "<depth>3</depth></size><object><name>dent</name><difficult>1</difficult><bndbox>"
        "<xmin>1.5</xmin><ymin>2</ymin><xmax>11</xmax><ymax>9</ymax></bndbox></object>"
        "</annotation>")
    got = read_labels("voc", voc).labels
    assert got.classes == ("dent",)
    assert got.images[0].boxes == (Box("dent", 1.5, 2, 8.5, 7),)  # 1 px past the edge: clipped

    ls = tmp_path / "ls"
    ls.mkdir()
    (ls / "export.json").write_text(json.dumps([{"id": 3, "data": {
        "image": "/data/upload/1/8f2a-part%20one.png"}, "annotations": [
        {"was_cancelled": True, "result": []},
        {"result": [{"type": "rectanglelabels", "original_width": 200, "original_height": 100,
                     "value": {"x": 10, "y": 20, "width": 50, "height": 50, "rotation": 0,
                               "rectanglelabels": ["dent"]}},
                    {"type": "polygonlabels", "value": {"points": []}}]}]}]))
    read = read_labels("labelstudio", ls)
    assert read.labels.images == (LabeledImage("8f2a-part one.png", 200, 100, None,
                                               (Box("dent", 20, 20, 100, 50),)),)
    assert read.notes == ("task 3 (8f2a-part one.png): a polygonlabels result was ignored",)

    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({
        "categories": [{"id": 3, "name": "ok"}, {"id": 5, "name": "bad"}],
        "images": [{"id": 1, "file_name": "x.jpg", "width": 8, "height": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 5}]}))
    got = read_labels("coco", coco).labels
    assert got == LabelSet(("ok", "bad"), (LabeledImage("x.jpg", 8, 8, "bad"),))


def test_image_sizes_come_from_headers(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    image = np.zeros((37, 53, 3), dtype=np.uint8)
    for ext, kind in ((".png", "png"), (".jpg", "jpeg"), (".bmp", "bmp"), (".webp", "webp"),
                      (".tif", "tiff")):
        data = cv2.imencode(ext, image)[1].tobytes()
        assert size_of_bytes(data) == (kind, 53, 37)
        (tmp_path / f"x{ext}").write_bytes(data)
        assert size_of_file(tmp_path / f"x{ext}") == (kind, 53, 37)


# -- malformed input ---------------------------------------------------------------------------
COCO_OK = {"categories": [{"id": 1, "name": "a"}],
           "images": [{"id": 1, "file_name": "x.png", "width": 10, "height": 10}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}]}


def _coco(**change) -> dict:
    doc = json.loads(json.dumps(COCO_OK))
    for path, value in change.items():
        *keys, last = path.split("__")
        target = doc
        for key in keys:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[int(last) if isinstance(target, list) else last] = value
    return doc


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                  '<annotation><filename>&lol2;</filename></annotation>')
EXTERNAL = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            '<annotations><image name="&x;" width="1" height="1"/></annotations>')


def _voc(name: str = "x.png", size: str = "<width>10</width><height>10</height>",
         box: str = "<xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax>",
         cls: str = "a") -> str:
    return (f"<annotation><filename>{name}</filename><size>{size}</size><object>"
            f"<name>{cls}</name><bndbox>{box}</bndbox></object></annotation>")


def _cvat(image: str) -> str:
    return ("<annotations><version>1.1</version><meta><task><labels><label><name>a</name>"
            f"</label></labels></task></meta>{image}</annotations>")


def _ls(task: dict) -> str:
    return json.dumps([task])


LS_BOX = {"type": "rectanglelabels", "original_width": 10, "original_height": 10,
          "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["a"]}}

MALFORMED = [
    # (format, {relative path: content}, the file named in the message, what it says)
    ("coco", {"annotations.json": "{not json"}, "annotations.json", "not valid JSON"),
    ("coco", {"annotations.json": "[1, 2]"}, "annotations.json", "a JSON object"),
    ("coco", {"annotations.json": "[" * 100000}, "annotations.json", "nested too deeply"),
    ("coco", {"annotations.json": b"\xff\xfe{}"}, "annotations.json", "not UTF-8"),
    ("coco", {"annotations.json": _coco(categories__0={"id": 1})}, "annotations.json",
     "category 0 has no 'name'"),
    ("coco", {"annotations.json": _coco(images__0__width=-640)}, "annotations.json",
     "width is -640; it must be at least 1"),
    ("coco", {"annotations.json": _coco(images__0__file_name="../../etc/passwd")},
     "annotations.json", "may not leave"),
    ("coco", {"annotations.json": _coco(images__0__file_name="/etc/passwd")},
     "annotations.json", "absolute path"),
    ("coco", {"annotations.json": _coco(images__0__file_name="C:\\x.png")},
     "annotations.json", "Windows path"),
    ("coco", {"annotations.json": _coco(annotations__0__category_id=9)}, "annotations.json",
     "category 9, which is not in categories"),
    ("coco", {"annotations.json": _coco(annotations__0__image_id=9)}, "annotations.json",
     "image 9, which is not in images"),
    ("coco", {"annotations.json": _coco(annotations__0__bbox=[1, 2, 3])}, "annotations.json",
     "has 3 numbers"),
    ("coco", {"annotations.json": _coco(annotations__0__bbox=[5, 5, 50, 2])},
     "annotations.json", "lies outside the 10x10 image"),
    ("coco", {"annotations.json": _coco(annotations__0__bbox=[1, 1, -2, 2])},
     "annotations.json", "both must be above 0"),
    ("coco", {"annotations.json": '{"categories": [], "images": [{"id": 1, "width": NaN}]}'},
     "annotations.json", "NaN is not a JSON number"),
    ("yolo", {"classes.txt": "a\n", "images/x.png": png(10, 10), "labels/x.txt": "3 .5 .5 .1 .1"},
     "labels/x.txt", "class id 3, but there are only 1 classes"),
    ("yolo", {"classes.txt": "a\n", "images/x.png": png(10, 10), "labels/x.txt": "0 .5 .5 .1"},
     "labels/x.txt", "has 4 fields"),
    ("yolo", {"classes.txt": "a\n", "images/x.png": png(10, 10), "labels/x.txt": "0 .5 .5 x .1"},
     "labels/x.txt", "'x', not a number"),
    ("yolo", {"classes.txt": "a\n", "images/x.png": png(10, 10), "labels/x.txt": "-1 .5 .5 .1 .1"},
     "labels/x.txt", "class id is -1"),
    ("yolo", {"classes.txt": "a\n", "images/x.png": png(10, 10), "labels/x.txt": "0 .5 .5 nan .1"},
     "labels/x.txt", "not a finite number"),
    ("yolo", {"classes.txt": "a\n", "images/x.png": png(10, 10),
              "image_classes.txt": "0 ../../etc/passwd\n"}, "image_classes.txt", "may not leave"),
    ("yolo", {"images/x.png": png(10, 10)}, "", "no classes.txt or data.yaml"),
    ("yolo", {"classes.txt": "a\n\nb\n", "images/x.png": png(10, 10)}, "classes.txt",
     "must be 1 to 64"),
    ("yolo", {"classes.txt": "a\n"}, "", "no images/ folder"),
    ("voc", {"Annotations/x.xml": "<annotation><filename>"}, "Annotations/x.xml",
     "not well-formed XML"),
    ("voc", {"Annotations/x.xml": BILLION_LAUGHS}, "Annotations/x.xml", "entities or a DTD"),
    ("voc", {"Annotations/x.xml": _voc(name="../../etc/passwd")}, "Annotations/x.xml",
     "may not leave"),
    ("voc", {"Annotations/x.xml": _voc(size="<width>-10</width><height>10</height>")},
     "Annotations/x.xml", "width is -10"),
    ("voc", {"Annotations/x.xml": _voc(box="<xmin>3</xmin><ymin>1</ymin><xmax>1</xmax>"
                                           "<ymax>3</ymax>")}, "Annotations/x.xml",
     "both must be above 0"),
    ("voc", {"labelmap.txt": "b:::\n", "Annotations/x.xml": _voc()}, "Annotations/x.xml",
     "'a', which is not among the classes"),
    ("voc", {"Annotations/x.xml": "<root/>"}, "Annotations/x.xml", "not <annotation>"),
    ("voc", {"Annotations/x.xml": _voc(box="<xmin>1</xmin>")}, "Annotations/x.xml",
     "has no <ymin>"),
    ("voc", {"Annotations/x.xml": _voc(), "labelmap.txt": "a:::\n",
             "ImageSets/Main/a_default.txt": "y 1\n"}, "ImageSets/Main/a_default.txt",
     "image 'y' has no annotation"),
    ("voc", {}, "", "no Annotations/ folder"),
    ("imagefolder", {"cat/x.png": png(2, 2), "classes.txt": "dog\n"}, "classes.txt",
     "folder 'cat' is not a class listed here"),
    ("imagefolder", {"classes.txt": "a\na\n"}, "classes.txt", "appears twice"),
    ("labelstudio", {"tasks.json": "{}"}, "tasks.json", "not a list"),
    ("labelstudio", {"tasks.json": _ls({"data": {"image": "../../etc/passwd"}})}, "tasks.json",
     "may not leave"),
    ("labelstudio", {"tasks.json": _ls({"data": {"image": "file:///etc/passwd"}})},
     "tasks.json", "is a file: URL, which is not followed"),
    ("labelstudio", {"tasks.json": _ls({"data": {"image": "/data/local-files/?d=/etc/passwd"}})},
     "tasks.json", "absolute path"),
    ("labelstudio", {"tasks.json": _ls({"data": {"image": "a.png"}, "annotations": [{"result": [
        {**LS_BOX, "original_width": -10}]}]})}, "tasks.json", "original_width is -10"),
    ("labelstudio", {"tasks.json": _ls({"data": {"image": "a.png"}, "annotations": [{"result": [
        {**LS_BOX, "value": {**LS_BOX["value"], "rectanglelabels": ["a", "b"]}}]}]})},
     "tasks.json", "has 2 labels"),
    ("labelstudio", {"tasks.json": _ls({"data": {"image": "a.png"}, "annotations": [{"result": [
        {**LS_BOX, "value": {**LS_BOX["value"], "width": 200}}]}]})}, "tasks.json",
     "lies outside the 10x10 image"),
    ("labelstudio", {"tasks.json": _ls({"data": {"image": "a.png"}, "annotations": [{"result": [
        LS_BOX]}]}), "label_config.xml": "<View><Label value='b'/></View>"}, "tasks.json",
     "'a', which is not among the classes"),
    ("labelstudio", {"tasks.json": _ls({"data": {"image": "a.png", "edgeloop": {
        "width": 5, "height": 5}}, "annotations": [{"result": [
        {"type": "choices", "value": {"choices": ["a", "b"]}}]}]})}, "tasks.json",
     "more than one image class"),
    ("labelstudio", {"tasks.json": _ls({"data": {"image": "a.png"}}),
                     "label_config.xml": BILLION_LAUGHS}, "label_config.xml", "entities or a DTD"),
    ("cvat", {"annotations.xml": "not xml"}, "annotations.xml", "not well-formed XML"),
    ("cvat", {"annotations.xml": EXTERNAL}, "annotations.xml", "entities or a DTD"),
    ("cvat", {"annotations.xml": "<annotation/>"}, "annotations.xml", "not <annotations>"),
    ("cvat", {"annotations.xml": _cvat('<track id="0" label="a"/>')}, "annotations.xml",
     "CVAT for video"),
    ("cvat", {"annotations.xml": _cvat('<image name="/etc/passwd" width="1" height="1"/>')},
     "annotations.xml", "absolute path"),
    ("cvat", {"annotations.xml": _cvat('<image name="x.png" width="-5" height="1"/>')},
     "annotations.xml", "width is -5"),
    ("cvat", {"annotations.xml": _cvat('<image name="x.png" width="5" height="5"><box label="b" '
                                       'xtl="0" ytl="0" xbr="1" ybr="1"/></image>')},
     "annotations.xml", "'b', which is not among the classes"),
    ("cvat", {"annotations.xml": _cvat('<image name="x.png" width="5" height="5"><box label="a" '
                                       'xtl="0" ytl="0" xbr="1"/></image>')},
     "annotations.xml", "has no 'ybr' attribute"),
    ("cvat", {"annotations.xml": _cvat('<image name="x.png" width="5" height="5"><tag label="a"/>'
                                       '<tag label="b"/></image>')},
     "annotations.xml", "'b', which is not among the classes"),
]


def _lay_out(folder: Path, files: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            content = json.dumps(content)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


@pytest.mark.parametrize("fmt,files,names,says", MALFORMED,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_input_is_a_clear_error(tmp_path: Path, fmt: str, files: dict, names: str,
                                          says: str) -> None:
    folder = tmp_path / "data"
    _lay_out(folder, files)
    with pytest.raises(InvalidInput) as err:
        read_labels(fmt, folder)
    message = str(err.value)
    assert says in message
    assert str(folder / names) in message


def test_unreadable_images_are_skipped_and_said(tmp_path: Path) -> None:
    _lay_out(tmp_path / "if", {"cat/good.png": png(3, 2), "cat/bad.png": b"not an image",
                               "cat/notes.txt": "x"})
    read = read_labels("imagefolder", tmp_path / "if")
    assert [i.file_name for i in read.labels.images] == ["good.png"]
    assert [s.file_name for s in read.skipped] == ["bad.png"]
    assert "cannot read the image's size" in read.skipped[0].reason
    assert read.notes == ("cat/notes.txt is not an image (by its suffix); ignored",)


# -- fuzzing: whatever the bytes, an InvalidInput or labels ----------------------------------
MAIN_FILE = {
    Format.COCO: ("annotations.json", {}),
    Format.YOLO: ("labels/x.txt", {"classes.txt": "a\nb\n", "images/x.png": png(8, 8)}),
    Format.VOC: ("Annotations/x.xml", {}),
    Format.IMAGEFOLDER: ("classes.txt", {"a/x.png": png(8, 8)}),
    Format.LABELSTUDIO: ("tasks.json", {}),
    Format.CVAT: ("annotations.xml", {}),
}
SIDE_FILE = {
    Format.YOLO: ("data.yaml", {"images/x.png": png(8, 8), "labels/x.txt": "1 .5 .5 .5 .5"}),
    Format.VOC: ("labelmap.txt", {"Annotations/x.xml": _voc()}),
    Format.LABELSTUDIO: ("label_config.xml", {"tasks.json": _ls(
        {"data": {"image": "a.png"}, "annotations": [{"result": [LS_BOX]}]})}),
}


def _read_or_invalid(fmt: Format, files: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _lay_out(Path(tmp) / "d", files)
        try:
            read_labels(fmt, Path(tmp) / "d")
        except InvalidInput as exc:
            assert str(Path(tmp) / "d") in str(exc)


@pytest.mark.parametrize("fmt", list(Format))
@SETTINGS
@given(data=st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_random_bytes_never_raise_anything_but_invalid_input(fmt: Format, data: bytes) -> None:
    name, others = MAIN_FILE[fmt]
    _read_or_invalid(fmt, {**others, name: data})
    if fmt in SIDE_FILE:
        name, others = SIDE_FILE[fmt]
        _read_or_invalid(fmt, {**others, name: data})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=10) | st.sampled_from(["a", "x.png", "../x", "rectanglelabels", "choices"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["id", "name", "x", "width", "value", "type", "result",
                                       "image", "data", "bbox", "choices"]) | st.text(max_size=5),
                      children, max_size=4),
    max_leaves=20)


@pytest.mark.parametrize("fmt,valid", [
    (Format.COCO, COCO_OK),
    (Format.LABELSTUDIO, [{"data": {"image": "a.png", "edgeloop": {"width": 10, "height": 10}},
                           "annotations": [{"result": [LS_BOX, {"type": "choices", "value": {
                               "choices": ["a"]}}]}]}]),
])
@SETTINGS
@given(data=st.data())
def test_any_json_in_any_place_is_invalid_input_or_labels(fmt: Format, valid: object,
                                                          data: st.DataObject) -> None:
    """A valid document with one value (anywhere in it) replaced by arbitrary JSON."""
    doc = json.loads(json.dumps(valid))
    places = list(_places(doc))
    parent, key = data.draw(st.sampled_from(places))
    parent[key] = data.draw(json_values)
    _read_or_invalid(fmt, {MAIN_FILE[fmt][0]: json.dumps(doc)})


def _places(doc: object):
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield doc, key
            yield from _places(value)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield doc, i
            yield from _places(value)
