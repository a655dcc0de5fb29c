"""The label being edited in the labeling pane, as a value: no Qt, no database.

A :class:`LabelDocument` is one capture's label as the pane holds it: the capture's class
and its boxes (canvas :class:`~app.annotate.canvas_geometry.Box` values, in image pixels).
Every edit is a function returning a new document, so the pane's undo stack keeps the
document before and after each edit and undo is "put the old one back".

**Pre-labels.** A capture nobody has labeled starts as the model's pre-label
(:func:`from_prelabel`): its class, and its boxes marked ``prelabel``. While no edit has
touched it the document is ``untouched_prelabel``; saving it then records a confirmed
pre-label (source MODEL_ASSISTED). Any edit makes it the person's label (source HUMAN);
boxes of the model the edit did not touch keep their dashed "pre-label" look until touched,
and are saved with it: what the canvas shows is what is saved.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.annotate.canvas_geometry import Box, ImageSize, clamp_box
from app.annotate.labeling import BoxDraft, LabelDraft
from app.core.models import AnnotationSource


@dataclass(frozen=True)
class LabelDocument:
    """One capture's label under edit: its class (None: not chosen) and its boxes."""

    class_name: str | None = None
    boxes: tuple[Box, ...] = ()
    untouched_prelabel: bool = False

    @property
    def empty(self) -> bool:
        """Nothing to save: no class and no box."""
        return self.class_name is None and not self.boxes

    @property
    def source(self) -> AnnotationSource:
        """What saving this document records as its source."""
        return (AnnotationSource.MODEL_ASSISTED if self.untouched_prelabel
                else AnnotationSource.HUMAN)

    def to_draft(self) -> LabelDraft:
        """The label as ``save_label`` takes it."""
        return LabelDraft(self.class_name, tuple(
            BoxDraft(b.class_name, b.x, b.y, b.width, b.height) for b in self.boxes))

    def same_label(self, other: LabelDocument | None) -> bool:
        """Whether ``other`` would save the same label (class and boxes, looks aside)."""
        return other is not None and self.to_draft() == other.to_draft()


def from_label(draft: LabelDraft, bounds: ImageSize | None = None) -> LabelDocument:
    """A saved label (a person's own) as a document."""
    return LabelDocument(draft.class_name, _boxes(draft, bounds, prelabel=False))


def from_prelabel(draft: LabelDraft, bounds: ImageSize | None = None) -> LabelDocument:
    """A model's prediction as the starting document, its boxes marked as pre-label."""
    return LabelDocument(draft.class_name, _boxes(draft, bounds, prelabel=True),
                         untouched_prelabel=True)


def _boxes(draft: LabelDraft, bounds: ImageSize | None, prelabel: bool) -> tuple[Box, ...]:
    boxes = tuple(Box(b.class_name, b.x, b.y, b.width, b.height, prelabel) for b in draft.boxes)
    if bounds is None or bounds.width <= 0 or bounds.height <= 0:
        return boxes
    return tuple(clamp_box(b, bounds) for b in boxes)


def with_class(doc: LabelDocument, class_name: str, selected: int | None = None) -> LabelDocument:
    """The capture's class set to ``class_name``, and the selected box's too (the number
    keys and the class list do both)."""
    boxes = doc.boxes
    if selected is not None and 0 <= selected < len(boxes):
        boxes = _replaced(boxes, selected, replace(boxes[selected], class_name=class_name,
                                                   prelabel=False))
    return LabelDocument(class_name, boxes)


def with_box(doc: LabelDocument, box: Box) -> LabelDocument:
    """A box added (last: drawn on top)."""
    return LabelDocument(doc.class_name, doc.boxes + (replace(box, prelabel=False),))


def with_box_changed(doc: LabelDocument, index: int, box: Box) -> LabelDocument:
    """Box ``index`` replaced by ``box`` (moved, resized or relabeled)."""
    return LabelDocument(doc.class_name, _replaced(doc.boxes, index, replace(box, prelabel=False)))


def without_box(doc: LabelDocument, index: int) -> LabelDocument:
    """Box ``index`` removed."""
    return LabelDocument(doc.class_name, doc.boxes[:index] + doc.boxes[index + 1:])


def _replaced(boxes: tuple[Box, ...], index: int, box: Box) -> tuple[Box, ...]:
    if not 0 <= index < len(boxes):
        raise IndexError(f"no box {index} (the label has {len(boxes)})")
    return boxes[:index] + (box,) + boxes[index + 1:]
