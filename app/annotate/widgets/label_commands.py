"""Undoable edits of the labeling pane: one QUndoCommand per edit, on one stack for all images.

An edit is stored as the capture it changed and that capture's
:class:`~app.annotate.label_document.LabelDocument` before and after (documents are values,
so undo is "put the old one back"). The command does not know the pane: it calls ``apply``
(capture id, document, selected box), and the pane shows that capture first if another is
on screen. That is what makes undo and redo work across images: undoing after "Next" goes
back to the previous capture and undoes there.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand

from app.annotate.label_document import LabelDocument

Apply = Callable[[int, LabelDocument, "int | None"], None]


class LabelEdit(QUndoCommand):
    """One edit of one capture's label (draw, move, resize, relabel, delete, set class)."""

    def __init__(self, apply: Apply, capture_id: int, before: LabelDocument,
                 after: LabelDocument, text: str, *, selected_before: int | None = None,
                 selected_after: int | None = None) -> None:
        super().__init__(text)
        self._apply = apply
        self.capture_id = capture_id
        self.before, self.after = before, after
        self.selected_before, self.selected_after = selected_before, selected_after

    def redo(self) -> None:
        self._apply(self.capture_id, self.after, self.selected_after)

    def undo(self) -> None:
        self._apply(self.capture_id, self.before, self.selected_before)
