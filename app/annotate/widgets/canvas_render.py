"""Drawing the labeling canvas: pure functions of a QPainter and the values to show.

No state and no events here (that is canvas.py) and no geometry rules (that is
app/annotate/canvas_geometry.py): each function paints what it is given, in screen pixels
through a :class:`~app.annotate.canvas_geometry.View`. Boxes are outlined in their class's
colour with a tag naming the class; a model's box nobody has confirmed or touched yet is
dashed and its tag says "pre-label"; the selected box is filled lightly and shows its eight
handles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QImage, QPainter, QPen, QPixmap

from app.annotate.canvas_geometry import Box, Point, View, handle_points

HANDLE_SIZE = 8.0  # screen pixels
PRELABEL_TAG = "pre-label"
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#f032e6",
           "#9a6324", "#800000", "#000075", "#808000", "#46f0f0")
"""Distinct colours for classes in schema order (Sasha Trubetskoy's list, the dark ones)."""
BACKDROP = QColor("#2b2b2b")


def class_colours(names: Sequence[str]) -> dict[str, QColor]:
    """A colour per class, by its position in the schema (stable while the schema is)."""
    return {name: QColor(PALETTE[i % len(PALETTE)]) for i, name in enumerate(names)}


def colour_of(name: str, colours: Mapping[str, QColor]) -> QColor:
    """The class's colour; grey for a class the schema no longer has."""
    return colours.get(name, QColor("#808080"))


def screen_rect(view: View, box: Box) -> QRectF:
    """Where ``box`` lies on the screen."""
    top_left = view.to_screen(Point(box.x, box.y))
    return QRectF(top_left.x, top_left.y, box.width * view.zoom, box.height * view.zoom)


def draw_backdrop(painter: QPainter, area: QRectF) -> None:
    """The dark ground around the image (the image's own edges stay visible)."""
    painter.fillRect(area, BACKDROP)


def draw_image(painter: QPainter, view: View, image: QPixmap | QImage) -> None:
    """The capture image, scaled by the view. Zoomed in, pixels stay square (no smoothing):
    an annotator must see the pixels the model sees."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, view.zoom < 1.0)
    target = QRectF(view.offset_x, view.offset_y, image.width() * view.zoom,
                    image.height() * view.zoom)
    if isinstance(image, QPixmap):
        painter.drawPixmap(target, image, QRectF(image.rect()))
    else:
        painter.drawImage(target, image, QRectF(image.rect()))
    painter.restore()


def draw_message(painter: QPainter, area: QRectF, text: str) -> None:
    """A line of text in the middle of ``area`` (no capture, image unreadable, loading)."""
    painter.save()
    painter.setPen(QColor("#d0d0d0"))
    painter.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)
    painter.restore()


def draw_boxes(painter: QPainter, view: View, boxes: Sequence[Box], selected: int | None,
               colours: Mapping[str, QColor]) -> None:
    """Every box with its tag; the selected one last (on top) with its handles."""
    order = [i for i in range(len(boxes)) if i != selected]
    if selected is not None and 0 <= selected < len(boxes):
        order.append(selected)
    for i in order:
        draw_box(painter, view, boxes[i], colour_of(boxes[i].class_name, colours),
                 selected=i == selected)


def draw_box(painter: QPainter, view: View, box: Box, colour: QColor,
             selected: bool = False) -> None:
    """One box: outline (dashed for a pre-label), tag, and when selected a light fill and
    its handles."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    rect = screen_rect(view, box)
    pen = QPen(colour, 3.0 if selected else 2.0)
    pen.setCosmetic(True)
    if box.prelabel:
        pen.setStyle(Qt.PenStyle.DashLine)
    painter.setPen(pen)
    fill = QColor(colour)
    fill.setAlpha(60 if selected else 0)
    painter.setBrush(QBrush(fill) if selected else Qt.BrushStyle.NoBrush)
    painter.drawRect(rect)
    painter.restore()
    draw_tag(painter, rect, box.class_name + (f" \u00b7 {PRELABEL_TAG}" if box.prelabel else ""),
             colour, dashed=box.prelabel)
    if selected:
        draw_handles(painter, view, box, colour)


def draw_tag(painter: QPainter, rect: QRectF, text: str, colour: QColor,
             dashed: bool = False) -> None:
    """The class name on a band of the box's colour, above its top-left corner (inside
    it when there is no room above)."""
    painter.save()
    font = QFont(painter.font())
    font.setPointSizeF(max(8.0, font.pointSizeF() * 0.9))
    painter.setFont(font)
    metrics = QFontMetricsF(font)
    width, height = metrics.horizontalAdvance(text) + 8, metrics.height() + 2
    top = rect.top() - height if rect.top() - height >= 0 else rect.top()
    band = QRectF(rect.left(), top, width, height)
    background = QColor(colour)
    # A pre-label's tag is paler: it is the model's word, not yet anyone's label.
    background.setAlpha(150 if dashed else 230)
    painter.fillRect(band, background)
    painter.setPen(QColor("#ffffff") if background.lightnessF() < 0.6 else QColor("#111111"))
    painter.drawText(band.adjusted(4, 0, -4, 0), Qt.AlignmentFlag.AlignVCenter, text)
    painter.restore()


def draw_handles(painter: QPainter, view: View, box: Box, colour: QColor) -> None:
    """The eight resize handles: small white squares edged in the class's colour."""
    painter.save()
    pen = QPen(colour, 1.5)
    pen.setCosmetic(True)
    painter.setPen(pen)
    painter.setBrush(QColor("#ffffff"))
    half = HANDLE_SIZE / 2
    for at in handle_points(box).values():
        centre = view.to_screen(at)
        painter.drawRect(QRectF(centre.x - half, centre.y - half, HANDLE_SIZE, HANDLE_SIZE))
    painter.restore()


def draw_rubber_band(painter: QPainter, view: View, start: Point, end: Point,
                     colour: QColor) -> None:
    """The box being drawn, from where the drag began to the pointer (image pixels)."""
    painter.save()
    pen = QPen(colour, 1.5, Qt.PenStyle.DotLine)
    pen.setCosmetic(True)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    a, b = view.to_screen(start), view.to_screen(end)
    painter.drawRect(QRectF(QPointF(a.x, a.y), QPointF(b.x, b.y)).normalized())
    painter.restore()


def draw_crosshair(painter: QPainter, area: QRectF, at: QPointF) -> None:
    """Thin lines through the pointer across the canvas, to line a new box up with an edge."""
    painter.save()
    pen = QPen(QColor(255, 255, 255, 110), 1.0, Qt.PenStyle.DashLine)
    pen.setCosmetic(True)
    painter.setPen(pen)
    painter.drawLine(QPointF(area.left(), at.y()), QPointF(area.right(), at.y()))
    painter.drawLine(QPointF(at.x(), area.top()), QPointF(at.x(), area.bottom()))
    painter.restore()
