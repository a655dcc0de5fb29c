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
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage, QPixmap

from app.core.blobs import BlobStore

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


class _Bridge(QObject):
    """Carries a decoded image to the main thread; lives as long as the pool (a worker
    never emits on a prefetcher being destroyed)."""

    decoded = Signal(str, object)  # sha256, QImage or None


class _Pool:
    """The workers (no widgets): decode requests, newest first."""

    def __init__(self, blobs: BlobStore, workers: int) -> None:
        self.blobs = blobs
        self.bridge = _Bridge()
        self._workers = workers
        self._lock = threading.Lock()
        self._waiting: list[str] = []
        self._executor: ThreadPoolExecutor | None = None

    def push(self, sha256: str) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="ui-prefetch")
        with self._lock:
            self._waiting.append(sha256)
        self._executor.submit(self._decode_newest)

    def _decode_newest(self) -> None:
        with self._lock:
            if not self._waiting:
                return
            sha256 = self._waiting.pop()
        self.bridge.decoded.emit(sha256, decode_image(self.blobs, sha256))

    def shutdown(self) -> None:
        with self._lock:
            self._waiting.clear()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


class ImagePrefetcher(QObject):
    """Full-size capture images by blob sha256; ``ready`` says one arrived (None: broken)."""

    ready = Signal(str)

    def __init__(self, blobs: BlobStore, *, workers: int = WORKERS, capacity: int = CAPACITY,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = _Pool(blobs, workers)
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
