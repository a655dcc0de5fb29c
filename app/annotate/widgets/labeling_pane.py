"""The Label page: walk the labeling queue and label each capture by keyboard and mouse.

Left, the capture on the box canvas (canvas.py); right, the searchable class list
(class_list.py), the capture's metadata and the model-assisted pre-label
(labeling_panels.py), and Previous / Next / Undo / Redo. Which captures, and what is read
ahead of the one shown, is the walk's business (labeling_walk.py).

Keys (anywhere on the page): 1-9 set the capture's class (and the selected box's); Enter
confirms the pre-label if nothing was changed (source MODEL_ASSISTED), else saves the label
(source HUMAN), and goes to the next capture; Right / PageDown next, Left / PageUp previous;
Ctrl+Z undo, Ctrl+Shift+Z or Ctrl+Y redo; Delete removes the selected box. On the canvas:
drag to draw, + / - / Ctrl+wheel zoom, 0 / F fit, middle-drag or Space+drag pan.

Every edit is a :class:`~app.annotate.widgets.label_commands.LabelEdit` on one undo stack
for the whole session, so undo after "Next" goes back and undoes on the previous capture.
Labels are saved by :class:`~app.annotate.widgets.label_saver.LabelSaver`: on moving on, on
Enter, a second after the last edit, and when the window closes; "Saved" appears only once
the save has committed.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent, QFont, QKeySequence, QShortcut, QShowEvent, QUndoStack
from PySide6.QtWidgets import (
    QComboBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget,
)

from app.annotate.canvas_geometry import Box
from app.annotate.capture_card import CaptureCard
from app.annotate.label_document import (
    LabelDocument, from_label, from_prelabel, with_box, with_box_changed, with_class, without_box,
)
from app.annotate.widgets.canvas import BoxCanvas
from app.annotate.widgets.canvas_render import class_colours
from app.annotate.widgets.class_list import NUMBER_KEYS, ClassList
from app.annotate.widgets.label_commands import LabelEdit
from app.annotate.widgets.label_saver import LabelSaver, SaveState
from app.annotate.widgets.labeling_panels import CaptureDetails, PrelabelPanel
from app.annotate.widgets.labeling_walk import LabelingWalk
from app.core.models import ReviewStatus
from app.core.roles import Permission
from app.ui.pages.base import Page, PageContext

SIDE_WIDTH = 290
WALKS = {"To label": ReviewStatus.UNREVIEWED, "Labeled (check again)": ReviewStatus.REVIEWED,
         "Skipped in review": ReviewStatus.SKIPPED}
STATE_COLOURS = {SaveState.SAVED: "#1a7f37", SaveState.UNSAVED: "#bc4c00",
                 SaveState.SAVING: "#bc4c00", SaveState.FAILED: "#cf222e"}
KEYS_HINT = ("1-9 class  \u00b7  Enter save & next  \u00b7  \u2190/\u2192 previous/next  \u00b7  "
             "drag: box  \u00b7  Del delete  \u00b7  Ctrl+Z undo  \u00b7  Ctrl+wheel zoom  "
             "\u00b7  F fit")


class LabelingPage(Page):
    """Label the captures of the labeling queue, one after another."""

    title = "Label"
    icon_name = "label"

    shown_capture = Signal(int)  # a capture's card is on screen (its image may follow)

    def __init__(self, context: PageContext) -> None:
        super().__init__(context)
        self.may_annotate = context.actor.may(Permission.ANNOTATE)
        self.undo_stack = QUndoStack(self)
        self.walk = LabelingWalk(context, parent=self)
        self.walk.grown.connect(self._walk_grown)
        self.walk.classes_read.connect(self._set_classes)
        self.walk.cards_arrived.connect(self._cards_arrived)
        self.walk.images.ready.connect(self._image_ready)
        self._image_sizes: dict[int, tuple[int, int]] = {}  # of the captures shown
        self.saver = LabelSaver(context, image_size=self._image_sizes.get, parent=self)
        self.saver.state_changed.connect(self._save_state_changed)
        self.saver.saved.connect(self._count_saved)
        self.saver.withdrawn.connect(self._label_withdrawn)
        self.documents: dict[int, LabelDocument] = {}  # the label of each capture seen
        self.classes: tuple[str, ...] = ()
        self.saved_count = 0

        self.canvas = BoxCanvas()
        self.canvas.editable = self.may_annotate
        self.canvas.box_drawn.connect(self._box_drawn)
        self.canvas.box_changed.connect(self._box_changed)
        self.class_list = ClassList()
        self.class_list.picked.connect(self.pick_class)
        self._build()
        self._bind_keys()

    # -- building ---------------------------------------------------------------------------
    def _build(self) -> None:
        self.heading = QLabel("")
        font = QFont(self.heading.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.heading.setFont(font)
        # Long texts must not widen the page: they are cut, the canvas keeps its room.
        self.heading.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.walk_combo = QComboBox()
        for text, status in WALKS.items():
            self.walk_combo.addItem(text, status)
        self.walk_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.walk_combo.setToolTip("Which captures to walk: the ones still to label, the ones "
                                   "labeled already (to check them, or to give a second "
                                   "opinion), or the ones skipped in review")
        self.walk_combo.currentIndexChanged.connect(
            lambda _: self.set_walk(self.walk_combo.currentData()))
        self.where = QLabel("")
        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(self.walk_combo)
        top.addWidget(self.where)
        hint = QLabel(KEYS_HINT)
        hint.setStyleSheet("color: palette(placeholder-text);")
        hint.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        left = QVBoxLayout()
        left.addLayout(top)
        left.addWidget(self.canvas, 1)
        left.addWidget(hint)

        classes = QGroupBox("Classes")
        QVBoxLayout(classes).addWidget(self.class_list)
        self.details = CaptureDetails()
        self.confirm_button = self._button(
            "Confirm pre-label", self.confirm_prelabel,
            "Save the model's pre-label as this capture's label (Enter does it when you "
            "changed nothing)")
        self.prelabel_panel = PrelabelPanel(self.confirm_button)
        self.previous_button = self._button("Previous", self.go_previous,
                                            "The previous capture (Left, PageUp)", editing=False)
        self.next_button = self._button("Next", self.go_next,
                                        "The next capture (Right, PageDown)", editing=False)
        self.undo_button = self._button("Undo", self.undo_stack.undo,
                                        "Undo (Ctrl+Z), across captures")
        self.redo_button = self._button("Redo", self.undo_stack.redo, "Redo (Ctrl+Shift+Z)")
        for button, can in ((self.undo_button, self.undo_stack.canUndoChanged),
                            (self.redo_button, self.undo_stack.canRedoChanged)):
            button.setEnabled(False)
            if self.may_annotate:
                can.connect(button.setEnabled)
        self.status = QLabel("")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        side = QWidget()
        side.setFixedWidth(SIDE_WIDTH)
        right = QVBoxLayout(side)
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(classes, 1)
        right.addWidget(self.details)
        right.addWidget(self.prelabel_panel)
        for pair in ((self.previous_button, self.next_button),
                     (self.undo_button, self.redo_button)):
            row = QHBoxLayout()
            for button in pair:
                row.addWidget(button)
            right.addLayout(row)
        right.addWidget(self.status)

        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addWidget(side)

    def _button(self, text: str, slot, tip: str, editing: bool = True) -> QPushButton:  # type: ignore[no-untyped-def]
        button = QPushButton(text)
        # The keys go to the page, not to a focused button: focus stays on the canvas.
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        button.clicked.connect(slot)
        if editing and not self.may_annotate:
            button.setEnabled(False)
            button.setToolTip(f"Your role ({self.context.actor.role.value}) may not label "
                              "captures")
        else:
            button.setToolTip(tip)
        return button

    def _bind_keys(self) -> None:
        def bind(keys: tuple[str, ...], slot) -> None:  # type: ignore[no-untyped-def]
            for key in keys:
                shortcut = QShortcut(QKeySequence(key), self)
                # Anywhere on this page, not on other pages of the window.
                shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                shortcut.activated.connect(slot)

        for number in range(1, NUMBER_KEYS + 1):
            bind((str(number),), lambda n=number: self.pick_class_by_key(n))
        bind(("Return", "Enter"), self.confirm_or_save)
        bind(("Right", "PgDown"), self.go_next)
        bind(("Left", "PgUp"), self.go_previous)
        bind(("Ctrl+Z",), self.undo_stack.undo)
        bind(("Ctrl+Shift+Z", "Ctrl+Y"), self.undo_stack.redo)
        bind(("Delete", "Backspace"), self.delete_selected)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(1100, 700)

    # -- the walk ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the queue (the first time; later more of it, as the walk needs)."""
        self.walk.read_more()

    def set_walk(self, status: ReviewStatus) -> None:
        """Walk the captures of another review status, from the newest. Labels not saved
        yet are saved first; the undo history is cleared (it would undo on captures this
        walk does not show)."""
        if status == self.walk.status:
            return
        self.saver.flush()
        self.undo_stack.clear()
        self.walk.set_status(status)
        self._show_card()

    @property
    def current_capture(self) -> int | None:
        return self.walk.current

    @property
    def current_card(self) -> CaptureCard | None:
        return self.walk.current_card

    @property
    def current_document(self) -> LabelDocument | None:
        current = self.walk.current
        return self.documents.get(current) if current is not None else None

    def go_next(self) -> None:
        """The next capture (the label shown is saved first if it changed)."""
        if not self.walk.at_end:
            self.show_position(self.walk.position + 1)
        else:
            self.saver.flush(self.current_capture)
            self.status.setText("That was the last capture of the queue. " + self._state_text())
            self.walk.read_more()  # captures pulled meanwhile join the walk; Next shows them

    def go_previous(self) -> None:
        """The previous capture (the label shown is saved first if it changed)."""
        if self.walk.position > 0:
            self.show_position(self.walk.position - 1)

    def show_capture(self, capture_id: int) -> None:
        """Show capture ``capture_id`` of the walk (undo across captures comes here)."""
        if capture_id in self.walk.ids and capture_id != self.current_capture:
            self.show_position(self.walk.ids.index(capture_id))

    def show_position(self, position: int) -> None:
        """Show the ``position``-th capture of the walk (-1: none)."""
        leaving = self.current_capture
        if leaving is not None:
            self.saver.flush(leaving)
        self.walk.move_to(position)
        self._show_card()

    def _walk_grown(self) -> None:
        if self.walk.position < 0 and self.walk.ids:
            self.show_position(0)
        elif self.current_capture is None:
            self._show_card()  # "no capture here" instead of "reading the queue"
        else:
            self._update_where()

    def _set_classes(self, names: tuple[str, ...]) -> None:
        if names != self.classes:
            self.classes = names
            colours = class_colours(names)
            self.class_list.set_classes(names, colours)
            self.canvas.set_classes(colours)

    def _cards_arrived(self, cards: dict[int, CaptureCard]) -> None:
        for cid, card in cards.items():
            if cid in self.documents:
                continue  # edited this session: the pane's version is the newer
            if card.own_label is not None:
                doc = from_label(card.own_label)
            elif card.prelabel is not None:
                doc = from_prelabel(card.prelabel)
            else:
                doc = LabelDocument()
            self.documents[cid] = doc
            self.saver.loaded(cid, doc, saved=card.own_label is not None)
        if self.current_capture in cards:
            self._show_card()

    def _image_ready(self, sha256: str) -> None:
        card = self.current_card
        if card is not None and card.blob_sha256 == sha256:
            self._show_image(card)

    # -- showing ----------------------------------------------------------------------------
    def _show_card(self) -> None:
        card, doc = self.current_card, self.current_document
        self._update_where()
        if self.current_capture is None:
            loading = self.walk.loading or not self.walk.loaded
            self.heading.setText("Loading..." if loading else "Nothing to label")
            self.canvas.set_image(None, "Reading the queue..." if loading else
                                  f"No capture here ({self.walk_combo.currentText().lower()}).")
            self.canvas.set_boxes(())
            card = None
        elif card is None or doc is None:
            self.heading.setText("Loading...")
            self.canvas.set_image(None, "Loading the capture...")
            self.canvas.set_boxes(())
            return
        else:
            self._show_image(card)
            self._show_document(doc)
        self.details.show_card(card)
        self.prelabel_panel.show_card(card)
        self.confirm_button.setEnabled(self.may_annotate and card is not None
                                       and card.prelabel is not None)
        if card is not None:
            self.shown_capture.emit(card.capture_id)

    def _show_image(self, card: CaptureCard) -> None:
        images = self.walk.images
        if not images.has(card.blob_sha256):
            self.canvas.set_image(None, "Loading the image...")
            images.want(card.blob_sha256)
            return
        image = images.get(card.blob_sha256)
        if image is not None:
            self._image_sizes[card.capture_id] = (image.width(), image.height())
        self.canvas.set_image(image, "" if image is not None else
                              "This capture's image cannot be read (its blob is missing or is "
                              "not an image): label another, and run `edgeloop blobs verify`.")

    def _show_document(self, doc: LabelDocument, selected: int | None = None) -> None:
        self.canvas.current_class = doc.class_name or (self.classes[0] if self.classes else "")
        self.canvas.set_boxes(doc.boxes, selected)
        self.class_list.show_current(doc.class_name)
        card = self.current_card
        if doc.class_name is None:
            self.heading.setText("Class: none yet (press 1-9)")
        elif doc.untouched_prelabel and card is not None and card.prelabel_from:
            self.heading.setText(f"Class: {doc.class_name} \u00b7 pre-label ({card.prelabel_from})")
        else:
            self.heading.setText(f"Class: {doc.class_name}")
        self._save_state_changed(self.current_capture or -1)

    def _update_where(self) -> None:
        ids = self.walk.ids
        self.where.setText(f"{self.walk.position + 1} of {len(ids)}  \u00b7  {self.saved_count} "
                           "saved this session" if ids else "")

    # -- edits ------------------------------------------------------------------------------
    def _edit(self, after: LabelDocument, text: str, selected_after: int | None = None) -> None:
        cid, before = self.current_capture, self.current_document
        if cid is None or before is None:
            self.status.setText("Wait for the capture to load.")
            return
        if not self.may_annotate:
            self.status.setText(f"Your role ({self.context.actor.role.value}) may not label "
                                "captures.")
            return
        if after != before:
            self.undo_stack.push(LabelEdit(self._apply, cid, before, after, text,
                                           selected_before=self.canvas.selected,
                                           selected_after=selected_after))

    def _apply(self, capture_id: int, doc: LabelDocument, selected: int | None) -> None:
        """What an edit, its undo or its redo does: that capture shown, with ``doc``."""
        if capture_id != self.current_capture:
            self.show_capture(capture_id)
        self.documents[capture_id] = doc
        if capture_id == self.current_capture:
            self._show_document(doc, selected)
        self.saver.edited(capture_id, doc)

    def pick_class(self, name: str) -> None:
        """Set the capture's class, and the selected box's (number keys, the class list)."""
        doc = self.current_document
        if doc is None or name not in self.classes:
            return
        selected = self.canvas.selected
        self._edit(with_class(doc, name, selected), f"class {name}", selected)
        self.canvas.setFocus()

    def pick_class_by_key(self, number: int) -> None:
        name = self.class_list.class_for_key(number)
        if name is not None:
            self.pick_class(name)

    def delete_selected(self) -> None:
        """Remove the selected box (Delete)."""
        doc, selected = self.current_document, self.canvas.selected
        if doc is not None and selected is not None and selected < len(doc.boxes):
            self._edit(without_box(doc, selected), f"delete {doc.boxes[selected].class_name} box")

    def _box_drawn(self, box: Box) -> None:
        doc = self.current_document
        if doc is not None:
            self._edit(with_box(doc, box), f"draw {box.class_name} box", len(doc.boxes))

    def _box_changed(self, index: int, box: Box) -> None:
        doc = self.current_document
        if doc is not None and index < len(doc.boxes):
            self._edit(with_box_changed(doc, index, box), f"change {box.class_name} box", index)

    def confirm_or_save(self) -> None:
        """Enter: confirm the untouched pre-label, or save the label; then the next capture."""
        cid, doc = self.current_capture, self.current_document
        if cid is None or doc is None:
            return
        if not self.may_annotate:
            self.go_next()
            return
        if doc.empty:
            self.status.setText("Nothing to save yet: pick a class (1-9) or draw a box; "
                                "Right skips this capture.")
            return
        self.saver.save(cid, doc)
        self.go_next()

    def confirm_prelabel(self) -> None:
        """Make the model's pre-label this capture's label (source MODEL_ASSISTED), next."""
        cid, card = self.current_capture, self.current_card
        if cid is None or card is None or card.prelabel is None or not self.may_annotate:
            return
        doc = from_prelabel(card.prelabel)
        if doc != self.current_document:
            self._edit(doc, "back to the pre-label")
        self.saver.save(cid, doc)
        self.go_next()

    # -- saving -----------------------------------------------------------------------------
    def _state_text(self) -> str:
        cid = self.current_capture
        if cid is None:
            return ""
        state = self.saver.state(cid)
        if state is SaveState.FAILED:
            return f"Not saved: {self.saver.failure(cid)}"
        return state.value

    def _save_state_changed(self, capture_id: int) -> None:
        if capture_id == self.current_capture:
            colour = STATE_COLOURS.get(self.saver.state(capture_id), "palette(text)")
            self.status.setText(self._state_text())
            self.status.setStyleSheet(f"color: {colour}; font-weight: bold;")

    def _count_saved(self, capture_id: int, annotation_id: int) -> None:
        self.saved_count += 1
        self._card_status(capture_id, ReviewStatus.REVIEWED)
        self._update_where()

    def _label_withdrawn(self, capture_id: int) -> None:
        # Without another annotator's label the capture is unreviewed again.
        self._card_status(capture_id, ReviewStatus.UNREVIEWED)

    def _card_status(self, capture_id: int, status: ReviewStatus) -> None:
        """What a save or a withdrawal did to the capture, without reading it again."""
        card = self.walk.cards.get(capture_id)
        if card is not None:
            card = self.walk.cards[capture_id] = replace(card, review_status=status)
            if capture_id == self.current_capture:
                self.details.show_card(card)

    # -- lifetime ---------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        self.canvas.setFocus()
    def hideEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802
        # Leaving the page is moving on too.
        self.saver.flush()
        super().hideEvent(event)

    def before_close(self) -> None:
        # The main window calls this before it stops the task runner: the last edits are
        # saved while the database lane still runs.
        self._closing()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self._closing()
        super().closeEvent(event)

    def _closing(self) -> None:
        self.saver.save_pending_now()
        self.walk.shutdown()  # the image workers end with the window
