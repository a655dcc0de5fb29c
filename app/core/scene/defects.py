"""The defects: where each goes on a part, how it is drawn, and which pixels it covers.

Each function draws one defect onto the (still unlit) image and returns a :class:`Mark`,
the points that span what it drew; the sample's box is made from the mark, after any camera
drift has moved it. ``k`` is the image size / 128, so a defect keeps its size relative to
the part at every image size. ``missing_hole`` is drawn by leaving a hole out (see
render.py); :func:`missing_hole_mark` only marks where it would have been.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from app.core.scene.parts import Circle, Part

_SHIFT = 4  # cv2 fixed-point bits: draw at 1/16 pixel, so thin lines are not stair-stepped
_ONE = 1 << _SHIFT


@dataclass(frozen=True, eq=False)
class Mark:
    """Where a defect was drawn: image points (pixel centres at integers) and how far beyond them."""

    points: np.ndarray
    reach: float


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * _ONE).astype(np.int32)


def _path_is_safe(part: Part, path: np.ndarray, margin: float) -> bool:
    """Every point along the polyline (checked about every pixel) may carry a defect."""
    lengths = np.hypot(*(path[1:] - path[:-1]).T)
    steps = max(1, math.ceil(float(lengths.max(initial=0.0))))
    t = np.linspace(0.0, 1.0, steps + 1)[:, None, None]
    along = path[:-1] + t * (path[1:] - path[:-1])
    return part.all_safe(along.reshape(-1, 2), margin)


def _place(part: Part, rng: random.Random, margin: float,
           make_paths: Callable[[float, float, float], list[np.ndarray]]) -> list[np.ndarray]:
    """Try random starts (shrinking the defect as tries fail) until all its paths fit the part.

    ``make_paths(x, y, shrink)`` lays out the defect's polylines from start (x, y) in part
    coordinates. The last resort is a dot at a safe point, so a defect always gets drawn.
    """
    for attempt in range(60):
        start = part.safe_point(rng, margin)
        if start is None:
            continue
        shrink = 1.0 - 0.6 * attempt / 59
        paths = make_paths(start[0], start[1], shrink)
        if all(_path_is_safe(part, path, margin) for path in paths):
            return paths
    x, y = part.safe_point(rng, margin, tries=1000) or (0.0, 0.0)
    return [np.array([[x, y], [x + 1.0, y]])]


def draw_scratch(image: np.ndarray, part: Part, rng: random.Random, k: float) -> Mark:
    """A thin, nearly straight line 15-40 px long (at 128 px), brighter or darker than the metal."""
    length = rng.uniform(15, 40) * k
    heading = rng.uniform(0, math.pi)
    bow = rng.uniform(-0.08, 0.08)
    bright = rng.random() < 0.65
    shade = rng.uniform(225, 250) if bright else rng.uniform(70, 95)

    def lay_out(x: float, y: float, shrink: float) -> list[np.ndarray]:
        dx, dy = math.cos(heading), math.sin(heading)
        t = np.linspace(0.0, 1.0, 7)
        along = (t - 0.5) * length * shrink
        across = 4 * t * (1 - t) * bow * length * shrink
        return [np.stack([x + along * dx - across * dy, y + along * dy + across * dx], axis=1)]

    path = part.to_image(_place(part, rng, 2.0 * k, lay_out)[0])
    thickness = max(1, round(k))
    cv2.polylines(image, [_fixed(path)], False, (shade, shade, shade * 0.98), thickness,
                  cv2.LINE_AA, _SHIFT)
    return Mark(path, thickness / 2 + 1.0)


def draw_crack(image: np.ndarray, part: Part, rng: random.Random, k: float) -> Mark:
    """A jagged dark polyline 15-35 px long (at 128 px), sometimes with a side branch."""
    heading = rng.uniform(0, 2 * math.pi)
    # Zig-zag: each leg turns the other way from the crack's heading, which is what makes it
    # read as a crack and not as a dark scratch.
    turn = rng.choice((-1, 1))
    steps = [(rng.uniform(2.5, 4.5) * k, heading + (turn := -turn) * rng.uniform(0.25, 0.9))
             for _ in range(rng.randint(5, 8))]
    branch_at = rng.randint(2, len(steps) - 2)
    side = rng.choice((-1, 1)) * rng.uniform(0.6, 1.1)
    branch = [(rng.uniform(2.0, 3.5) * k, heading + side + rng.uniform(-0.5, 0.5))
              for _ in range(rng.randint(2, 3))] if rng.random() < 0.6 else []
    shade = rng.uniform(18, 40)

    def walk(x: float, y: float, legs: list[tuple[float, float]], shrink: float) -> np.ndarray:
        points = [(x, y)]
        for step, direction in legs:
            x, y = x + step * shrink * math.cos(direction), y + step * shrink * math.sin(direction)
            points.append((x, y))
        return np.array(points)

    def lay_out(x: float, y: float, shrink: float) -> list[np.ndarray]:
        main = walk(x, y, steps, shrink)
        if not branch:
            return [main]
        return [main, walk(*main[branch_at], branch, shrink)]

    paths = [part.to_image(p) for p in _place(part, rng, 2.0 * k, lay_out)]
    thickness = max(1, round(k))
    cv2.polylines(image, [_fixed(p) for p in paths], False, (shade, shade, shade + 3), thickness,
                  cv2.LINE_AA, _SHIFT)
    return Mark(np.concatenate(paths), thickness / 2 + 1.0)


def draw_stain(image: np.ndarray, part_mask: np.ndarray, part: Part, rng: random.Random,
               k: float) -> Mark:
    """A soft dark-brown blob (oil, rust, coolant), 8-20 px across at 128 px, only on the metal."""
    radius = rng.uniform(4.0, 8.5) * k
    centre = part.safe_point(rng, 0.6 * radius, tries=200) or part.safe_point(rng, 0.0, tries=1000)
    x, y = part.to_image(np.array([centre or (0.0, 0.0)]))[0]
    blobs = [(rng.uniform(-0.45, 0.45) * radius, rng.uniform(-0.45, 0.45) * radius,
              rng.uniform(0.45, 1.0) * radius, rng.uniform(0.35, 0.8) * radius, rng.uniform(0, 180))
             for _ in range(3)]
    opacity = rng.uniform(0.6, 0.85)
    colour = np.array([rng.uniform(25, 45), rng.uniform(50, 70), rng.uniform(75, 100)], np.float32)
    sigma = 0.35 * radius

    size = image.shape[0]
    half = math.ceil(2.0 * radius + 3 * sigma)
    x0, y0 = max(0, round(x) - half), max(0, round(y) - half)
    x1, y1 = min(size, round(x) + half + 1), min(size, round(y) + half + 1)
    alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
    for bx, by, ax, ay, tilt in blobs:
        centre_px = (round((x + bx - x0) * _ONE), round((y + by - y0) * _ONE))
        axes = (max(1, round(ax * _ONE)), max(1, round(ay * _ONE)))
        cv2.ellipse(alpha, centre_px, axes, tilt, 0, 360, 1.0, -1, cv2.LINE_AA, _SHIFT)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    # The stain soaks the metal only: none of it on the belt or inside a hole.
    alpha *= part_mask[y0:y1, x0:x1].astype(np.float32) * (opacity / 255)
    roi = image[y0:y1, x0:x1]
    blended = roi * (1 - alpha[..., None]) + colour * alpha[..., None]
    roi[...] = np.round(blended).astype(np.uint8)

    rows, cols = np.nonzero(alpha >= 0.05)
    if rows.size == 0:  # clipped away entirely: mark the centre so the box is not empty
        return Mark(np.array([[x, y]]), 1.0)
    points = np.stack([cols + x0, rows + y0], axis=1).astype(np.float64)
    return Mark(points, 0.0)


def missing_hole_mark(part: Part, hole: Circle) -> Mark:
    """Where an undrilled hole would have been: its circle and the chamfer rim around it."""
    x, y, r = part.hole_in_image(hole)
    angles = np.linspace(0, 2 * math.pi, 16, endpoint=False)
    rim = r + 1.0
    return Mark(np.stack([x + rim * np.cos(angles), y + rim * np.sin(angles)], axis=1), 1.0)
