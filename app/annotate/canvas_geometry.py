"""The labeling canvas's geometry, without Qt: boxes, hit-testing, edits and the view.

Everything here is a pure function of frozen values, so the canvas widget is thin plumbing
and every rule is unit-tested on its own (tests/annotate/test_canvas_geometry.py):

- :class:`Box` is a box in pixels of the capture image (its class, x, y, width, height);
  ``prelabel`` marks a box that came from a model's prediction and nobody has touched yet.
- :func:`hit_test` says what is under the pointer: a resize handle of the selected box, a
  box's inside, or nothing. The tolerance is in *screen* pixels, so a handle is as easy to
  grab at 800 % as at 25 %.
- :func:`move`, :func:`resize` and :func:`box_from_corners` are the three edits a mouse can
  make. Each keeps the box inside the image and at least :data:`MIN_SIZE` pixels wide and
  high; :func:`resize` measures from the box as it was when the drag began, so dragging an
  edge past the opposite one flips the box instead of turning it inside out.
- :class:`View` maps image pixels to screen pixels (``screen = image * zoom + offset``):
  :func:`zoom_about` keeps the image point under the pointer where it is, :func:`pan` shifts,
  :func:`fit` shows the whole image centred.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace

MIN_SIZE = 2.0
"""The smallest box side, in image pixels: a click without a drag is not a box."""
HANDLE_TOLERANCE = 6.0
"""How close to a handle (in screen pixels) the pointer must be to grab it."""
MIN_ZOOM = 0.05
MAX_ZOOM = 40.0


@dataclass(frozen=True)
class Point:
    """A point, in image or screen pixels (the function says which)."""

    x: float
    y: float


@dataclass(frozen=True)
class ImageSize:
    """The bounds every box stays in: the capture image, ``width`` x ``height`` pixels."""

    width: float
    height: float


@dataclass(frozen=True)
class Box:
    """An axis-aligned box of one class, in image pixels; never edited, replaced."""

    class_name: str
    x: float
    y: float
    width: float
    height: float
    prelabel: bool = False  # a model's box nobody has moved, resized or relabeled yet

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def area(self) -> float:
        return self.width * self.height

    def contains(self, point: Point, margin: float = 0.0) -> bool:
        """Whether ``point`` lies inside, or within ``margin`` pixels of the edge."""
        return (self.x - margin <= point.x <= self.right + margin
                and self.y - margin <= point.y <= self.bottom + margin)


class Handle(str, enum.Enum):
    """One of the eight grips a box is resized by: four corners and four edge middles."""

    TOP_LEFT = "top_left"
    TOP = "top"
    TOP_RIGHT = "top_right"
    RIGHT = "right"
    BOTTOM_RIGHT = "bottom_right"
    BOTTOM = "bottom"
    BOTTOM_LEFT = "bottom_left"
    LEFT = "left"

    @property
    def moves_left(self) -> bool:
        return self in (Handle.TOP_LEFT, Handle.LEFT, Handle.BOTTOM_LEFT)

    @property
    def moves_right(self) -> bool:
        return self in (Handle.TOP_RIGHT, Handle.RIGHT, Handle.BOTTOM_RIGHT)

    @property
    def moves_top(self) -> bool:
        return self in (Handle.TOP_LEFT, Handle.TOP, Handle.TOP_RIGHT)

    @property
    def moves_bottom(self) -> bool:
        return self in (Handle.BOTTOM_LEFT, Handle.BOTTOM, Handle.BOTTOM_RIGHT)


def handle_points(box: Box) -> dict[Handle, Point]:
    """Where each handle of ``box`` sits, in image pixels."""
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    return {
        Handle.TOP_LEFT: Point(box.x, box.y),
        Handle.TOP: Point(cx, box.y),
        Handle.TOP_RIGHT: Point(box.right, box.y),
        Handle.RIGHT: Point(box.right, cy),
        Handle.BOTTOM_RIGHT: Point(box.right, box.bottom),
        Handle.BOTTOM: Point(cx, box.bottom),
        Handle.BOTTOM_LEFT: Point(box.x, box.bottom),
        Handle.LEFT: Point(box.x, cy),
    }


@dataclass(frozen=True)
class Hit:
    """What lies under the pointer: box ``index`` (None: empty space), and ``handle`` when
    the pointer is on one of that box's resize handles (None: on its inside)."""

    index: int | None = None
    handle: Handle | None = None

    @property
    def empty(self) -> bool:
        return self.index is None


