"""Labels in memory, independent of any file format or database: what every reader returns
and every writer takes.

A :class:`LabelSet` is the label schema (class names, in order) and a :class:`LabeledImage`
per image: its file name, its size in pixels, an optional image-level class, zero or more
:class:`Box` es (pixels, float, ``x``/``y`` the top-left corner) and free string
``attributes`` (where the image came from: capture id, device, split...).

Construction validates, so a LabelSet that exists is one every format can be asked to write:

- class names: 1-64 characters, NFC, no leading or trailing white space, no control
  characters, no ``/`` or ``\\``, no leading ``.`` (a class name becomes a folder name in
  ImageFolder and a file name in Pascal VOC), at most 200 bytes of UTF-8;
- file names: a relative POSIX path (``a.png``, ``line-1/a.png``) whose parts are not empty
  and do not start with ``.`` (no ``..``, no hidden files), without ``\\``, ``:``, control
  characters, a leading ``/`` (see
  :func:`check_file_name`): a label file can never make a writer or an importer touch a file
  outside its folder;
- sizes: whole pixels from 1 to :data:`MAX_SIDE`; boxes: finite, width and height at least
  :data:`MIN_BOX_SIDE`,
  inside the image (up to :data:`BOUND_SLACK` for float rounding);
- every class an image or a box names is in ``classes``; file names are unique.

"Loses nothing" is :func:`differences` returning nothing: the same classes in the same
order, the same images (compared by file name, in any order), each with the same size,
class and boxes (in order, coordinates within the format's tolerance), and the same
attributes where the format carries them. What each format carries is in
``app.annotate.formats.FORMATS``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from app.core.errors import InvalidInput

MAX_SIDE = 1_000_000
"""The largest image side accepted, in pixels."""
BOUND_SLACK = 1e-6
"""How far (in pixels) a box may reach past the image edge: float rounding, nothing more."""
TOLERANCE_PX = 1e-6
"""Coordinate tolerance of formats that store boxes other than as x, y, width, height in
pixels (corners, percent, normalized): they convert, and a conversion rounds."""
MIN_BOX_SIDE = 1e-3
"""The narrowest box side, in pixels: anything thinner is a rounding error, not an object."""
MAX_CLASS_BYTES = 200
MAX_NAME_PART_BYTES = 255
MAX_FILE_NAME = 1024

# Control characters (Unicode category Cc), lone surrogates (Cs), and what XML 1.0 cannot
# hold at all: a label name or file name has no use for any of them. A regular expression,
# not unicodedata per character: it runs for every name of a 100,000-image export.
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u2028\u2029]")


def _bad_char(text: str) -> str | None:
    """The first character no label or file name may hold, if any."""
    found = _NOT_TEXT.search(text)
    return found.group() if found else None


def check_class_name(name: object) -> str:
    """Return ``name`` if it can be a class in every format; else raise InvalidInput."""
    if not isinstance(name, str):
        raise InvalidInput(f"a class name must be text, not {name!r}")
    problem = _class_name_problem(name)
    if problem:
        raise InvalidInput(f"class name {name!r} {problem}")
    return name


@lru_cache(maxsize=4096)
def _class_name_problem(name: str) -> str:
    """What is wrong with a class name ("" for nothing). Cached: an export checks the same
    few names on every box of every image."""
    if not name or len(name) > 64:
        return "must be 1 to 64 characters"
    if name != name.strip():
        return "starts or ends with white space"
    bad = _bad_char(name)
    if bad is not None:
        return f"holds the control character {bad!r}"
    if "/" in name or "\\" in name or name.startswith("."):
        return ("cannot be a folder name (no '/' or '\\', no leading '.'): ImageFolder and "
                "Pascal VOC name files after classes")
    if unicodedata.normalize("NFC", name) != name:
        return "is not in Unicode normal form C"
    if len(name.encode("utf-8")) > MAX_CLASS_BYTES:
        return f"is longer than {MAX_CLASS_BYTES} bytes of UTF-8"
    return ""


def check_file_name(name: object) -> str:
    """Return ``name`` if it is a safe relative POSIX path for an image; else InvalidInput.

    Refused: absolute paths (``/etc/passwd``, ``C:...``), ``..`` or ``.`` parts, empty parts
    (``a//b``, a trailing ``/``), backslashes, ``:``, control characters, parts over 255
    bytes. The message says what is wrong so an importer can name it.
    """
    if not isinstance(name, str):
        raise InvalidInput(f"an image file name must be text, not {name!r}")
    if not name or len(name) > MAX_FILE_NAME:
        raise InvalidInput(f"image file name {name[:80]!r} must be 1 to {MAX_FILE_NAME} characters")
    bad = _bad_char(name)
    if bad is not None:
        raise InvalidInput(f"image file name {name!r} holds the control character {bad!r}")
    if name.startswith("/"):
        raise InvalidInput(f"image file name {name!r} is an absolute path; only paths "
                           "relative to the dataset folder are allowed")
    if "\\" in name or ":" in name:
        raise InvalidInput(f"image file name {name!r} holds '\\' or ':' (a Windows path or a "
                           "drive); use '/' between folders")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise InvalidInput(f"image file name {name!r} has an empty, '.' or '..' part; a "
                               "file name may not leave or skip around the dataset folder")
        if part.startswith("."):
            raise InvalidInput(f"image file name {name!r} has a hidden part (a leading '.'), "
                               "which readers that list folders skip")
        if len(part.encode("utf-8")) > MAX_NAME_PART_BYTES:
            raise InvalidInput(f"image file name {name[:80]!r} has a part longer than "
                               f"{MAX_NAME_PART_BYTES} bytes")
    return name


def _check_size(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
        raise InvalidInput(f"{what} must be a whole number of pixels from 1 to {MAX_SIDE}, "
                           f"not {value!r}")
    return value


def _check_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels of its image: top-left corner, width, height."""

    class_name: str
    x: float
    y: float
    width: float
    height: float

    def __post_init__(self) -> None:
        check_class_name(self.class_name)
        for name in ("x", "y", "width", "height"):
            object.__setattr__(self, name, _check_number(getattr(self, name), f"box {name}"))
        if self.width < MIN_BOX_SIDE or self.height < MIN_BOX_SIDE:
            raise InvalidInput(f"a {self.class_name!r} box has width {self.width!r} and height "
                               f"{self.height!r}; both must be at least {MIN_BOX_SIDE} px")


def _attribute_pairs(value: object) -> tuple[tuple[str, str], ...]:
    """Attributes (a mapping, or (key, value) pairs) as sorted pairs of text, checked."""
    try:
        pairs = sorted(value.items() if isinstance(value, Mapping)  # type: ignore[union-attr]
                       else (tuple(pair) for pair in value))  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InvalidInput(f"image attributes must map text to text, not {value!r}") from None
    for pair in pairs:
        if len(pair) != 2 or type(pair[0]) is not str or type(pair[1]) is not str or not pair[0]:
            raise InvalidInput(f"image attribute {pair!r}: keys and values must be text (keys "
                               "not empty)")
    if len({key for key, _ in pairs}) != len(pairs):
        raise InvalidInput(f"image attributes name a key twice: {[k for k, _ in pairs]}")
    # One pass over all the text: a NUL, or a lone surrogate (which UTF-8 cannot encode).
    joined = "".join(key + val for key, val in pairs)
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        joined = "\x00"
    if "\x00" in joined:
        raise InvalidInput(f"image attributes {dict(pairs)!r} hold a NUL character or a lone "
                           "surrogate, which the database cannot keep")
    return tuple(pairs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LabeledImage:
    """One image and its labels. ``attributes`` may be given as a dict; it is kept as sorted
    (key, value) pairs so the image stays hashable and comparable."""

    file_name: str
    width: int
    height: int
    class_name: str | None = None
    boxes: tuple[Box, ...] = ()
    attributes: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        check_file_name(self.file_name)
        _check_size(self.width, f"{self.file_name}: image width")
        _check_size(self.height, f"{self.file_name}: image height")
        if self.class_name is not None:
            check_class_name(self.class_name)
        boxes = tuple(self.boxes)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "attributes", _attribute_pairs(self.attributes))
        for box in boxes:
            if not isinstance(box, Box):
                raise InvalidInput(f"{self.file_name}: {box!r} is not a Box")
            if (box.x < 0 or box.y < 0 or box.x + box.width > self.width + BOUND_SLACK
                    or box.y + box.height > self.height + BOUND_SLACK):
                raise InvalidInput(
                    f"{self.file_name}: the {box.class_name!r} box at x={box.x:g} y={box.y:g} "
                    f"w={box.width:g} h={box.height:g} reaches outside the "
                    f"{self.width}x{self.height} image")

    @property
    def attribute_map(self) -> dict[str, str]:
        return dict(self.attributes)

    def classes_used(self) -> set[str]:
        used = {box.class_name for box in self.boxes}
        if self.class_name is not None:
            used.add(self.class_name)
        return used


@dataclass(frozen=True)
class LabelSet:
    """A label schema and the labelled images; see the module docstring for the rules."""

    classes: tuple[str, ...]
    images: tuple[LabeledImage, ...]

    def __post_init__(self) -> None:
        classes = tuple(self.classes)
        images = tuple(self.images)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "images", images)
        for name in classes:
            check_class_name(name)
        if len(set(classes)) != len(classes):
            twice = sorted({c for c in classes if classes.count(c) > 1})
            raise InvalidInput(f"the label schema names {twice} more than once")
        known = set(classes)
        seen: set[str] = set()
        for image in images:
            if image.file_name in seen:
                raise InvalidInput(f"two images are called {image.file_name!r}")
            seen.add(image.file_name)
            unknown = image.classes_used() - known
            if unknown:
                raise InvalidInput(f"{image.file_name}: class {sorted(unknown)} is not in the "
                                   f"label schema {list(classes)}")

    def by_file_name(self) -> dict[str, LabeledImage]:
        return {image.file_name: image for image in self.images}


