"""What the format modules share: defensive parsing (JSON, XML, numbers) that turns every
malformed input into an :class:`InvalidInput` naming the file, number formatting that
survives a round trip, box clipping, and copying images into an export.

Untrusted XML goes through ``defusedxml`` (no entity expansion, no external entities), so a
label file cannot make the reader fetch a URL, read a local file or expand a billion laughs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from app.annotate.formats.imagesize import IMAGE_SUFFIXES
from app.annotate.formats.labelset import Box, LabelSet, check_class_name, check_file_name
from app.core.errors import InvalidInput

ImageSource = Callable[[str], Path]
"""Where the bytes of the image named ``file_name`` can be copied from."""
Tick = Callable[[int], None]
"""Called with the number of images written so far; it may raise Cancelled to stop."""
MAX_LABEL_FILE = 2 << 30
OVERSHOOT_PX = 1.0
"""How far past the image edge a box read from a file may reach and be clipped back in:
other tools round coordinates. Further out is an error."""


def no_tick(_: int) -> None:
    """A tick that does nothing."""


def invalid(where: Path | str, problem: str) -> InvalidInput:
    """The error every reader raises: which file, and what is wrong with it."""
    return InvalidInput(f"{where}: {problem}")


def read_bytes(path: Path, what: str = "label file") -> bytes:
    try:
        if path.stat().st_size > MAX_LABEL_FILE:
            raise invalid(path, f"the {what} is larger than {MAX_LABEL_FILE >> 30} GiB")
        return path.read_bytes()
    except FileNotFoundError:
        raise invalid(path, f"the {what} does not exist") from None
    except IsADirectoryError:
        raise invalid(path, f"the {what} is a folder, not a file") from None
    except OSError as exc:
        raise invalid(path, f"cannot read the {what} ({exc.strerror or exc})") from None


def read_text(path: Path, what: str = "label file") -> str:
    """The file's text (UTF-8, a byte-order mark allowed)."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid(path, f"the {what} is not UTF-8 text (byte {exc.start})") from None


