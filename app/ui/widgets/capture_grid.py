"""The Data page's grid and detail panel: captures loaded a keyset page at a time on the
database lane, drawn with lazily decoded thumbnails, and one capture shown larger.

:class:`CapturesModel` loads pages of :func:`~app.core.capture_browser.capture_page` when the
view scrolls near its end (``canFetchMore``/``fetchMore``), so a filter over a million
captures reads one page to show; a thumbnail is decoded only for a cell the view paints
(:mod:`app.ui.thumbnails`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout, QLabel, QStyledItemDelegate, QStyleOptionViewItem, QVBoxLayout, QWidget,
)

from app.core.capture_browser import (
    PAGE_SIZE, CaptureFilter, CaptureRow, CaptureTotal, PageCursor, capture_page, count_captures,
)
from app.core.models import CaptureReason, ReviewStatus
from app.ui.pages.base import PageContext
from app.ui.tasks import Task
from app.ui.thumbnails import THUMBNAIL_SIDE, ThumbnailLoader, ThumbnailState

DETAIL_SIDE = 320
ThumbnailStateRole = Qt.ItemDataRole.UserRole + 1
"""The model's role answering a cell's :class:`ThumbnailState` (what the picture shows)."""

REVIEW_CHOICES = (("Any review status", None), ("Unreviewed", ReviewStatus.UNREVIEWED),
                  ("In review queue", ReviewStatus.QUEUED), ("Labeled", ReviewStatus.REVIEWED),
                  ("Skipped", ReviewStatus.SKIPPED))
REASON_WORDS = {CaptureReason.LOW_CONFIDENCE: "Low confidence",
                CaptureReason.RANDOM_SAMPLE: "Random sample", CaptureReason.EVERY_NTH: "Every Nth",
                CaptureReason.MANUAL: "Manual", CaptureReason.IMPORTED: "Imported"}
REVIEW_WORDS = {status: words for words, status in REVIEW_CHOICES}
FIELDS = ("Device", "Captured (UTC)", "Reason", "Edge model", "Observer", "Label", "Review",
          "Capture")


def caption(row: CaptureRow) -> str:
    """A cell's caption: the edge model's class and confidence."""
    if row.edge_class is None:
        return "no prediction"
    if row.edge_confidence is None:
        return row.edge_class
    return f"{row.edge_class} {row.edge_confidence:.2f}"


def prediction(name: str | None, confidence: float | None) -> str:
    if name is None:
        return "-"
    return name if confidence is None else f"{name} ({confidence:.2f})"


def describe(row: CaptureRow) -> list[tuple[str, str]]:
    """The details panel's fields of one capture, in the order of :data:`FIELDS`."""
    return [
        ("Device", row.device_uid),
        ("Captured (UTC)", row.captured_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("Reason", REASON_WORDS.get(row.reason, row.reason.value)),
        ("Edge model", f"{prediction(row.edge_class, row.edge_confidence)}"
                       + (f", {row.model_version}" if row.model_version else "")),
        ("Observer", prediction(row.observer_class, row.observer_confidence)),
        ("Label", row.label or "-"),
        ("Review", REVIEW_WORDS[row.review_status]),
        ("Capture", f"#{row.id}, {row.device_capture_id} on the device"),
    ]


class CapturesModel(QAbstractListModel):
    """The captures matching one filter, loaded a page at a time on the database lane.

    ``rows_loaded`` is emitted after each page arrives, ``total_changed`` with the
    :class:`CaptureTotal` once it is counted (None while counting), ``failed`` with a
    message when a page could not be read (the main window shows the dialog).
    """

    rows_loaded = Signal(int)
    total_changed = Signal(object)
    failed = Signal(str)

    def __init__(self, context: PageContext, thumbnails: ThumbnailLoader,
                 page_size: int = PAGE_SIZE, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.thumbnails = thumbnails
        self.page_size = page_size
        self.filter: CaptureFilter | None = None
        self.rows: list[CaptureRow] = []
        self.total: CaptureTotal | None = None
        self._rows_of_blob: dict[str, list[int]] = defaultdict(list)
        self._cursor: PageCursor | None = None
        self._exhausted = True
        self._fetch: Task | None = None
        self._count: Task | None = None
        thumbnails.loaded.connect(self._thumbnail_loaded)

    # -- loading ----------------------------------------------------------------------------
    def set_filter(self, capture_filter: CaptureFilter) -> None:
        """Show the captures matching ``capture_filter`` from the newest (reloads)."""
        self.beginResetModel()
        self.filter = capture_filter
        self.rows = []
        self._rows_of_blob.clear()
        self._cursor = None
        self._exhausted = False
        self._fetch = self._count = None  # results still on their way are ignored
        self.total = None
        self.endResetModel()
        self.total_changed.emit(None)
        self._load_page()

    @property
    def loading(self) -> bool:
        return self._fetch is not None

    def canFetchMore(self, parent: QModelIndex = QModelIndex()) -> bool:  # noqa: N802
        return not parent.isValid() and not self._exhausted and self._fetch is None

    def fetchMore(self, parent: QModelIndex = QModelIndex()) -> None:  # noqa: N802
        if self.canFetchMore(parent):
            self._load_page()

    def _load_page(self) -> None:
        db, capture_filter, cursor, size = (self.context.project.db, self.filter, self._cursor,
                                            self.page_size)
        assert capture_filter is not None

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            with db.read() as session:
                return capture_page(session, capture_filter, cursor, size)

        self._fetch = self.context.tasks.run("Loading captures", work)
        self._fetch.succeeded.connect(self._page_arrived)
        self._fetch.failed.connect(self._page_failed)
        self._fetch.cancelled.connect(self._page_cancelled)

    def _page_arrived(self, result: tuple[list[CaptureRow], PageCursor | None]) -> None:
        if self.sender() is not self._fetch:
            return  # a page of an earlier filter
        rows, cursor = result
        first_page = not self.rows
        self._fetch = None
        self._cursor = cursor
        self._exhausted = cursor is None
        if rows:
            start = len(self.rows)
            self.beginInsertRows(QModelIndex(), start, start + len(rows) - 1)
            self.rows.extend(rows)
            for i, row in enumerate(rows, start):
                self._rows_of_blob[row.blob_sha256].append(i)
            self.endInsertRows()
        self.rows_loaded.emit(len(self.rows))
        if first_page:
            self._start_count()

    def _page_failed(self, message: str) -> None:
        if self.sender() is self._fetch:
            self._fetch = None
            self._exhausted = True  # no retry loop; changing the filter or refresh tries again
            self.failed.emit(message)

    def _page_cancelled(self) -> None:
        if self.sender() is self._fetch:
            self._fetch = None

    def _start_count(self) -> None:
        db, capture_filter = self.context.project.db, self.filter
        assert capture_filter is not None

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            with db.read() as session:
                return count_captures(session, capture_filter)

        self._count = self.context.tasks.run("Counting captures", work)
        self._count.succeeded.connect(self._counted)

    def _counted(self, total: CaptureTotal) -> None:
        if self.sender() is self._count:
            self._count = None
            self.total = total
            self.total_changed.emit(total)

    # -- what the view shows ----------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt's name)
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return caption(row)
        if role == Qt.ItemDataRole.DecorationRole:
            # Asked for while the cell is painted: the only place a decode is queued.
            return self.thumbnails.pixmap(row.blob_sha256)
        if role == ThumbnailStateRole:
            return self.thumbnails.state(row.blob_sha256)
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = (f"{row.device_uid}, {row.captured_at:%Y-%m-%d %H:%M:%S} UTC\n"
                   f"{REASON_WORDS.get(row.reason, row.reason.value)}; "
                   f"{REVIEW_WORDS[row.review_status].lower()}")
            if self.thumbnails.state(row.blob_sha256) is ThumbnailState.BROKEN:
                tip += (f"\nThe image (blob {row.blob_sha256[:12]}) cannot be read; "
                        "`edgeloop blobs verify` checks the store")
            return tip
        return None

    def row_at(self, index: QModelIndex) -> CaptureRow | None:
        return self.rows[index.row()] if index.isValid() and index.row() < len(self.rows) else None

    def _thumbnail_loaded(self, sha256: str, side: int) -> None:
        if side != THUMBNAIL_SIDE:
            return
        for i in self._rows_of_blob.get(sha256, ()):
            index = self.index(i)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class CaptureCellDelegate(QStyledItemDelegate):
    """Draws a cell as Qt does, but sizes every cell without asking the model.

    Qt's own sizing reads a sample row's picture (with uniform item sizes, the last row's),
    which would decode a thumbnail no one sees; here a cell's size is fixed.
    """

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        return QSize(THUMBNAIL_SIDE + 32, THUMBNAIL_SIDE + option.fontMetrics.height() + 12)


class CaptureDetails(QWidget):
    """One capture, larger, with its metadata (shown on double-click)."""

    def __init__(self, thumbnails: ThumbnailLoader) -> None:
        super().__init__()
        self.thumbnails = thumbnails
        self.row: CaptureRow | None = None
        self.image = QLabel("Double-click a capture to see it here.")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(DETAIL_SIDE, DETAIL_SIDE)
        self.image.setWordWrap(True)
        self.fields: dict[str, QLabel] = {}
        form = QFormLayout()
        for name in FIELDS:
            label = QLabel("")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[name] = label
            form.addRow(name, label)
        layout = QVBoxLayout(self)
        layout.addWidget(self.image)
        layout.addLayout(form)
        layout.addStretch(1)
        thumbnails.loaded.connect(self._loaded)

    def show_capture(self, row: CaptureRow) -> None:
        self.row = row
        for name, value in describe(row):
            self.fields[name].setText(value)
        self._show_image()

    def _loaded(self, sha256: str, side: int) -> None:
        if self.row is not None and (sha256, side) == (self.row.blob_sha256, DETAIL_SIDE):
            self._show_image()

    def _show_image(self) -> None:
        assert self.row is not None
        sha256 = self.row.blob_sha256
        self.image.setPixmap(self.thumbnails.pixmap(sha256, DETAIL_SIDE))
        broken = self.thumbnails.state(sha256, DETAIL_SIDE) is ThumbnailState.BROKEN
        self.image.setToolTip(f"The image (blob {sha256}) cannot be read; `edgeloop blobs "
                              "verify` checks the store" if broken else f"blob {sha256}")
