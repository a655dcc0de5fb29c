"""Capture images decoded ahead of need, at full resolution, for the labeling canvas.

The labeling pane asks for the images around the one shown (:meth:`ImagePrefetcher.want`):
workers read each blob through the project's :class:`~app.core.blobs.BlobStore` and decode
it with OpenCV into a ``QImage`` (safe off the main thread); the main thread turns it into a
``QPixmap`` when it arrives and keeps it in a small LRU cache, so "Next" finds its image
ready and shows it at once. Unlike app/ui/thumbnails.py (scaled thumbnails for a grid) this
keeps the image's own size: boxes are drawn and saved in its pixels.

A blob that is missing or does not decode is remembered as broken (None), never an
exception. The pool is the prefetcher's own; :meth:`shutdown` stops it (the pane calls it
when it closes, and the prefetcher when it is destroyed).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage, QPixmap

from app.core.blobs import BlobStore
from app.ui.thumbnails import DecodePool

log = logging.getLogger(__name__)

WORKERS = 2
CAPACITY = 24  # the images around the one shown, and a few visited: ~150 MB at 1080p


def decode_image(blobs: BlobStore, sha256: str) -> QImage | None:
    """The blob's image at its own size (RGB); None if missing or not an image. Runs on a
    worker thread."""
    try:
        data = np.frombuffer(blobs.read_bytes(sha256), dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            log.info("blob %s is not a decodable image", sha256)
            return None
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        height, width = rgb.shape[:2]
        # copy(): the QImage must own its pixels once ``rgb`` is gone.
        return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    except Exception:  # an unreadable image is shown as such, whatever broke it
        log.info("image of blob %s could not be decoded", sha256, exc_info=True)
        return None


class ImagePrefetcher(QObject):
    """Full-size capture images by blob sha256; ``ready`` says one arrived (None: broken)."""

    ready = Signal(str)

    def __init__(self, blobs: BlobStore, *, workers: int = WORKERS, capacity: int = CAPACITY,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Unbounded: it is only asked for the few captures around the one shown.
        self._pool: DecodePool[str] = DecodePool(
            lambda sha256: decode_image(blobs, sha256), workers, None, "ui-prefetch")
        self._pool.bridge.decoded.connect(self._arrived)
        self._cache: OrderedDict[str, QPixmap | None] = OrderedDict()
        self._pending: set[str] = set()
        self._capacity = capacity
        self.destroyed.connect(self._pool.shutdown)

    def has(self, sha256: str) -> bool:
        """Whether the image is decoded (or known broken)."""
        return sha256 in self._cache

    def get(self, sha256: str) -> QPixmap | None:
        """The decoded image (None: broken, or not decoded yet: see :meth:`has`)."""
        if sha256 in self._cache:
            self._cache.move_to_end(sha256)
            return self._cache[sha256]
        return None

    def want(self, *sha256s: str) -> None:
        """Decode these if they are not cached or under way; the first is wanted most."""
        # Pushed last is decoded first: push in reverse so the first named comes first.
        for sha256 in reversed(sha256s):
            if sha256 in self._cache:
                self._cache.move_to_end(sha256)
            elif sha256 not in self._pending:
                self._pending.add(sha256)
                self._pool.push(sha256)

    def _arrived(self, sha256: str, image: QImage | None) -> None:
        self._pending.discard(sha256)
        self._cache[sha256] = None if image is None else QPixmap.fromImage(image)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        self.ready.emit(sha256)

    def shutdown(self) -> None:
        """Stop decoding (waiting requests are forgotten)."""
        self._pool.shutdown()
        self._pending.clear()
