"""Autosave of the labeling pane: each capture's label saved on the database lane.

The pane tells the saver what each capture's label is after every edit
(:meth:`LabelSaver.edited`); the saver saves it one second after the last edit, or at once
when the pane asks (moving to another capture, confirming). Each save is
:func:`app.annotate.labeling.save_label`, run through the task runner's database lane, and
is durable when it returns (committed). Only then does the saver call the label saved and
emit ``saved``: nothing the pane shows as "Saved" can be lost when the process dies.

What is not saved by itself: an empty label (no class, no box: there is nothing to record)
and a pre-label nobody touched (the model's words are not the person's until confirmed with
Enter, which saves it with source MODEL_ASSISTED through :meth:`LabelSaver.save`). If an undo
brings a capture whose label was saved back to one of those, the saved label is withdrawn
(:func:`~app.annotate.labeling.withdraw_label`) the same way a label is saved, so what the
database holds is always what the pane shows.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from app.annotate.label_document import LabelDocument
from app.annotate.labeling import save_label, withdraw_label
from app.core.errors import EdgeLoopError
from app.ui.pages.base import PageContext

log = logging.getLogger(__name__)

AUTOSAVE_DELAY_MS = 1000


class SaveState(str, enum.Enum):
    """Where one capture's label stands, as the pane's status line says it."""

    NOTHING = "Not labeled yet"
    PRELABEL = "Pre-label not confirmed (Enter confirms it)"
    UNSAVED = "Unsaved changes"
    SAVING = "Saving..."
    SAVED = "Saved"
    FAILED = "Not saved"


class LabelSaver(QObject):
    """Saves the labels the pane edits; ``saved`` (capture id, annotation id) after each
    committed save, ``withdrawn`` (capture id) after a saved label was taken back,
    ``state_changed`` (capture id) when a capture's state may have moved."""

    saved = Signal(int, int)
    withdrawn = Signal(int)  # capture id: its saved label was taken back
    state_changed = Signal(int)

    def __init__(self, context: PageContext, *, delay_ms: int = AUTOSAVE_DELAY_MS,
                 image_size: Callable[[int], tuple[int, int] | None] = lambda _: None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = context
        # The capture's image size where known: the save then checks the boxes against it.
        self.image_size = image_size
        self._latest: dict[int, LabelDocument] = {}  # the label as the pane holds it now
        self._saved: dict[int, LabelDocument] = {}  # the label the database holds
        self._sent: dict[int, LabelDocument] = {}  # the last label handed to a save task
        self._in_flight: dict[int, int] = {}  # saves under way per capture
        self._failed: dict[int, str] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.flush)

    def loaded(self, capture_id: int, doc: LabelDocument, saved: bool) -> None:
        """A capture's label as first read: ``saved`` when it is the annotator's own from the
        database."""
        self._latest[capture_id] = doc
        if saved:
            self._saved[capture_id] = self._sent[capture_id] = doc

    def edited(self, capture_id: int, doc: LabelDocument) -> None:
        """The capture's label after an edit (or an undo); saved in a second unless edited
        again first."""
        self._latest[capture_id] = doc
        self._failed.pop(capture_id, None)
        self._timer.start()
        self.state_changed.emit(capture_id)

    def flush(self, capture_id: int | None = None) -> None:
        """Save now what needs saving: of ``capture_id``, or of every capture (None)."""
        ids = [capture_id] if capture_id is not None else list(self._latest)
        for cid in ids:
            doc = self._latest.get(cid)
            if doc is None:
                continue
            if self._wants_save(cid, doc):
                self._start(cid, doc)
            elif self._wants_withdraw(cid, doc):
                self._start_withdraw(cid)

    def save(self, capture_id: int, doc: LabelDocument) -> bool:
        """Save ``doc`` now, a confirmed pre-label included; False if there was nothing to
        save (empty, or the very label saved already)."""
        self._latest[capture_id] = doc
        sent = self._sent.get(capture_id)
        if doc.empty or (sent is not None and doc.same_label(sent) and doc.source is sent.source
                         and capture_id not in self._failed):
            self.state_changed.emit(capture_id)
            return False
        self._start(capture_id, doc)
        return True

    def save_pending_now(self) -> None:
        """Save what still needs saving here and now, on the calling (main) thread.

        For the window closing: the task runner stops taking work then, and an edit made in
        the last second would otherwise be lost. Normally one label, a few milliseconds. A
        save that fails is logged (the window is going away; there is no one to tell).
        """
        self._timer.stop()
        project, actor = self.context.project, self.context.actor
        for capture_id, doc in list(self._latest.items()):
            try:
                if self._wants_save(capture_id, doc):
                    annotation_id = save_label(project.db, project.audit, actor, capture_id,
                                               doc.to_draft(), source=doc.source,
                                               image_size=self.image_size(capture_id))
                    self._saved[capture_id] = self._sent[capture_id] = doc
                    self.saved.emit(capture_id, annotation_id)
                elif self._wants_withdraw(capture_id, doc):
                    withdraw_label(project.db, project.audit, actor, capture_id)
                    self._saved.pop(capture_id, None)
                    self._sent.pop(capture_id, None)
                    self.withdrawn.emit(capture_id)
            except EdgeLoopError:
                log.warning("the label of capture %s could not be saved at close", capture_id,
                            exc_info=True)

    def _wants_save(self, capture_id: int, doc: LabelDocument) -> bool:
        if doc.empty or doc.untouched_prelabel:
            return False
        return capture_id in self._failed or not doc.same_label(self._sent.get(capture_id))

    def _wants_withdraw(self, capture_id: int, doc: LabelDocument) -> bool:
        # Back to nothing, or to the unconfirmed pre-label, over a label saved as the
        # person's: take it back. A confirmed pre-label is itself an untouched pre-label.
        sent = self._sent.get(capture_id)
        if sent is None or sent.empty:
            return False
        return doc.empty or (doc.untouched_prelabel and not sent.untouched_prelabel)

    def _start_withdraw(self, capture_id: int) -> None:
        project, actor = self.context.project, self.context.actor
        self._sent.pop(capture_id, None)
        self._failed.pop(capture_id, None)
        self._in_flight[capture_id] = self._in_flight.get(capture_id, 0) + 1
        task = self.context.tasks.run(
            f"Withdrawing the label of capture {capture_id}",
            lambda progress, cancel: withdraw_label(project.db, project.audit, actor, capture_id),
            background=True)
        task.succeeded.connect(lambda _: self._withdrawn(capture_id))
        task.failed.connect(lambda message: self._fail(capture_id, message))
        task.cancelled.connect(lambda: self._fail(capture_id, "cancelled"))
        self.state_changed.emit(capture_id)

    def _withdrawn(self, capture_id: int) -> None:
        self._in_flight[capture_id] -= 1
        self._saved.pop(capture_id, None)
        self.state_changed.emit(capture_id)
        self.withdrawn.emit(capture_id)

    def _start(self, capture_id: int, doc: LabelDocument) -> None:
        project, actor = self.context.project, self.context.actor
        draft, source, size = doc.to_draft(), doc.source, self.image_size(capture_id)
        self._sent[capture_id] = doc
        self._failed.pop(capture_id, None)
        self._in_flight[capture_id] = self._in_flight.get(capture_id, 0) + 1

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            return save_label(project.db, project.audit, actor, capture_id, draft,
                              source=source, image_size=size)

        # In the background: a label saved every few seconds must not flash the status bar;
        # a failure still reaches the user as a dialog (the main window shows every task's).
        task = self.context.tasks.run(f"Saving the label of capture {capture_id}", work,
                                      background=True)
        task.succeeded.connect(lambda annotation_id: self._done(capture_id, doc, annotation_id))
        task.failed.connect(lambda message: self._fail(capture_id, message))
        task.cancelled.connect(lambda: self._fail(capture_id, "cancelled"))
        self.state_changed.emit(capture_id)

    def _done(self, capture_id: int, doc: LabelDocument, annotation_id: int) -> None:
        self._in_flight[capture_id] -= 1
        self._saved[capture_id] = doc
        self.state_changed.emit(capture_id)
        self.saved.emit(capture_id, int(annotation_id))

    def _fail(self, capture_id: int, message: str) -> None:
        self._in_flight[capture_id] -= 1
        self._failed[capture_id] = message
        # Sent but not saved: the next flush tries again.
        self._sent[capture_id] = self._saved.get(capture_id, LabelDocument())
        self.state_changed.emit(capture_id)

    def state(self, capture_id: int) -> SaveState:
        """What the status line says about this capture's label."""
        doc = self._latest.get(capture_id)
        if capture_id in self._failed:
            return SaveState.FAILED
        if self._in_flight.get(capture_id, 0):
            return SaveState.SAVING
        saved = self._saved.get(capture_id)
        if doc is None or (doc.empty and saved is None):
            return SaveState.NOTHING
        if doc.same_label(saved):
            return SaveState.SAVED
        if doc.untouched_prelabel:
            return SaveState.PRELABEL
        return SaveState.UNSAVED

    def failure(self, capture_id: int) -> str | None:
        """Why the capture's last save failed (None: it did not)."""
        return self._failed.get(capture_id)

    @property
    def busy(self) -> bool:
        """Whether a save is under way or waiting for its second."""
        return self._timer.isActive() or any(self._in_flight.values())
