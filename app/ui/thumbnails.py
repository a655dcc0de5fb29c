"""Thumbnails of blob images, decoded on a small thread pool and kept in an LRU cache.

A view asks :meth:`ThumbnailLoader.pixmap` while it paints a cell; the answer is the cached
thumbnail, or a placeholder while a worker reads the blob through the project's
:class:`~app.core.blobs.BlobStore` and decodes it with OpenCV into a ``QImage`` (safe off the
main thread; a ``QPixmap`` is not, so that conversion happens on the main thread when the
result arrives). A blob that is missing or does not decode gets the "broken" placeholder,
never an exception. The requests wait on a bounded stack, newest first: cells scrolled past
quickly are dropped from the backlog and asked for again only if they are painted again.

The pool is the loader's own and is shut down by :meth:`ThumbnailLoader.shutdown`, which
the loader also calls when it is destroyed.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRectF, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap

from app.core.blobs import BlobStore

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 96
WORKERS = 2
CAPACITY = 600  # ~22 MB of 96 px thumbnails: several screens of the grid
BACKLOG = 256  # more requests than this waiting: the oldest are dropped


class ThumbnailState(str, enum.Enum):
    """Where one thumbnail stands: being decoded, shown, or unreadable."""

    PENDING = "pending"
    READY = "ready"
    BROKEN = "broken"


def decode_thumbnail(blobs: BlobStore, sha256: str, side: int) -> QImage | None:
    """The blob's image scaled to fit ``side`` pixels; None if the blob is missing or is not
    an image. Runs on a worker thread. Small images are enlarged pixel by pixel (nearest
    neighbour), so an inspector sees the pixels the model saw, not invented detail."""
    try:
        data = np.frombuffer(blobs.read_bytes(sha256), dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            log.info("blob %s is not a decodable image", sha256)
            return None
        height, width = image.shape[:2]
        scale = side / max(height, width)
        if scale != 1.0:
            image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                               interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        height, width = rgb.shape[:2]
        # copy(): the QImage must own its pixels once ``rgb`` is gone.
        return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    except Exception:  # a broken thumbnail is shown, whatever broke it
        log.info("thumbnail of blob %s could not be made", sha256, exc_info=True)
        return None


def placeholder_pixmap(side: int, broken: bool = False) -> QPixmap:
    """A grey square (waiting), or one crossed out in red (the image cannot be read)."""
    pixmap = QPixmap(side, side)
    pixmap.fill(QColor("#d8d8d8" if not broken else "#f1dede"))
    if broken:
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor("#b03030"), max(2, side // 24)))
        inset = side * 0.3
        box = QRectF(inset, inset, side - 2 * inset, side - 2 * inset)
        painter.drawLine(box.topLeft(), box.bottomRight())
        painter.drawLine(box.topRight(), box.bottomLeft())
        painter.end()
    return pixmap


class _DecodedBridge(QObject):
    """Carries a decoded image from a worker to the main thread (a queued signal).

    Kept apart from the loader and alive as long as the pool, so a worker never emits on a
    loader that is being destroyed.
    """

    decoded = Signal(object, object)  # the request's key, QImage or None


Key = TypeVar("Key")


class DecodePool(Generic[Key]):
    """Workers decoding images off the main thread (no Qt widgets here): requests wait on a
    newest-first stack (the image wanted last is the one on screen), bounded by ``backlog``
    if given; each result arrives on the main thread as ``bridge.decoded(key, image)``.
    The thumbnail loader and the labeling pane's prefetcher both use it."""

    def __init__(self, decode: Callable[[Key], QImage | None], workers: int,
                 backlog: int | None, thread_name: str) -> None:
        self.decode = decode
        self.bridge = _DecodedBridge()
        self._workers = workers
        self._backlog = backlog
        self._thread_name = thread_name
        self._lock = threading.Lock()
        self._stack: deque[Key] = deque()
        self._executor: ThreadPoolExecutor | None = None

    def push(self, key: Key) -> Key | None:
        """Queue a decode; return the request dropped to make room, if any."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._workers,
                                                thread_name_prefix=self._thread_name)
        dropped = None
        with self._lock:
            self._stack.append(key)
            if self._backlog is not None and len(self._stack) > self._backlog:
                dropped = self._stack.popleft()
        self._executor.submit(self._decode_newest)
        return dropped

    def _decode_newest(self) -> None:
        # One call per push; a call finds the stack empty when its request was dropped.
        with self._lock:
            if not self._stack:
                return
            key = self._stack.pop()
        self.bridge.decoded.emit(key, self.decode(key))

    def shutdown(self) -> None:
        """Forget waiting requests and wait for the running decodes."""
        with self._lock:
            self._stack.clear()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


class ThumbnailLoader(QObject):
    """Thumbnails by blob sha256 and size, loaded lazily; ``loaded`` says one arrived."""

    loaded = Signal(str, int)  # sha256, side

    def __init__(self, blobs: BlobStore, *, workers: int = WORKERS, capacity: int = CAPACITY,
                 backlog: int = BACKLOG, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool: DecodePool[tuple[str, int]] = DecodePool(
            lambda key: decode_thumbnail(blobs, *key), workers, backlog, "ui-thumbs")
        self._pool.bridge.decoded.connect(self._arrived)
        self._cache: OrderedDict[tuple[str, int], QPixmap | None] = OrderedDict()
        self._capacity = capacity
        self._pending: set[tuple[str, int]] = set()
        self._placeholders: dict[tuple[int, bool], QPixmap] = {}
        # The pool, not the loader: the loader's Python side may be gone by then.
        self.destroyed.connect(self._pool.shutdown)

    def state(self, sha256: str, side: int = THUMBNAIL_SIDE) -> ThumbnailState:
        key = (sha256, side)
        if key not in self._cache:
            return ThumbnailState.PENDING
        return ThumbnailState.BROKEN if self._cache[key] is None else ThumbnailState.READY

    def pixmap(self, sha256: str, side: int = THUMBNAIL_SIDE) -> QPixmap:
        """The thumbnail if it is ready; else a placeholder, and a decode is queued."""
        key = (sha256, side)
        if key in self._cache:
            self._cache.move_to_end(key)
            cached = self._cache[key]
            return cached if cached is not None else self.placeholder(side, broken=True)
        if key not in self._pending:
            self._pending.add(key)
            dropped = self._pool.push(key)
            if dropped is not None:
                self._pending.discard(dropped)
        return self.placeholder(side)

    def placeholder(self, side: int = THUMBNAIL_SIDE, broken: bool = False) -> QPixmap:
        """The shared waiting (or broken) placeholder of this size."""
        if (side, broken) not in self._placeholders:
            self._placeholders[(side, broken)] = placeholder_pixmap(side, broken)
        return self._placeholders[(side, broken)]

    def _arrived(self, key: tuple[str, int], image: QImage | None) -> None:
        sha256, side = key
        self._pending.discard(key)
        self._cache[key] = None if image is None else QPixmap.fromImage(image)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        self.loaded.emit(sha256, side)

    def shutdown(self) -> None:
        """Stop decoding (waiting requests are forgotten); a later request starts again."""
        self._pool.shutdown()
        self._pending.clear()

