"""The Review page: the review queue the observer fills, one capture at a time, one key each.

The reviewer sees the capture large, what the edge model and the observer made of it side by
side, and why it is in the queue in words; then answers with one key:

    E or 1      accept the edge model's class          O or 2   accept the observer's class
    3 .. 9      the 3rd .. 9th class of the schema     /        search the class picker
                (1 and 2 answer E and O; the picker     Enter    (in the picker) that class
                reaches every class)
    S           skip: the item goes to the end of the queue (app.annotate.review)
    Backspace   back to the previous item (Ctrl+Z too), to change the answer: the new answer
                is a new label superseding the first

The walk itself (rows read a keyset page ahead on the database lane, the position, this
session's answers) is :class:`~app.annotate.widgets.review_walk.ReviewWalk`; this module is
what the reviewer sees and presses. An answer is optimistic: the next item shows at once,
from rows and images already fetched (the next :data:`PREFETCH` images are decoded ahead by
the thumbnail loader), and the write runs on the database lane behind it
(:func:`~app.annotate.review.decide_item`, :func:`~app.annotate.review.skip_item`). If the
write fails, the main window shows the task's failure as a dialog and the page puts the item
back on screen, unanswered.

Without the REVIEW permission the answer keys and buttons are disabled, with a tooltip that
says why; the services refuse anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QComboBox, QCompleter, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout,
)

from app.annotate.review import PAGE_SIZE, ReviewFilter, ReviewRow
from app.annotate.widgets.review_panels import (
    KIND_EXPLAINED, KIND_NAMES, CaptureImage, VerdictPanel,
)
from app.annotate.widgets.review_walk import SKIPPED, ReviewWalk
from app.core.capture_browser import FilterChoices, filter_choices
from app.core.roles import Permission
from app.ui.pages.base import Page, PageContext
from app.ui.thumbnails import ThumbnailLoader, ThumbnailState
from app.ui.widgets.capture_grid import REASON_WORDS
from app.ui.widgets.choice_combo import ChoiceCombo

IMAGE_SIDE = 640  # decoded at this side, drawn to fit the page
PREFETCH = 3
# A 640 px image is 1.6 MB as a pixmap: keep the shown one, those ahead and a few behind
# (Backspace), not the loader's default of 600 (sized for 96 px thumbnails).
IMAGES_KEPT = 32
CLASS_KEYS = range(3, 10)


class ReviewPage(Page):
    """Walk the open review items in queue order and answer each with one key."""

    title = "Review"
    icon_name = "review"
    page_size = PAGE_SIZE

    item_shown = Signal(object)  # the ReviewRow shown, or None when nothing is left
    answer_saved = Signal(int)  # capture id: its answer is committed
    answer_failed = Signal(int, str)  # capture id, message: it is back on screen

    def __init__(self, context: PageContext) -> None:
        super().__init__(context)
        self.may_review = context.actor.may(Permission.REVIEW)
        self.refused = (f"Your role ({context.actor.role.value}) may not review captures; "
                        "ask an admin for the annotator, engineer or admin role")
        self.thumbnails = ThumbnailLoader(context.project.blobs, capacity=IMAGES_KEPT,
                                          parent=self)
        self.thumbnails.loaded.connect(self._image_loaded)
        self.walk = ReviewWalk(context, self.page_size, parent=self)
        self.walk.moved.connect(self._show)
        self.walk.counts_changed.connect(self._show_counts)
        self.walk.saved.connect(self._saved)
        self.walk.failed.connect(self._put_back)
        self.walk.load_failed.connect(
            lambda message: self.status.setText(f"Could not load the queue: {message}"))
        self.classes: list[str] = []
        self._build_filters()
        self._build_item_view()
        self._build_actions()
        layout = QVBoxLayout(self)
        layout.addLayout(self.filter_bar)
        layout.addWidget(self.counts_label)
        layout.addLayout(self.item_view, 1)

    # -- building ---------------------------------------------------------------------------
    def _build_filters(self) -> None:
        self.device_combo = ChoiceCombo([("All devices", None)])
        self.kind_combo = ChoiceCombo([("Any kind", None),
                                       *((name, kind) for kind, name in KIND_NAMES.items())])
        self.kind_combo.setToolTip("Why the item is in the queue")
        self.reason_combo = ChoiceCombo([("Any reason", None), *(
            (words, reason) for reason, words in REASON_WORDS.items())])
        self.reason_combo.setToolTip("Why the device kept the frame")
        self.class_combo = ChoiceCombo([("Any class", None)])
        self.class_combo.setToolTip("The class the edge model or the observer predicted")
        bar = QHBoxLayout()
        for name, combo in (("Device", self.device_combo), ("Kind", self.kind_combo),
                            ("Reason", self.reason_combo), ("Class", self.class_combo)):
            combo.setMinimumWidth(130)
            combo.currentIndexChanged.connect(self.apply_filter)
            bar.addWidget(QLabel(name))
            bar.addWidget(combo)
        bar.addStretch(1)
        self.filter_bar = bar
        self.counts_label = QLabel("Loading the review queue...")

    def _build_item_view(self) -> None:
        self.image = CaptureImage()
        self.kind_label = QLabel("")
        self.kind_label.setWordWrap(True)
        font = self.kind_label.font()
        font.setBold(True)
        self.kind_label.setFont(font)
        self.answer_label = QLabel("")
        self.answer_label.setWordWrap(True)
        self.edge_panel = VerdictPanel("Edge model", "Accept edge (E)")
        self.observer_panel = VerdictPanel("Observer", "Accept observer (O)")
        panels = QHBoxLayout()
        panels.addWidget(self.edge_panel)
        panels.addWidget(self.observer_panel)
        self.class_picker = QComboBox()
        self.class_picker.setEditable(True)
        self.class_picker.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.class_picker.lineEdit().setPlaceholderText("another class: type to search")
        completer = QCompleter(self.class_picker.model(), self.class_picker)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.class_picker.setCompleter(completer)
        self.class_picker.lineEdit().returnPressed.connect(self.answer_picked)
        self.pick_button = QPushButton("Label as this class (Enter)")
        self.pick_button.clicked.connect(self.answer_picked)
        self.class_keys_label = QLabel("")
        self.class_keys_label.setWordWrap(True)
        self.skip_button = QPushButton("Skip (S)")
        self.back_button = QPushButton("Back (Backspace)")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.meta_label = QLabel("")
        self.meta_label.setWordWrap(True)
        self.meta_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        picker = QGridLayout()
        picker.addWidget(self.class_picker, 0, 0)
        picker.addWidget(self.pick_button, 0, 1)
        moves = QHBoxLayout()
        moves.addWidget(self.skip_button)
        moves.addWidget(self.back_button)
        moves.addStretch(1)
        side = QVBoxLayout()
        side.addWidget(self.kind_label)
        side.addWidget(self.meta_label)
        side.addWidget(self.answer_label)
        side.addLayout(panels)
        side.addLayout(picker)
        side.addLayout(moves)
        side.addWidget(self.class_keys_label)
        side.addWidget(self.status)
        side.addStretch(1)
        view = QHBoxLayout()
        view.addWidget(self.image, 6)
        view.addLayout(side, 5)
        self.item_view = view

    def _build_actions(self) -> None:
        """One action per key: a disabled action's key does nothing, so the permission and
        "nothing shown" both disable keys and buttons in one place."""
        def action(name: str, keys: list[str], slot: Callable[[], Any]) -> QAction:
            act = QAction(name, self)
            act.setShortcuts([QKeySequence(k) for k in keys])
            # The whole window while the page is shown: keys work whatever has the focus,
            # except in the class picker, whose line edit keeps the letters it is typed.
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        self.accept_edge_action = action("Accept edge", ["E", "1"], self.accept_edge)
        self.accept_observer_action = action("Accept observer", ["O", "2"], self.accept_observer)
        self.skip_action = action("Skip", ["S"], self.skip)
        self.back_action = action("Back", ["Backspace", QKeySequence(
            QKeySequence.StandardKey.Undo).toString()], self.back)
        self.search_action = action("Search classes", ["/"], self._focus_picker)
        self.class_actions = [action(f"Class {n}", [str(n)], self._class_key(n))
                              for n in CLASS_KEYS]
        self.edge_panel.accept_button.clicked.connect(self.accept_edge)
        self.observer_panel.accept_button.clicked.connect(self.accept_observer)
        self.skip_button.clicked.connect(self.skip)
        self.back_button.clicked.connect(self.back)
        self._update_controls()

    def _class_key(self, number: int) -> Callable[[], None]:
        return lambda: self.answer_class_number(number)

    # -- loading ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the drop-downs and the classes, and the queue from its top."""
        db = self.context.project.db

        def load_choices(progress, cancel):  # type: ignore[no-untyped-def]
            with db.read() as session:
                return filter_choices(session)

        self.context.tasks.run("Loading review filters", load_choices).succeeded.connect(
            self._set_choices)
        self.reload()

    def _set_choices(self, choices: FilterChoices) -> None:
        self.device_combo.set_choices([("All devices", None),
                                       *((uid, uid) for uid in choices.devices)])
        self.class_combo.set_choices([("Any class", None),
                                      *((name, name) for name in choices.classes)])
        self.classes = list(choices.classes)
        self.class_picker.clear()
        self.class_picker.addItems(self.classes)
        self.class_picker.setCurrentIndex(-1)
        keys = ["E or 1: the edge model's class", "O or 2: the observer's", *(
            f"{n}: {self.classes[n - 1]}" for n in CLASS_KEYS if n <= len(self.classes)),
            "/: search the classes", "S: skip", "Backspace: back"]
        # No break inside one key's words: the legend wraps between keys only.
        self.class_keys_label.setText("Keys:   " + "   ·   ".join(
            key.replace(" ", "\u00a0") for key in keys))
        self._update_controls()
        self.apply_filter()  # a chosen device or class may be gone: show the whole queue

    def current_filter(self) -> ReviewFilter:
        return ReviewFilter(device_uid=self.device_combo.value(), kind=self.kind_combo.value(),
                            capture_reason=self.reason_combo.value(),
                            class_name=self.class_combo.value())

    def apply_filter(self) -> None:
        if self.current_filter() != self.walk.filter:
            self.reload()

    def reload(self) -> None:
        """Walk the queue again from its top, for the bar's filter."""
        self.counts_label.setText("Loading the review queue...")
        self.walk.start(self.current_filter())

    def _show_counts(self) -> None:
        counts = self.walk.counts
        if counts is None:
            return
        parts = [f"{name} {counts.by_kind[kind]:,}" for kind, name in KIND_NAMES.items()]
        self.counts_label.setText(
            f"{counts.waiting:,} waiting:  " + "  ·  ".join(parts)
            + f"      {counts.skipped:,} skipped (they come back at the end)")

    # -- showing ----------------------------------------------------------------------------
    def current_row(self) -> ReviewRow | None:
        return self.walk.current()

    def _show(self) -> None:
        row = self.current_row()
        if row is None:
            self._show_nothing()
        else:
            self.edge_panel.show_verdict(row.edge_class, row.edge_confidence, row.edge_model)
            self.observer_panel.show_verdict(row.observer_class, row.observer_confidence,
                                             row.observer_model)
            self.kind_label.setText(KIND_EXPLAINED[row.kind])
            self.answer_label.setText(self._answer_words(row))
            self.meta_label.setText(
                f"Capture #{row.capture_id} ({row.device_capture_id}) from {row.device_uid}, "
                f"{row.captured_at:%Y-%m-%d %H:%M:%S} UTC, kept as "
                f"{REASON_WORDS.get(row.capture_reason, row.capture_reason.value).lower()}. "
                f"Priority {row.priority:.2f}.")
            self._prefetch()  # before the current image: the loader decodes newest first
            self._show_image()
        self._update_controls()
        self.item_shown.emit(row)

    def _show_nothing(self) -> None:
        self.edge_panel.clear()
        self.observer_panel.clear()
        self.kind_label.setText("")
        self.answer_label.setText("")
        self.meta_label.setText("")
        self.image.setPixmap(self.thumbnails.placeholder(IMAGE_SIDE))
        if self.walk.loading:
            self.image.setText("Loading...")
        elif self.walk.rows:
            self.image.setText("You are through the queue (for this filter). Items skipped "
                               "before come back when the page is reloaded (F5).")
        else:
            self.image.setText("Nothing to review: no open review item matches the filter.")

    def _answer_words(self, row: ReviewRow) -> str:
        answered, answer = self.walk.answer_of(row)
        if answered:
            state = "saving..." if row.item_id in self.walk.pending else "saved"
            done = "You skipped it" if answer is SKIPPED else f"You labeled it {answer}"
            return f"{done} ({state}); press a key to change that."
        return "Skipped earlier; it came back at the end of the queue." if row.skipped else ""

    def _show_image(self) -> None:
        row = self.current_row()
        if row is None:
            return
        self.image.setPixmap(self.thumbnails.pixmap(row.blob_sha256, IMAGE_SIDE))
        broken = self.thumbnails.state(row.blob_sha256, IMAGE_SIDE) is ThumbnailState.BROKEN
        self.image.setToolTip(f"The image (blob {row.blob_sha256}) cannot be read; `edgeloop "
                              "blobs verify` checks the store" if broken
                              else f"blob {row.blob_sha256}")

    def _prefetch(self) -> None:
        """Ask for the next images, farthest first: the loader decodes the newest request
        first, so the nearer ones come sooner (the walk reads rows ahead itself)."""
        for row in reversed(self.walk.ahead(PREFETCH)):
            self.thumbnails.pixmap(row.blob_sha256, IMAGE_SIDE)

    def _image_loaded(self, sha256: str, side: int) -> None:
        row = self.current_row()
        if row is not None and (sha256, side) == (row.blob_sha256, IMAGE_SIDE):
            self._show_image()

    def _update_controls(self) -> None:
        shown = self.current_row() is not None
        answering = [self.accept_edge_action, self.accept_observer_action, self.skip_action,
                     *self.class_actions]
        for act in answering:
            act.setEnabled(self.may_review and shown)
        for n, act in zip(CLASS_KEYS, self.class_actions):
            if n > len(self.classes):
                act.setEnabled(False)
        self.accept_edge_action.setEnabled(self.accept_edge_action.isEnabled()
                                           and self.edge_panel.class_name is not None)
        self.accept_observer_action.setEnabled(self.accept_observer_action.isEnabled()
                                               and self.observer_panel.class_name is not None)
        self.back_action.setEnabled(self.walk.position > 0)
        buttons = ((self.edge_panel.accept_button, self.accept_edge_action,
                    "Label the capture with the edge model's class (E or 1)"),
                   (self.observer_panel.accept_button, self.accept_observer_action,
                    "Label the capture with the observer's class (O or 2)"),
                   (self.skip_button, self.skip_action,
                    "Leave it for later: it goes to the end of the queue (S)"),
                   (self.pick_button, None, "Label the capture with the class picked (Enter)"))
        for button, act, tip in buttons:
            button.setEnabled(self.may_review and shown if act is None else act.isEnabled())
            button.setToolTip(tip if self.may_review else self.refused)
        self.class_picker.setEnabled(self.may_review)
        self.class_picker.setToolTip("Type to search the classes; Enter labels the capture"
                                     if self.may_review else self.refused)
        self.back_button.setEnabled(self.back_action.isEnabled())
        self.back_button.setToolTip("Back to the previous item, to change its answer "
                                    "(Backspace or Ctrl+Z)")

    # -- answering --------------------------------------------------------------------------
    def accept_edge(self) -> None:
        self.answer(self.edge_panel.class_name)

    def accept_observer(self) -> None:
        self.answer(self.observer_panel.class_name)

    def answer_class_number(self, number: int) -> None:
        """The ``number``-th class of the schema (keys 3..9)."""
        if 1 <= number <= len(self.classes):
            self.answer(self.classes[number - 1])

    def answer_picked(self) -> None:
        """The class typed or chosen in the picker: an exact name, or the one class whose
        name contains what was typed."""
        typed = self.class_picker.currentText().strip().lower()
        matches = [c for c in self.classes if c.lower() == typed] or [
            c for c in self.classes if typed and typed in c.lower()]
        if len(matches) != 1:
            self.status.setText(f"No class is called {typed!r}" if not matches else
                                f"{typed!r} could be {', '.join(matches)}: type more")
            return
        self.class_picker.setCurrentIndex(-1)
        self.class_picker.clearEditText()
        self.setFocus()  # the answer keys work again
        self.answer(matches[0])

    def answer(self, class_name: str | None) -> None:
        """Label the shown capture ``class_name`` and show the next item at once; the label
        is written on the database lane behind it."""
        if self.may_review and class_name is not None:
            self.status.setText("")
            self.walk.label(class_name)

    def skip(self) -> None:
        """Skip the shown item (to the end of the queue). An item already answered or skipped
        is left as it is: S then only moves on."""
        if self.may_review:
            self.status.setText("")
            self.walk.skip()

    def back(self) -> None:
        """Show the previous item again, with the answer it got."""
        if self.walk.position > 0:
            self.status.setText("")
            self.walk.move(self.walk.position - 1)

    def _saved(self, row: ReviewRow) -> None:
        if self.current_row() is not None and self.current_row().item_id == row.item_id:
            self.answer_label.setText(self._answer_words(row))
        self.answer_saved.emit(row.capture_id)

    def _put_back(self, row: ReviewRow, message: str) -> None:
        """An answer was not saved (the main window shows the task's failure as a dialog);
        the walk is back on its item."""
        self.status.setText(f"Capture {row.capture_id} was not saved: {message}")
        self.answer_failed.emit(row.capture_id, message)

    def _focus_picker(self) -> None:
        if self.class_picker.isEnabled():
            self.class_picker.setFocus()
            self.class_picker.lineEdit().selectAll()

    # -- Qt events --------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self.setFocus()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.thumbnails.shutdown()
        super().closeEvent(event)

