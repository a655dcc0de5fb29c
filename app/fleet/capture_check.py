"""Checking what a device sends before any of it is imported.

A pull receives a tar stream of ``<id>.json`` sidecars, each followed by its image
(docs/device-protocol.md). Nothing in it is trusted: a member name must be a plain
``<12 digits>.<ext>`` (no folder, no ``..``), the sidecar must be a JSON object with the
fields the agent writes, the image must have the size and sha256 the sidecar gives and must
decode. :class:`CaptureAssembler` turns the member sequence into :class:`CheckedCapture`
(importable) and :class:`Refusal` (quarantined, with the reason) values; it never raises on
bad content.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cv2
import numpy as np

from app.core.models import CaptureReason

MEMBER_NAME = re.compile(r"^(\d{12})\.(json|jpg|jpeg|png)$")
MAX_SIDECAR_BYTES = 64 * 1024
MAX_IMAGE_BYTES = 256 * 1024 * 1024
MEDIA_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png"}
_TEXT_LIMIT = 64


@dataclass(frozen=True)
class CheckedCapture:
    """A capture that passed every check, ready to commit."""

    capture_id: str
    image: bytes
    sha256: str
    media_type: str
    captured_at: datetime
    reason: CaptureReason
    prediction: str | None
    confidence: float | None
    model_version: str | None
    sidecar: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Refusal:
    """A capture (or a stray member) that is not imported, and why.

    ``capture_id`` is the id when the member name was a valid one (the device can then hold
    the capture); otherwise it is a printable rendering of the offending name, and
    ``holdable`` is False.
    """

    capture_id: str
    reason: str
    size: int
    holdable: bool = True


class CaptureProblem(ValueError):
    """One reason a capture is refused (internal: becomes a :class:`Refusal`)."""


def safe_name(name: str) -> tuple[str, str] | None:
    """(id, extension) of a plain capture member name, or None for anything else."""
    match = MEMBER_NAME.match(name)
    return (match.group(1), match.group(2)) if match else None


def printable(name: str, limit: int = 100) -> str:
    """A name from the device, safe to show and store (escaped, bounded)."""
    return ascii(name)[1:-1][:limit]


def parse_sidecar(capture_id: str, data: bytes, device_uid: str) -> dict[str, Any]:
    """The sidecar as a dict, or :class:`CaptureProblem` naming what is wrong with it."""
    if len(data) > MAX_SIDECAR_BYTES:
        raise CaptureProblem(f"sidecar is {len(data)} bytes (at most {MAX_SIDECAR_BYTES})")
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptureProblem(f"sidecar is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise CaptureProblem("sidecar is not a JSON object")
    if record.get("id") != capture_id:
        raise CaptureProblem(f"sidecar id {printable(str(record.get('id')))!r} does not match "
                             f"its file name {capture_id}")
    if record.get("device_id") != device_uid:
        raise CaptureProblem(f"sidecar says device {printable(str(record.get('device_id')))!r}, "
                             f"but it came from {device_uid}")
    sha = record.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise CaptureProblem("sidecar has no valid sha256")
    size = record.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_IMAGE_BYTES:
        raise CaptureProblem("sidecar has no valid size")
    file_name = record.get("file")
    parsed = safe_name(file_name) if isinstance(file_name, str) else None
    if parsed is None or parsed[0] != capture_id or parsed[1] == "json":
        raise CaptureProblem(f"sidecar names image {printable(str(file_name))!r}, which is not "
                             f"a plain image name of capture {capture_id}")
    return record


# Sidecar fields that have their own columns, or only served the checks above.
_COLUMN_FIELDS = frozenset({"id", "device_id", "sha256", "size", "file", "captured_at",
                            "reason", "prediction", "confidence", "model_version"})


def device_meta(sidecar: dict[str, Any]) -> dict[str, Any] | None:
    """The sidecar's other fields (class probabilities, source, a simulator's ground truth),
    kept as the device sent them; None when there are none. The sidecar is already bounded
    (``MAX_SIDECAR_BYTES``) and parsed from JSON, so what is kept is plain JSON."""
    extra = {key: value for key, value in sidecar.items() if key not in _COLUMN_FIELDS}
    return extra or None


def _text(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _TEXT_LIMIT or not value.isprintable():
        raise CaptureProblem(f"sidecar field {key!r} is not a short text")
    return value


def _metadata(record: dict[str, Any]) -> tuple[datetime, CaptureReason, float | None]:
    try:
        captured_at = datetime.fromisoformat(str(record.get("captured_at")))
    except ValueError:
        raise CaptureProblem("sidecar has no valid captured_at time") from None
    if captured_at.tzinfo is None:
        raise CaptureProblem("sidecar captured_at has no time zone")
    try:
        reason = CaptureReason(record.get("reason"))
    except ValueError:
        raise CaptureProblem(f"unknown capture reason {printable(str(record.get('reason')))!r}") from None
    confidence = record.get("confidence")
    if confidence is not None:
        if (not isinstance(confidence, (int, float)) or isinstance(confidence, bool)
                or not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0):
            raise CaptureProblem("sidecar confidence is not a number within 0..1")
        confidence = float(confidence)
    return captured_at, reason, confidence


def image_decodes(data: bytes) -> bool:
    """Whether ``data`` is an image OpenCV can decode (at 1/8 scale: enough to find damage,
    ~8x cheaper than a full decode)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    return image is not None and image.size > 0


