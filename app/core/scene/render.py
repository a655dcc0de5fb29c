"""Drawing one undrifted scene: the moving belt, the part with its shadow and holes, the defect.

The generator decides everything random (a :class:`ScenePlan` plus the defect's random
stream); this module only draws, so the same plan with and without a defect gives images that
differ only where the defect is.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import cv2
import numpy as np

from app.core.scene.defects import Mark, draw_crack, draw_scratch, draw_stain, missing_hole_mark
from app.core.scene.parts import Part
from app.core.scene.textures import LIGHT_UNITY, Textures

_SHIFT = 4
_ONE = 1 << _SHIFT


@dataclass(frozen=True, eq=False)
class ScenePlan:
    """The random choices of one scene apart from the defect."""

    part: Part
    belt_offset: int
    """Where the belt window starts: how far the belt has moved."""
    metal_offset: tuple[int, int]
    """(x, y) of the metal texture window, so no two plates share the same streaks."""
    shade: float
    """Brightness of this part's metal (batches differ in finish)."""


def render_scene(textures: Textures, plan: ScenePlan, label: str,
                 defect_rng: random.Random) -> tuple[np.ndarray, Mark | None]:
    """Draw the scene with a defect of class ``label`` (none for "ok"); return image and mark."""
    size = textures.size
    k = size / 128
    part = plan.part
    window = slice(plan.belt_offset, plan.belt_offset + size)
    image = textures.belt[:, window].copy()
    rail = textures.rail
    image[:rail.shape[0]] = rail
    image[size - rail.shape[0]:] = rail[::-1]

    # Shadow first: the lamp is above-left, so the part's shadow falls down-right of it.
    outline = part.to_image(part.outline)
    shadow_mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(shadow_mask, [_fixed(outline + (2.5 * k, 3.0 * k))], 255, cv2.LINE_8, _SHIFT)
    cv2.copyTo(textures.belt_shadow[:, window], shadow_mask, image)

    # The holes are cut out of the part's mask, so the (shadowed) belt shows through them.
    missing = None
    if label == "missing_hole":
        missing = defect_rng.randrange(len(part.holes))
    holes = [part.hole_in_image(h) for i, h in enumerate(part.holes) if i != missing]
    if part.bore is not None:
        holes.append(part.hole_in_image(part.bore))
    part_mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(part_mask, [_fixed(outline)], 255, cv2.LINE_8, _SHIFT)
    for x, y, r in holes:
        cv2.circle(part_mask, _point(x, y), round(r * _ONE), 0, -1, cv2.LINE_8, _SHIFT)
    # Shading the metal costs per pixel, so only the part's bounding rectangle gets it.
    (x0, y0), (x1, y1) = outline.min(axis=0), outline.max(axis=0)
    x0, y0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    x1, y1 = min(size, math.ceil(x1) + 1), min(size, math.ceil(y1) + 1)
    roi = (slice(y0, y1), slice(x0, x1))
    cv2.copyTo(_metal(textures, plan, roi), part_mask[roi], image[roi])

    mark: Mark | None = None
    if label == "scratch":
        mark = draw_scratch(image, part, defect_rng, k)
    elif label == "crack":
        mark = draw_crack(image, part, defect_rng, k)
    elif label == "stain":
        mark = draw_stain(image, part_mask, part, defect_rng, k)
    elif label == "missing_hole":
        assert missing is not None
        mark = missing_hole_mark(part, part.holes[missing])

    # A chamfer catches the light around each drilled hole; the part's edge is a dark line.
    rim = tuple(min(255.0, c * plan.shade + 45) for c in (170, 166, 160))
    for x, y, r in holes:
        cv2.circle(image, _point(x, y), round((r + 0.5) * _ONE), rim, 1, cv2.LINE_AA, _SHIFT)
    edge = tuple(0.45 * c * plan.shade for c in (170, 166, 160))
    cv2.polylines(image, [_fixed(outline)], True, edge, 1, cv2.LINE_AA, _SHIFT)

    return cv2.multiply(image, textures.light, scale=1 / LIGHT_UNITY), mark


def _metal(textures: Textures, plan: ScenePlan, roi: tuple[slice, slice]) -> np.ndarray:
    """The part's shaded metal over the image region ``roi``."""
    size = textures.size
    if plan.part.kind == "flange":
        # Turned rings are centred on the part, wherever it lies.
        ox = min(max(0, size - round(plan.part.cx)), size)
        oy = min(max(0, size - round(plan.part.cy)), size)
        texture = textures.brass
    else:
        ox, oy = plan.metal_offset
        texture = textures.steel
    rows, cols = roi
    window = texture[oy + rows.start:oy + rows.stop, ox + cols.start:ox + cols.stop]
    return cv2.convertScaleAbs(window, alpha=plan.shade)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * _ONE).astype(np.int32)


def _point(x: float, y: float) -> tuple[int, int]:
    return round(x * _ONE), round(y * _ONE)
