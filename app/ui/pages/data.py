"""The Data page: a grid of captures with filters, fast on a million of them.

The filter bar builds a :class:`~app.core.capture_browser.CaptureFilter`; the grid is a
``QListView`` in icon mode over :class:`CapturesModel`, which loads keyset pages of
:func:`~app.core.capture_browser.capture_page` on the database lane when the view scrolls
near its end (``canFetchMore``/``fetchMore``), so opening the page reads one page however
many captures there are. Thumbnails are decoded only for the cells the view paints
(:mod:`app.ui.thumbnails`). Double-clicking a capture shows it larger beside the grid,
with what the device, the observer and the reviewers made of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel, QDateTime, QModelIndex, QObject, QSize, Qt, QTimer, QTimeZone, Signal,
)
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox, QDateTimeEdit, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
    QListView, QPushButton, QSplitter, QStyledItemDelegate, QStyleOptionViewItem, QVBoxLayout,
    QWidget,
)

from app.core.capture_browser import (
    PAGE_SIZE, CaptureFilter, CaptureRow, CaptureTotal, FilterChoices, PageCursor, capture_page,
    count_captures, filter_choices,
)
from app.core.errors import InvalidInput
from app.core.models import CaptureReason, ReviewStatus
from app.ui.pages.base import Page, PageContext
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
# The date edits show "any" at their minimum: that value means "no bound".
NO_DATE = QDateTime.fromSecsSinceEpoch(0, QTimeZone.utc())


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


class ChoiceCombo(QComboBox):
    """A drop-down of (text, value) pairs; the values (datetimes, enums, None for "any")
    are kept here, in Python, typed, rather than converted into and out of Qt's item data.
    """

    def __init__(self, choices: Sequence[tuple[str, object]]) -> None:
        super().__init__()
        self.values: list[object] = []
        self.set_choices(choices)

    def set_choices(self, choices: Sequence[tuple[str, object]]) -> None:
        """Replace the choices, keeping the chosen value if it is still offered (silently:
        this is not the user choosing)."""
        kept = self.value()
        self.blockSignals(True)
        self.clear()
        self.values = [value for _, value in choices]
        self.addItems([text for text, _ in choices])
        self.setCurrentIndex(self.values.index(kept) if kept in self.values else 0)
        self.blockSignals(False)

    def value(self) -> Any:
        index = self.currentIndex()
        return self.values[index] if 0 <= index < len(self.values) else None


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


class DataPage(Page):
    """Filter the fleet's captures and scroll through their thumbnails."""

    title = "Data"
    page_size = PAGE_SIZE
    filter_delay_ms = 250  # typing in a spin box reloads once, after the pause

    def __init__(self, context: PageContext) -> None:
        super().__init__(context)
        self.thumbnails = ThumbnailLoader(context.project.blobs, parent=self)
        self.model = CapturesModel(context, self.thumbnails, self.page_size, parent=self)
        self._build_filters()
        self.grid = QListView()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setUniformItemSizes(True)  # layout never asks every row its size
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setIconSize(QSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        self.grid.setGridSize(QSize(THUMBNAIL_SIDE + 40, THUMBNAIL_SIDE + 30))
        self.grid.setWordWrap(False)
        self.grid.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.grid.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.grid.setItemDelegate(CaptureCellDelegate(self.grid))
        self.grid.setModel(self.model)
        self.grid.doubleClicked.connect(self._show_details)
        self.details = CaptureDetails(self.thumbnails)
        split = QSplitter()
        split.addWidget(self.grid)
        split.addWidget(self.details)
        split.setStretchFactor(0, 1)
        split.setSizes([740, 360])
        layout = QVBoxLayout(self)
        layout.addLayout(self.filter_bar)
        layout.addWidget(split, 1)
        self.model.rows_loaded.connect(self._update_count)
        self.model.total_changed.connect(self._update_count)
        self.model.failed.connect(lambda message: self.count_label.setText(
            "Could not load captures: see the message."))
        self.choices: FilterChoices | None = None

    def _build_filters(self) -> None:
        self.device_combo = ChoiceCombo([("All devices", None)])
        self.class_combo = ChoiceCombo([("Any class", None)])
        self.class_combo.setToolTip("The class the edge model predicted")
        self.reason_combo = ChoiceCombo([("Any reason", None), *(
            (words, reason) for reason, words in REASON_WORDS.items())])
        self.status_combo = ChoiceCombo(REVIEW_CHOICES)
        self.from_edit, self.to_edit = self._date_edit(), self._date_edit()
        self.min_confidence, self.max_confidence = self._confidence(0.0), self._confidence(1.0)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Show every capture again")
        self.reset_button.clicked.connect(self.reset_filters)
        self.count_label = QLabel("")
        self._apply_timer = QTimer(self)
        self._apply_timer.setSingleShot(True)
        self._apply_timer.setInterval(self.filter_delay_ms)
        self._apply_timer.timeout.connect(self.apply_filter)
        for combo in (self.device_combo, self.class_combo, self.reason_combo, self.status_combo):
            combo.setMinimumWidth(150)
            combo.currentIndexChanged.connect(self._apply_timer.start)
        for edit in (self.from_edit, self.to_edit):
            edit.dateTimeChanged.connect(self._apply_timer.start)
        for spin in (self.min_confidence, self.max_confidence):
            spin.valueChanged.connect(self._apply_timer.start)
        bar = QGridLayout()
        row0 = (("Device", self.device_combo), ("Class", self.class_combo),
                ("Reason", self.reason_combo), ("Review", self.status_combo))
        for column, (name, widget) in enumerate(row0):
            bar.addWidget(QLabel(name), 0, 2 * column)
            bar.addWidget(widget, 0, 2 * column + 1)
        confidence = QHBoxLayout()
        confidence.addWidget(self.min_confidence)
        confidence.addWidget(QLabel("to"))
        confidence.addWidget(self.max_confidence)
        bar.addWidget(QLabel("From"), 1, 0)
        bar.addWidget(self.from_edit, 1, 1)
        bar.addWidget(QLabel("To"), 1, 2)
        bar.addWidget(self.to_edit, 1, 3)
        bar.addWidget(QLabel("Confidence"), 1, 4)
        bar.addLayout(confidence, 1, 5)
        bar.addWidget(self.reset_button, 1, 6)
        bar.addWidget(self.count_label, 1, 7)
        bar.setColumnStretch(8, 1)
        self.filter_bar = bar

    @staticmethod
    def _date_edit() -> QDateTimeEdit:
        edit = QDateTimeEdit()
        edit.setTimeZone(QTimeZone.utc())
        edit.setDisplayFormat("yyyy-MM-dd HH:mm")
        edit.setCalendarPopup(True)
        edit.setMinimumDateTime(NO_DATE)
        edit.setSpecialValueText("any time")  # shown at the minimum, which means no bound
        edit.setDateTime(NO_DATE)
        edit.setToolTip("UTC; the lowest date means no bound")
        return edit

    @staticmethod
    def _confidence(value: float) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(0.0, 1.0)
        spin.setSingleStep(0.05)
        spin.setDecimals(2)
        spin.setValue(value)
        spin.setToolTip("The edge model's confidence; 0 to 1 shows every capture")
        return spin

    # -- filters ----------------------------------------------------------------------------
    def current_filter(self) -> CaptureFilter:
        """The filter the bar shows; raises InvalidInput for an empty range."""
        low, high = self.min_confidence.value(), self.max_confidence.value()
        return CaptureFilter(
            device_uid=self.device_combo.value(),
            captured_from=_as_utc(self.from_edit.dateTime()),
            captured_to=_as_utc(self.to_edit.dateTime()),
            reason=self.reason_combo.value(),
            edge_class=self.class_combo.value(),
            min_confidence=low if (low, high) != (0.0, 1.0) else None,
            max_confidence=high if (low, high) != (0.0, 1.0) else None,
            review_status=self.status_combo.value())

    def apply_filter(self) -> None:
        """Reload the grid for the bar's filter (an invalid range is explained instead)."""
        self._apply_timer.stop()
        try:
            wanted = self.current_filter()
        except InvalidInput as exc:
            self.count_label.setText(str(exc))
            return
        if wanted != self.model.filter:
            self.model.set_filter(wanted)

    def reset_filters(self) -> None:
        for combo in (self.device_combo, self.class_combo, self.reason_combo, self.status_combo):
            combo.setCurrentIndex(0)
        self.from_edit.setDateTime(NO_DATE)
        self.to_edit.setDateTime(NO_DATE)
        self.min_confidence.setValue(0.0)
        self.max_confidence.setValue(1.0)
        self.apply_filter()

    def refresh(self) -> None:
        """Reload the drop-downs' devices and classes, and the grid from the newest capture."""
        db = self.context.project.db

        def load_choices(progress, cancel):  # type: ignore[no-untyped-def]
            with db.read() as session:
                return filter_choices(session)

        self.context.tasks.run("Loading filters", load_choices).succeeded.connect(
            self._set_choices)
        self._apply_timer.stop()
        try:
            self.model.set_filter(self.current_filter())  # even if unchanged: new captures
        except InvalidInput as exc:
            self.count_label.setText(str(exc))

    def _set_choices(self, choices: FilterChoices) -> None:
        self.choices = choices
        self.device_combo.set_choices([("All devices", None),
                                       *((uid, uid) for uid in choices.devices)])
        self.class_combo.set_choices([("Any class", None),
                                      *((name, name) for name in choices.classes)])
        if self.model.filter is not None and self._valid_filter() != self.model.filter:
            self._apply_timer.start()  # a chosen device or class is gone: show all again

    def _valid_filter(self) -> CaptureFilter | None:
        try:
            return self.current_filter()
        except InvalidInput:
            return None

    def _update_count(self, *_: object) -> None:
        shown, total = len(self.model.rows), self.model.total
        if total is None:
            self.count_label.setText(f"{shown:,} shown, counting..." if shown else "Loading...")
        elif total.count == 0:
            self.count_label.setText("No capture matches")
        else:
            self.count_label.setText(f"{shown:,} of {total} captures")

    # -- details ----------------------------------------------------------------------------
    def _show_details(self, index: QModelIndex) -> None:
        row = self.model.row_at(index)
        if row is not None:
            self.details.show_capture(row)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.thumbnails.shutdown()
        super().closeEvent(event)


def _as_utc(value: QDateTime) -> datetime | None:
    """A date edit's value as an aware UTC datetime; None at the "any time" minimum."""
    if value == NO_DATE:
        return None
    return datetime.fromtimestamp(value.toSecsSinceEpoch(), timezone.utc)
