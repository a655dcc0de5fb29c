"""The Data page: a grid of captures with filters, fast on a million of them.

The filter bar builds a :class:`~app.core.capture_browser.CaptureFilter`; the grid is a
``QListView`` in icon mode over :class:`~app.ui.widgets.capture_grid.CapturesModel`, which loads keyset pages of
:func:`~app.core.capture_browser.capture_page` on the database lane when the view scrolls
near its end (``canFetchMore``/``fetchMore``), so opening the page reads one page however
many captures there are. Thumbnails are decoded only for the cells the view paints
(:mod:`app.ui.thumbnails`). Double-clicking a capture shows it larger beside the grid,
with what the device, the observer and the reviewers made of it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from PySide6.QtCore import QDateTime, QModelIndex, QSize, Qt, QTimer, QTimeZone
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDateTimeEdit, QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QListView, QPushButton,
    QSplitter, QVBoxLayout,
)

from app.core.capture_browser import PAGE_SIZE, CaptureFilter, FilterChoices, filter_choices
from app.core.errors import InvalidInput
from app.ui.pages.base import Page, PageContext
from app.ui.thumbnails import THUMBNAIL_SIDE, ThumbnailLoader
from app.ui.widgets.capture_grid import (
    REASON_WORDS, REVIEW_CHOICES, CaptureCellDelegate, CaptureDetails, CapturesModel,
)
from app.ui.widgets.choice_combo import ChoiceCombo

# The date edits show "any" at their minimum: that value means "no bound".
NO_DATE = QDateTime.fromSecsSinceEpoch(0, QTimeZone.utc())


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