def hit_test(boxes: Sequence[Box], point: Point, zoom: float, selected: int | None = None,
             tolerance: float = HANDLE_TOLERANCE) -> Hit:
    """What ``point`` (image pixels) is on, at ``zoom`` screen pixels per image pixel.

    The selected box's handles come first (they are drawn on top and are what a user
    aims for); then the smallest box whose inside, or edge within the tolerance, holds the
    point, so a small box inside a large one can always be picked. Handles of boxes that are
    not selected are not grabbed: a press there selects the box, a second drag resizes it.
    """
    slack = tolerance / max(zoom, 1e-9)
    if selected is not None and 0 <= selected < len(boxes):
        nearest: tuple[float, Handle] | None = None
        for handle, at in handle_points(boxes[selected]).items():
            distance = max(abs(at.x - point.x), abs(at.y - point.y))
            if distance <= slack and (nearest is None or distance < nearest[0]):
                nearest = (distance, handle)
        if nearest is not None:
            return Hit(selected, nearest[1])
    under = [i for i, box in enumerate(boxes) if box.contains(point, slack)]
    if not under:
        return Hit()
    # Smallest first; among equals the last drawn (on top).
    return Hit(min(under, key=lambda i: (boxes[i].area, -i)))


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _min_side(limit: float, min_size: float) -> float:
    # An image narrower than the minimum box gets boxes as wide as itself.
    return min(min_size, limit)


def clamp_box(box: Box, bounds: ImageSize, min_size: float = MIN_SIZE) -> Box:
    """``box`` cut to the image (a model's box may spill over the edge), at least
    ``min_size`` wide and high."""
    left = _clamp(min(box.x, box.right), 0.0, bounds.width)
    right = _clamp(max(box.x, box.right), 0.0, bounds.width)
    top = _clamp(min(box.y, box.bottom), 0.0, bounds.height)
    bottom = _clamp(max(box.y, box.bottom), 0.0, bounds.height)
    left, right = _at_least(left, right, _min_side(bounds.width, min_size), bounds.width)
    top, bottom = _at_least(top, bottom, _min_side(bounds.height, min_size), bounds.height)
    return replace(box, x=left, y=top, width=right - left, height=bottom - top)


def _at_least(low: float, high: float, size: float, limit: float) -> tuple[float, float]:
    """Widen ``low..high`` to ``size``, growing past ``high`` unless that leaves ``0..limit``."""
    if high - low >= size:
        return low, high
    high = low + size
    if high > limit:
        high, low = limit, limit - size
    return low, high


def move(box: Box, dx: float, dy: float, bounds: ImageSize) -> Box:
    """``box`` shifted by ``dx``, ``dy`` image pixels, stopped at the image's edges (its
    size is kept; a box larger than the image is first cut to it)."""
    box = clamp_box(box, bounds, min_size=0.0)
    x = _clamp(box.x + dx, 0.0, bounds.width - box.width)
    y = _clamp(box.y + dy, 0.0, bounds.height - box.height)
    return replace(box, x=x, y=y, prelabel=False)


def _drag_edge(fixed: float, moving: float, limit: float, min_size: float) -> tuple[float, float]:
    """The span between an edge that stays (``fixed``) and one dragged to ``moving``, in
    order, inside ``0..limit``, at least ``min_size`` long (grown on the dragged side)."""
    size = _min_side(limit, min_size)
    fixed = _clamp(fixed, 0.0, limit)
    moving = _clamp(moving, 0.0, limit)
    if moving >= fixed:
        low, high = fixed, max(moving, fixed + size)
        if high > limit:
            high, low = limit, min(fixed, limit - size)
    else:
        low, high = min(moving, fixed - size), fixed
        if low < 0.0:
            low, high = 0.0, max(fixed, size)
    return low, high