@dataclass(frozen=True)
class Skipped:
    """An image a reader or an import left out, and why (said so the user can fix it)."""

    file_name: str
    reason: str


@dataclass(frozen=True)
class FolderLabels:
    """What a reader found in a folder: the labels, where each image's file is (or would
    be: a label file may name an image that is not there), the images it had to leave out
    (no readable size), and notes on what it read but cannot represent (a polygon, a
    rotated box) and so ignored."""

    labels: LabelSet
    image_paths: Mapping[str, Path]
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = ()


def differences(expected: LabelSet, actual: LabelSet, *, tolerance_px: float = 0.0,
                attributes: bool = True, limit: int = 20) -> list[str]:
    """How ``actual`` differs from ``expected`` (empty: they are the same labels).

    Images are matched by file name, in any order; boxes in order, each coordinate within
    ``tolerance_px``; attributes only compared when ``attributes`` is true.
    """
    found: list[str] = []
    if expected.classes != actual.classes:
        found.append(f"classes {list(expected.classes)} != {list(actual.classes)}")
    want, have = expected.by_file_name(), actual.by_file_name()
    for name in sorted(want.keys() - have.keys())[:limit]:
        found.append(f"{name}: missing")
    for name in sorted(have.keys() - want.keys())[:limit]:
        found.append(f"{name}: not expected")
    for name in sorted(want.keys() & have.keys()):
        if len(found) >= limit:
            break
        found.extend(_image_differences(want[name], have[name], tolerance_px, attributes))
    return found[:limit]


def _image_differences(a: LabeledImage, b: LabeledImage, tol: float,
                       attributes: bool) -> Iterable[str]:
    name = a.file_name
    if (a.width, a.height) != (b.width, b.height):
        yield f"{name}: size {a.width}x{a.height} != {b.width}x{b.height}"
    if a.class_name != b.class_name:
        yield f"{name}: class {a.class_name!r} != {b.class_name!r}"
    if attributes and a.attributes != b.attributes:
        yield f"{name}: attributes {dict(a.attributes)} != {dict(b.attributes)}"
    if len(a.boxes) != len(b.boxes):
        yield f"{name}: {len(a.boxes)} boxes != {len(b.boxes)}"
        return
    for i, (p, q) in enumerate(zip(a.boxes, b.boxes)):
        if p.class_name != q.class_name:
            yield f"{name}: box {i} class {p.class_name!r} != {q.class_name!r}"
        for coord in ("x", "y", "width", "height"):
            u, v = getattr(p, coord), getattr(q, coord)
            if abs(u - v) > tol:
                yield f"{name}: box {i} {coord} {u!r} != {v!r} (tolerance {tol:g} px)"
