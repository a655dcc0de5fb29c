"""What the scene generator hands out: the defect classes, a sample image and its defect box."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES: tuple[str, ...] = ("ok", "scratch", "crack", "missing_hole", "stain")
"""The defect classes; a class's position in this tuple is its class id."""


@dataclass(frozen=True)
class Box:
    """A labelled rectangle in pixel coordinates: ``x, y`` is the top-left corner.

    Pixel ``(col, row)`` covers ``[col, col + 1) x [row, row + 1)``, so a box over pixels 3..5
    has ``x = 3`` and ``w = 3``.
    """

    label: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, eq=False)
class Sample:
    """One rendered scene: a part on the conveyor, at most one defect, and what it shows.

    ``boxes`` holds the defect's box (empty for ``"ok"``); the part itself has no box.
    ``scenario`` names the drift in force, ``part`` the part shape drawn ("plate" normally,
    "flange" for the ``new_variant`` drift). Samples compare by identity: compare
    ``image`` bytes to compare pictures.
    """

    image: np.ndarray
    label: str
    boxes: tuple[Box, ...]
    index: int
    scenario: str
    part: str = "plate"

    @property
    def class_id(self) -> int:
        """The label's position in :data:`CLASSES`."""
        return CLASSES.index(self.label)