def load_json(path: Path) -> Any:
    """Parse a JSON file; NaN and Infinity are refused (JSON has neither)."""
    text = read_text(path, "JSON file")

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not a JSON number")

    try:
        return json.loads(text, parse_constant=refuse)
    except RecursionError:
        raise invalid(path, "the JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError is one
        raise invalid(path, f"not valid JSON ({exc})") from None


def parse_xml(path: Path) -> Element:
    """Parse an XML file safely (see the module docstring); its root element."""
    data = read_bytes(path, "XML file")
    try:
        return SafeET.fromstring(data)
    except DefusedXmlException as exc:
        raise invalid(path, f"the XML uses entities or a DTD, which are refused ({exc})") from None
    except ParseError as exc:
        raise invalid(path, f"not well-formed XML ({exc})") from None
    except (ValueError, LookupError, UnicodeError, RecursionError) as exc:
        raise invalid(path, f"cannot parse the XML ({exc})") from None


def fmt(value: float) -> str:
    """A number as text that reads back as the same float; whole numbers without ".0"
    (some VOC readers call int() on coordinates)."""
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def number(value: Any, where: Path | str, what: str) -> float:
    """A finite number from JSON (int or float, not bool) or from text."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise invalid(where, f"{what} is {value[:40]!r}, not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(where, f"{what} is {_show(value)}, not a number")
    value = float(value)
    if not math.isfinite(value):
        raise invalid(where, f"{what} is {value}, not a finite number")
    return value


def whole(value: Any, where: Path | str, what: str, low: int | None = None) -> int:
    """A whole number from JSON or text (``12``, ``"12"``, ``12.0``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit() and text.isascii():
            value = int(text)
        else:
            value = number(value, where, what)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(where, f"{what} is {_show(value)}, not a whole number")
    if low is not None and value < low:
        raise invalid(where, f"{what} is {value}; it must be at least {low}")
    return value


def text(value: Any, where: Path | str, what: str) -> str:
    if not isinstance(value, str):
        raise invalid(where, f"{what} is {_show(value)}, not text")
    return value


def field(obj: Any, key: str, where: Path | str, what: str) -> Any:
    """``obj[key]`` of a JSON object, or a clear error if ``obj`` is not one or lacks it."""
    if not isinstance(obj, dict):
        raise invalid(where, f"{what} is {_show(obj)}, not an object")
    if key not in obj:
        raise invalid(where, f"{what} has no {key!r}")
    return obj[key]


def listed(value: Any, where: Path | str, what: str) -> list:
    if not isinstance(value, list):
        raise invalid(where, f"{what} is {_show(value)}, not a list")
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def safe_name(name: Any, where: Path | str, what: str = "image file name") -> str:
    """``check_file_name`` with the file that holds the name in the message."""
    try:
        return check_file_name(name)
    except InvalidInput as exc:
        raise invalid(where, f"{what}: {exc}") from None


def xml_number(elem: Element, attr: str, where: Path | str, what: str) -> float:
    if attr not in elem.attrib:
        raise invalid(where, f"{what} has no {attr!r} attribute")
    return number(elem.attrib[attr], where, f"{what} {attr}")


def child_text(elem: Element, tag: str, where: Path | str, what: str) -> str:
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise invalid(where, f"{what} has no <{tag}>")
    return child.text.strip()


def clipped_box(class_name: str, x: float, y: float, w: float, h: float, width: int,
                height: int, where: Path | str, what: str) -> Box:
    """The box read from a file, clipped into the image if it reaches out by at most
    :data:`OVERSHOOT_PX` (others' rounding); an error if it is further out or empty."""
    if not (w > 0 and h > 0):
        raise invalid(where, f"{what} has width {w:g} and height {h:g}; both must be above 0")
    # (a box thinner than MIN_BOX_SIDE once clipped is refused by Box itself, below)
    if (x < -OVERSHOOT_PX or y < -OVERSHOOT_PX or x + w > width + OVERSHOOT_PX
            or y + h > height + OVERSHOOT_PX):
        raise invalid(where, f"{what} (x={x:g} y={y:g} w={w:g} h={h:g}) lies outside the "
                             f"{width}x{height} image")
    if x < 0:
        w, x = w + x, 0.0
    if y < 0:
        h, y = h + y, 0.0
    if x + w > width:
        w = width - x
    if y + h > height:
        h = height - y
    if not (w > 0 and h > 0):
        raise invalid(where, f"{what} is empty once clipped to the {width}x{height} image")
    try:
        return Box(class_name, x, y, w, h)
    except InvalidInput as exc:
        raise invalid(where, f"{what}: {exc}") from None


def known_class(name: Any, classes: dict[str, int] | None, found: list[str],
                where: Path | str, what: str) -> str:
    """A class named in a label file: one of ``classes`` when the file set declares its
    schema; otherwise any valid name, added to ``found`` in order of first appearance."""
    if not isinstance(name, str):
        raise invalid(where, f"{what} is {_show(name)}, not a class name")
    if classes is not None:
        if name not in classes:
            raise invalid(where, f"{what} is {name!r}, which is not among the classes "
                                 f"{list(classes)[:20]}")
        return name
    try:
        check_class_name(name)
    except InvalidInput as exc:
        raise invalid(where, f"{what}: {exc}") from None
    if name not in found:
        found.append(name)
    return name


def stem(file_name: str) -> str:
    """The file name without its suffix (``line-1/a.png`` -> ``line-1/a``)."""
    path = PurePosixPath(file_name)
    return str(path.with_suffix("")) if path.suffix else file_name


def refuse_same_stems(labels: LabelSet, format_title: str) -> None:
    """Formats that name label files after the image without its suffix cannot hold
    ``a.png`` and ``a.jpg`` side by side."""
    seen: dict[str, str] = {}
    for image in labels.images:
        key = stem(image.file_name)
        if key in seen:
            raise InvalidInput(f"{format_title} names label files after the image without "
                               f"its suffix, so {seen[key]!r} and {image.file_name!r} would "
                               "share one; rename one of them")
        seen[key] = image.file_name


def refuse_without_suffix(labels: LabelSet, format_title: str) -> None:
    """Formats that find images by listing a folder need a known image suffix."""
    for image in labels.images:
        if PurePosixPath(image.file_name).suffix.lower() not in IMAGE_SUFFIXES:
            raise InvalidInput(f"{format_title} finds images by their suffix, and "
                               f"{image.file_name!r} has none of {sorted(IMAGE_SUFFIXES)}")


def write_file(path: Path, data: str | bytes) -> None:
    """Write a file of an export (the whole export folder is renamed into place at the end,
    so single files need no atomic dance)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def copy_image(images: ImageSource, file_name: str, dest: Path) -> None:
    """Copy the image called ``file_name`` to ``dest`` (folders made as needed)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(images(file_name), dest)


def walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every file under ``root`` as (relative POSIX name, path), sorted, hidden files and
    folders (a leading ".") left out. Names are not checked here; callers do."""
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(folder)
        rel = base.relative_to(root)
        for name in sorted(files):
            if name.startswith("."):
                continue
            yield (name if rel == Path(".") else f"{rel.as_posix()}/{name}"), base / name


def pick_file(folder: Path, candidates: list[str], pattern: str, what: str) -> Path:
    """The label file of a folder: the first of ``candidates`` that exists, else the only
    file matching ``pattern``; the folder itself may also be the file."""
    if folder.is_file():
        return folder
    if not folder.is_dir():
        raise invalid(folder, "no such folder")
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.glob(pattern) if p.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise invalid(folder, f"no {what} here (looked for {', '.join(candidates)} and "
                              f"{pattern})")
    raise invalid(folder, f"several {what}s here ({', '.join(p.name for p in found[:5])}); "
                          "give the one to read")
