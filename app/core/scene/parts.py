"""Part shapes: the steel plate of the normal line and the brass flange of the new variant.

A part is laid out in its own coordinates (pixels, origin at its centre, unrotated) and
placed in the image by its pose (centre and rotation). It knows where a defect may safely be
drawn: on the metal, clear of the edge and of every hole.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

# Unit arcs, reused for every plate's four rounded corners and every flange's rim.
_CORNERS = [np.stack([np.cos(a), np.sin(a)], axis=1)
            for a in (np.linspace(0.0, math.pi / 2, 6) + q * math.pi / 2 for q in range(4))]
_CORNER_SIGNS = ((1, 1), (-1, 1), (-1, -1), (1, -1))
_CIRCLE = np.linspace(0.0, 2 * math.pi, 48, endpoint=False)
_UNIT_CIRCLE = np.stack([np.cos(_CIRCLE), np.sin(_CIRCLE)], axis=1)

Circle = tuple[float, float, float]
"""``(x, y, radius)``."""


@dataclass(frozen=True, eq=False)
class Part(ABC):
    """A part in its own coordinates plus its pose in the image."""

    kind: str
    cx: float
    cy: float
    angle: float
    """Rotation in radians, counter-clockwise as seen in the image (y pointing down)."""
    outline: np.ndarray
    """(N, 2) polygon of the part's edge."""
    holes: tuple[Circle, ...]
    """The mounting holes; the ``missing_hole`` defect leaves one of them undrilled."""
    bore: Circle | None
    """A hole that belongs to the shape (the flange's centre bore) and is never missing."""
    half_extent: tuple[float, float]
    """Half width and height of the part's own bounding box, to draw candidate points from."""

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) part coordinates to image coordinates."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        # Row vectors times the transposed rotation: the same map as hole_in_image.
        return points @ np.array([[c, -s], [s, c]]) + (self.cx, self.cy)

    def hole_in_image(self, hole: Circle) -> Circle:
        """A hole's circle in image coordinates."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        x, y, r = hole
        return (self.cx + c * x + s * y, self.cy - s * x + c * y, r)

    def safe_mask(self, points: np.ndarray, margin: float) -> np.ndarray:
        """Which of the (N, 2) part points may carry a defect: on metal, ``margin`` clear of
        the edge and of every hole."""
        x, y = points[:, 0], points[:, 1]
        ok = self._inside(x, y, margin)
        for hx, hy, hr in self.holes + ((self.bore,) if self.bore else ()):
            ok &= (x - hx) ** 2 + (y - hy) ** 2 >= (hr + margin) ** 2
        return ok

    def all_safe(self, points: np.ndarray, margin: float) -> bool:
        return bool(self.safe_mask(points, margin).all())

    def safe_point(self, rng: random.Random, margin: float, tries: int = 40) -> tuple[float, float] | None:
        """A random point where a defect may go, or None if ``tries`` candidates all missed."""
        ex, ey = self.half_extent
        for _ in range(0, tries, 8):
            candidates = np.array([(rng.uniform(-ex, ex), rng.uniform(-ey, ey)) for _ in range(8)])
            hits = np.flatnonzero(self.safe_mask(candidates, margin))
            if hits.size:
                x, y = candidates[hits[0]]
                return float(x), float(y)
        return None

    @abstractmethod
    def _inside(self, x: np.ndarray, y: np.ndarray, margin: float) -> np.ndarray:
        """Which points lie on the part's outline, ``margin`` clear of its edge (holes aside)."""


@dataclass(frozen=True, eq=False)
class Plate(Part):
    """A rectangular steel plate with rounded corners and a mounting hole near each corner."""

    corner: float = 0.0

    def _inside(self, x: np.ndarray, y: np.ndarray, margin: float) -> np.ndarray:
        hw, hh = self.half_extent
        ax, ay = np.abs(x), np.abs(y)
        dx, dy = ax - (hw - self.corner), ay - (hh - self.corner)
        in_corner = (dx > 0) & (dy > 0)
        rounded = dx * dx + dy * dy <= (self.corner - margin) ** 2
        return (ax <= hw - margin) & (ay <= hh - margin) & (~in_corner | rounded)


@dataclass(frozen=True, eq=False)
class Flange(Part):
    """A round brass flange: a centre bore and six bolt holes on a circle."""

    def _inside(self, x: np.ndarray, y: np.ndarray, margin: float) -> np.ndarray:
        radius = self.half_extent[0]
        return x * x + y * y <= (radius - margin) ** 2


def make_plate(rng: random.Random, cx: float, cy: float, angle: float, k: float) -> Plate:
    """A plate of random proportions; ``k`` is the image size / 128."""
    hw, hh = rng.uniform(31, 38) * k, rng.uniform(20, 26) * k
    corner = 5.0 * k
    hole_r = rng.uniform(3.2, 4.2) * k
    inset = 7.5 * k
    outline = [corner * arc + (sx * (hw - corner), sy * (hh - corner))
               for arc, (sx, sy) in zip(_CORNERS, _CORNER_SIGNS)]
    holes = tuple((sx * (hw - inset), sy * (hh - inset), hole_r)
                  for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)))
    return Plate(kind="plate", cx=cx, cy=cy, angle=angle, outline=np.concatenate(outline),
                 holes=holes, bore=None, half_extent=(hw, hh), corner=corner)


def make_flange(rng: random.Random, cx: float, cy: float, angle: float, k: float) -> Flange:
    """A flange of random diameter; ``k`` is the image size / 128."""
    radius = rng.uniform(27, 32) * k
    outline = radius * _UNIT_CIRCLE
    bolt_circle, hole_r = 0.7 * radius, 0.1 * radius
    holes = tuple((bolt_circle * math.cos(a), bolt_circle * math.sin(a), hole_r)
                  for a in np.linspace(0, 2 * math.pi, 6, endpoint=False))
    return Flange(kind="flange", cx=cx, cy=cy, angle=angle, outline=outline, holes=holes,
                  bore=(0.0, 0.0, 0.3 * radius), half_extent=(radius, radius))
