"""The box canvas: mouse and key events turned into edits; nothing else.

Geometry rules live in app/annotate/canvas_geometry.py and painting in canvas_render.py;
this widget only remembers the drag under way and the view. It does not own the boxes:
it shows what :meth:`BoxCanvas.set_boxes` gave it and *asks* for changes through signals
(``box_drawn``, ``box_changed``), which the labeling pane turns into undoable commands and
then hands back. While a drag lasts the canvas draws the box where the pointer has it.

Mouse: drag on empty space draws a box of ``current_class``; press a box to select it and
drag to move it; drag a handle of the selected box to resize it; middle-drag, or drag with
Space held, pans; Ctrl+wheel zooms about the pointer; the wheel scrolls (Shift: sideways).
Keys: + and - zoom about the centre, 0 or F fits the image, Esc abandons the drag.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPixmap, QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.annotate.canvas_geometry import (
    Box, Handle, ImageSize, Point, View, box_from_corners, fit, hit_test, move, pan, resize,
    zoom_about,
)
from app.annotate.widgets import canvas_render as render

ZOOM_STEP = 1.25
WHEEL_NOTCH = 120  # angleDelta of one notch of a mouse wheel
SCROLL_STEP = 40.0  # screen pixels per wheel notch

_HANDLE_CURSORS = {
    Handle.TOP_LEFT: Qt.CursorShape.SizeFDiagCursor,
    Handle.BOTTOM_RIGHT: Qt.CursorShape.SizeFDiagCursor,
    Handle.TOP_RIGHT: Qt.CursorShape.SizeBDiagCursor,
    Handle.BOTTOM_LEFT: Qt.CursorShape.SizeBDiagCursor,
    Handle.TOP: Qt.CursorShape.SizeVerCursor,
    Handle.BOTTOM: Qt.CursorShape.SizeVerCursor,
    Handle.LEFT: Qt.CursorShape.SizeHorCursor,
    Handle.RIGHT: Qt.CursorShape.SizeHorCursor,
}


class _DragKind(enum.Enum):
    DRAW = "draw"
    MOVE = "move"
    RESIZE = "resize"
    PAN = "pan"


@dataclass(frozen=True)
class _Drag:
    """The drag under way: what it does, where it began (image pixels, and screen pixels
    for a pan), and the box as it was then (moves and resizes measure from it)."""

    kind: _DragKind
    start: Point
    screen_start: QPointF
    index: int | None = None
    original: Box | None = None
    handle: Handle | None = None


class BoxCanvas(QWidget):
    """An image with boxes in image pixels, drawn, selected, moved and resized by mouse."""

    box_drawn = Signal(object)  # Box: a new box the user drew
    box_changed = Signal(int, object)  # index, Box: the box as a finished move/resize left it
    selection_changed = Signal(object)  # int | None
    view_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)  # hover cursors over handles and boxes
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.image: QPixmap | None = None
        self.image_size = ImageSize(0, 0)
        self.message = "No capture"
        self.boxes: tuple[Box, ...] = ()
        self.selected: int | None = None
        self.current_class = ""
        self.editable = True  # False: select, zoom and pan only (a role that may not label)
        self.colours: Mapping[str, QColor] = {}
        self.view = View()
        self._fit_view = True  # follow the widget's size until the user zooms or pans
        self._drag: _Drag | None = None
        self._preview: Box | None = None  # the dragged box where the pointer has it now
        self._pointer: QPointF | None = None
        self._space_held = False

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(720, 540)

    # -- what to show -----------------------------------------------------------------------
    def set_image(self, image: QPixmap | QImage | None, message: str = "") -> None:
        """Show ``image`` (None: ``message`` instead). A new image size refits the view; an
        image of the size shown keeps the user's zoom, to compare the same spot."""
        pixmap = QPixmap.fromImage(image) if isinstance(image, QImage) else image
        size = ImageSize(pixmap.width(), pixmap.height()) if pixmap is not None else ImageSize(0, 0)
        self._abandon_drag()
        if size != self.image_size:
            self._fit_view = True
        self.image, self.image_size, self.message = pixmap, size, message
        if self._fit_view:
            self.fit_to_window()
        self.update()

    def set_boxes(self, boxes: Sequence[Box], selected: int | None = None) -> None:
        """Show ``boxes`` (what the label holds now), ``selected`` chosen."""
        self.boxes = tuple(boxes)
        self._abandon_drag()
        self._select(selected if selected is not None and 0 <= selected < len(self.boxes)
                     else None)
        self.update()

    def set_classes(self, colours: Mapping[str, QColor]) -> None:
        self.colours = dict(colours)
        self.update()

    def select(self, index: int | None) -> None:
        """Select box ``index`` (None: none), as a click on it would."""
        self._select(index)
        self.update()

    def _select(self, index: int | None) -> None:
        if index != self.selected:
            self.selected = index
            self.selection_changed.emit(index)

    # -- the view ---------------------------------------------------------------------------
    def fit_to_window(self) -> None:
        """Show the whole image, centred (0 or F)."""
        self._fit_view = True
        self._set_view(fit(self.image_size, ImageSize(self.width(), self.height())))

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom by ``factor`` about ``anchor`` (screen pixels; default the centre)."""
        at = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        self._fit_view = False
        self._set_view(zoom_about(self.view, factor, Point(at.x(), at.y())))

    def pan_by(self, dx: float, dy: float) -> None:
        """Shift the image by ``dx``, ``dy`` screen pixels."""
        self._fit_view = False
        self._set_view(pan(self.view, dx, dy))

    def _set_view(self, view: View) -> None:
        self.view = view
        self.update()
        self.view_changed.emit()

    def to_image(self, at: QPointF) -> Point:
        """The image point under screen point ``at``."""
        return self.view.to_image(Point(at.x(), at.y()))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fit_view:
            self.fit_to_window()

    # -- painting ---------------------------------------------------------------------------
    def shown_boxes(self) -> list[Box]:
        """The boxes as painted now: a dragged one where the pointer has it."""
        boxes = list(self.boxes)
        drag = self._drag
        if self._preview is not None and drag is not None and drag.index is not None:
            boxes[drag.index] = self._preview
        return boxes

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        area = QRectF(self.rect())
        render.draw_backdrop(painter, area)
        if self.image is None:
            render.draw_message(painter, area, self.message)
            painter.end()
            return
        render.draw_image(painter, self.view, self.image)
        render.draw_boxes(painter, self.view, self.shown_boxes(), self.selected, self.colours)
        drag = self._drag
        if drag is not None and drag.kind is _DragKind.DRAW and self._pointer is not None:
            render.draw_rubber_band(painter, self.view, drag.start, self.to_image(self._pointer),
                                    render.colour_of(self.current_class, self.colours))
        elif drag is None and self._pointer is not None and self._over_empty(self._pointer):
            render.draw_crosshair(painter, area, self._pointer)
        painter.end()

    def _over_empty(self, at: QPointF) -> bool:
        return hit_test(self.boxes, self.to_image(at), self.view.zoom, self.selected).empty

    # -- the mouse --------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        at = event.position()
        point = self.to_image(at)
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
                button == Qt.MouseButton.LeftButton and self._space_held):
            self._drag = _Drag(_DragKind.PAN, point, at)
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if button != Qt.MouseButton.LeftButton or self.image is None:
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        hit = hit_test(self.boxes, point, self.view.zoom, self.selected)
        if not self.editable:
            self._select(hit.index)
        elif hit.index is not None and hit.handle is not None:
            self._drag = _Drag(_DragKind.RESIZE, point, at, hit.index, self.boxes[hit.index],
                               hit.handle)
        elif hit.index is not None:
            self._select(hit.index)
            self._drag = _Drag(_DragKind.MOVE, point, at, hit.index, self.boxes[hit.index])
        else:
            self._select(None)
            self._drag = _Drag(_DragKind.DRAW, point, at)
        self._pointer = at
        self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        at = event.position()
        self._pointer = at
        drag = self._drag
        if drag is None:
            self._hover_cursor(at)
        elif drag.kind is _DragKind.PAN:
            self.pan_by(at.x() - drag.screen_start.x(), at.y() - drag.screen_start.y())
            self._drag = _Drag(_DragKind.PAN, drag.start, at)
        elif drag.original is not None:
            self._preview = self._dragged(drag, self.to_image(at))
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        drag, self._drag = self._drag, None
        self._preview = None
        if drag is None:
            return
        at = event.position()
        end = self.to_image(at)
        if drag.kind is _DragKind.DRAW:
            drawn = box_from_corners(self.current_class, drag.start, end, self.image_size)
            if drawn is not None and self.current_class:
                self.box_drawn.emit(drawn)
        elif drag.kind in (_DragKind.MOVE, _DragKind.RESIZE) and drag.index is not None:
            assert drag.original is not None
            changed = self._dragged(drag, end)
            if changed != drag.original:
                self.box_changed.emit(drag.index, changed)
        self._hover_cursor(at)
        self.update()

    def _dragged(self, drag: _Drag, point: Point) -> Box:
        """The dragged box with the pointer at ``point`` (image pixels)."""
        assert drag.original is not None
        if drag.kind is _DragKind.RESIZE and drag.handle is not None:
            return resize(drag.original, drag.handle, point, self.image_size)
        if point == drag.start:
            return drag.original  # a click on a box selects it; it does not touch it
        return move(drag.original, point.x - drag.start.x, point.y - drag.start.y,
                    self.image_size)

    def _hover_cursor(self, at: QPointF) -> None:
        if self._space_held:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            return
        hit = hit_test(self.boxes, self.to_image(at), self.view.zoom, self.selected)
        if hit.handle is not None:
            self.setCursor(_HANDLE_CURSORS[hit.handle])
        elif hit.index is not None:
            self.setCursor(Qt.CursorShape.SizeAllCursor)
        else:
            self.setCursor(Qt.CursorShape.CrossCursor)

    def leaveEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802
        self._pointer = None
        self.update()
        super().leaveEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        notches = event.angleDelta().y() / WHEEL_NOTCH
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if notches:
                self.zoom_by(ZOOM_STEP ** notches, event.position())
        elif event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.pan_by(notches * SCROLL_STEP, 0)
        else:
            self.pan_by(event.angleDelta().x() / WHEEL_NOTCH * SCROLL_STEP,
                        notches * SCROLL_STEP)
        event.accept()

    # -- keys -------------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(ZOOM_STEP)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(1 / ZOOM_STEP)
        elif key in (Qt.Key.Key_0, Qt.Key.Key_F) and not event.modifiers() & (
                Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
            self.fit_to_window()
        elif key == Qt.Key.Key_Escape and self._drag is not None:
            self._abandon_drag()
            self.update()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = False
            self.setCursor(Qt.CursorShape.CrossCursor)
        else:
            super().keyReleaseEvent(event)

    def _abandon_drag(self) -> None:
        self._drag = None
        self._preview = None