def resize(box: Box, handle: Handle, point: Point, bounds: ImageSize,
           min_size: float = MIN_SIZE) -> Box:
    """``box`` (as it was when the drag began) with ``handle`` dragged to ``point``.

    The edges the handle holds follow the point; the others stay. Dragging past the
    opposite edge flips the box (no negative sizes); the result stays inside the image and
    at least ``min_size`` wide and high.
    """
    box = clamp_box(box, bounds, min_size=0.0)
    left, right = box.x, box.right
    top, bottom = box.y, box.bottom
    if handle.moves_left:
        left, right = _drag_edge(right, point.x, bounds.width, min_size)
    elif handle.moves_right:
        left, right = _drag_edge(left, point.x, bounds.width, min_size)
    else:
        left, right = _at_least(left, right, _min_side(bounds.width, min_size), bounds.width)
    if handle.moves_top:
        top, bottom = _drag_edge(bottom, point.y, bounds.height, min_size)
    elif handle.moves_bottom:
        top, bottom = _drag_edge(top, point.y, bounds.height, min_size)
    else:
        top, bottom = _at_least(top, bottom, _min_side(bounds.height, min_size), bounds.height)
    return replace(box, x=left, y=top, width=right - left, height=bottom - top, prelabel=False)


def box_from_corners(class_name: str, start: Point, end: Point, bounds: ImageSize,
                     min_size: float = MIN_SIZE) -> Box | None:
    """The box a drag from ``start`` to ``end`` draws, cut to the image; None when it is
    smaller than ``min_size`` either way (a click, or a slip of the hand)."""
    left = _clamp(min(start.x, end.x), 0.0, bounds.width)
    right = _clamp(max(start.x, end.x), 0.0, bounds.width)
    top = _clamp(min(start.y, end.y), 0.0, bounds.height)
    bottom = _clamp(max(start.y, end.y), 0.0, bounds.height)
    if right - left < _min_side(bounds.width, min_size) or \
            bottom - top < _min_side(bounds.height, min_size):
        return None
    return Box(class_name, left, top, right - left, bottom - top)


# -- the view -------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """How the image lies on the screen: ``screen = image * zoom + offset``."""

    zoom: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0

    def to_screen(self, point: Point) -> Point:
        return Point(point.x * self.zoom + self.offset_x, point.y * self.zoom + self.offset_y)

    def to_image(self, point: Point) -> Point:
        return Point((point.x - self.offset_x) / self.zoom, (point.y - self.offset_y) / self.zoom)


def zoom_about(view: View, factor: float, anchor: Point, min_zoom: float = MIN_ZOOM,
               max_zoom: float = MAX_ZOOM) -> View:
    """``view`` zoomed by ``factor`` (kept within ``min_zoom``..``max_zoom``) so that the
    image point under ``anchor`` (screen pixels) stays under it."""
    zoom = _clamp(view.zoom * factor, min_zoom, max_zoom)
    fixed = view.to_image(anchor)
    return View(zoom, anchor.x - fixed.x * zoom, anchor.y - fixed.y * zoom)


def pan(view: View, dx: float, dy: float) -> View:
    """``view`` shifted by ``dx``, ``dy`` screen pixels."""
    return replace(view, offset_x=view.offset_x + dx, offset_y=view.offset_y + dy)


def fit(image: ImageSize, viewport: ImageSize, margin: float = 8.0,
        min_zoom: float = MIN_ZOOM, max_zoom: float = MAX_ZOOM) -> View:
    """The view showing the whole image, as large as fits ``viewport`` less ``margin`` on
    each side, centred."""
    if image.width <= 0 or image.height <= 0:
        return View()
    room_w = max(viewport.width - 2 * margin, 1.0)
    room_h = max(viewport.height - 2 * margin, 1.0)
    zoom = _clamp(min(room_w / image.width, room_h / image.height), min_zoom, max_zoom)
    return View(zoom, (viewport.width - image.width * zoom) / 2,
                (viewport.height - image.height * zoom) / 2)