def check_capture(capture_id: str, record: dict[str, Any], image_name: str,
                  image: bytes) -> CheckedCapture:
    """Check an image against its parsed sidecar; :class:`CaptureProblem` if anything is off."""
    if image_name != record["file"]:
        raise CaptureProblem(f"image member {printable(image_name)!r} is not the "
                             f"{record['file']} its sidecar names")
    if len(image) != record["size"]:
        raise CaptureProblem(f"image is {len(image)} bytes, the sidecar says {record['size']} "
                             "(cut short?)")
    sha = hashlib.sha256(image).hexdigest()
    if sha != record["sha256"]:
        raise CaptureProblem(f"image sha256 is {sha}, the sidecar says {record['sha256']}")
    if not image_decodes(image):
        raise CaptureProblem("image does not decode")
    captured_at, reason, confidence = _metadata(record)
    extension = image_name.rsplit(".", 1)[1]
    return CheckedCapture(
        capture_id=capture_id, image=image, sha256=sha, media_type=MEDIA_TYPES[extension],
        captured_at=captured_at, reason=reason, prediction=_text(record, "prediction"),
        confidence=confidence, model_version=_text(record, "model_version"), sidecar=record)


class CaptureAssembler:
    """Pairs the members of a pull stream into checked captures and refusals.

    Feed members in stream order with :meth:`member`; call :meth:`finish` at the end of the
    archive. Results come out of both as they are decided.
    """

    def __init__(self, device_uid: str) -> None:
        self.device_uid = device_uid
        self._pending: tuple[str, dict[str, Any] | None, str | None, int] | None = None
        self._seen: set[str] = set()

    def member(self, name: str, is_file: bool, data: bytes | None,
               size: int) -> Iterator[CheckedCapture | Refusal]:
        """One tar member: ``data`` is None when the member was too big or not a file."""
        parsed = safe_name(name) if is_file else None
        if parsed is None:
            yield from self._flush_pending("its image never came")
            what = "entry" if is_file else "non-file entry"
            yield Refusal(printable(name), f"unsafe or unexpected {what} name {printable(name)!r} "
                          "in the pull stream", size, holdable=False)
            return
        capture_id, extension = parsed
        if extension == "json":
            yield from self._flush_pending("its image never came")
            yield from self._sidecar(capture_id, data, size)
            return
        pending, self._pending = self._pending, None
        if pending is None or pending[0] != capture_id:
            if pending is not None:
                yield Refusal(pending[0], "its image never came", pending[3])
            if capture_id not in self._seen:
                self._seen.add(capture_id)
                yield Refusal(capture_id, "image without a sidecar", size)
            return
        _, record, problem, sidecar_size = pending
        total = sidecar_size + size
        if problem is not None or record is None:
            yield Refusal(capture_id, problem or "bad sidecar", total)
        elif data is None:
            yield Refusal(capture_id, f"image is {size} bytes (at most {MAX_IMAGE_BYTES})", total)
        else:
            try:
                yield check_capture(capture_id, record, name, data)
            except CaptureProblem as exc:
                yield Refusal(capture_id, str(exc), total)

    def _sidecar(self, capture_id: str, data: bytes | None,
                 size: int) -> Iterator[Refusal]:
        if capture_id in self._seen:
            yield Refusal(capture_id, "sent twice in one pull", size, holdable=False)
            return
        self._seen.add(capture_id)
        try:
            if data is None:
                raise CaptureProblem(f"sidecar is {size} bytes (at most {MAX_SIDECAR_BYTES})")
            record: dict[str, Any] | None = parse_sidecar(capture_id, data, self.device_uid)
            problem = None
        except CaptureProblem as exc:
            record, problem = None, str(exc)
        self._pending = (capture_id, record, problem, size)

    def _flush_pending(self, reason: str) -> Iterator[Refusal]:
        pending, self._pending = self._pending, None
        if pending is not None:
            yield Refusal(pending[0], pending[2] or reason, pending[3])

    def finish(self) -> Iterator[Refusal]:
        """The end of the archive: a sidecar still waiting for its image is refused."""
        yield from self._flush_pending("its image never came")
