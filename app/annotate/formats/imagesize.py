"""An image's size and kind from the first bytes of its file, without decoding it.

Readers of formats that do not store sizes (YOLO's normalized boxes, ImageFolder) and the
export (which must write each capture's size) need width and height of many files; decoding
a whole image for two numbers is wasteful. PNG, JPEG, GIF, BMP and WebP headers are parsed
here; anything else falls back to a full OpenCV decode.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

HEAD_BYTES = 1 << 16
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif",
               "bmp": "image/bmp", "webp": "image/webp", "tiff": "image/tiff"}
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "gif": ".gif", "bmp": ".bmp", "webp": ".webp",
              "tiff": ".tif"}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
"""File suffixes (lower case) that formats which find images by listing folders look for."""


class NotAnImage(ValueError):
    """The bytes are not an image this module can size."""


def kind_of(head: bytes) -> str | None:
    """The image kind by its magic bytes ("png", "jpeg", ...), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def size_of_bytes(data: bytes) -> tuple[str, int, int]:
    """(kind, width, height) of an image given (at least) its first bytes; a full decode
    when the header is not one parsed here. Raises :class:`NotAnImage`."""
    kind = kind_of(data)
    try:
        size = _header_size(kind, data)
    except (struct.error, IndexError):
        size = None
    if size is None:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise NotAnImage("not a readable image (PNG, JPEG, GIF, BMP, WebP or TIFF)")
        size = (int(image.shape[1]), int(image.shape[0]))
    width, height = size
    if width < 1 or height < 1:
        raise NotAnImage(f"the header says the image is {width}x{height} pixels")
    return kind or "unknown", width, height


def size_of_file(path: Path) -> tuple[str, int, int]:
    """(kind, width, height) of the image file at ``path`` (reads its head, rarely all)."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
        kind = kind_of(head)
        try:
            size = _header_size(kind, head)
        except (struct.error, IndexError):
            size = None
        if size is not None and size[0] >= 1 and size[1] >= 1:
            return kind or "unknown", size[0], size[1]
        return size_of_bytes(head + fh.read())


def _header_size(kind: str | None, data: bytes) -> tuple[int, int] | None:
    if kind == "png":
        if data[12:16] != b"IHDR":
            return None
        return struct.unpack(">II", data[16:24])
    if kind == "gif":
        return struct.unpack("<HH", data[6:10])
    if kind == "bmp":
        width, height = struct.unpack("<ii", data[18:26])
        return width, abs(height)  # a negative height means top-down rows
    if kind == "webp":
        chunk = data[12:16]
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return (int.from_bytes(data[24:27], "little") + 1,
                    int.from_bytes(data[27:30], "little") + 1)
        return None
    if kind == "jpeg":
        return _jpeg_size(data)
    return None


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if length < 2:
            return None
        i += 2 + length
    return None
