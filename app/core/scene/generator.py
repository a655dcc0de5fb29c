"""SceneGenerator: deterministic synthetic inspection images of parts on a conveyor.

Every sample is a pure function of (seed, size, defect_rate, index, scenario): each index
draws from its own random streams, seeded from the seed and the index, so samples can be
made in any order, in parallel, or again later, and come out byte-identical. The streams are
separate on purpose: the label, the scene (belt, part, pose) and the defect each have one, so
forcing a different label or switching on a drift changes only what it should.
"""

from __future__ import annotations

import math
import random

import numpy as np

from app.core.scene.defects import Mark
from app.core.scene.drift import camera_matrix, camera_zoom, drift_image
from app.core.scene.parts import make_flange, make_plate
from app.core.scene.render import ScenePlan, render_scene
from app.core.scene.sample import CLASSES, Box, Sample
from app.core.scene.scenarios import Scenario
from app.core.scene.textures import make_textures

MIN_SIZE, MAX_SIZE = 64, 256


class SceneGenerator:
    """Makes :class:`Sample` images of one simulated inspection station.

    ``seed`` picks the station (its belt and metal textures, and every sample's randomness),
    ``size`` the square image side in pixels (64 to 256), ``defect_rate`` the share of
    defective parts (split equally between the four defect classes), and ``scenario`` the
    drift used when :meth:`sample` is not given one. A generator holds only read-only
    textures, so one may be shared between threads.
    """

    def __init__(self, seed: int = 0, size: int = 128, defect_rate: float = 0.5,
                 scenario: Scenario | str = "none") -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, not {seed!r}")
        if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, not {size!r}")
        if not 0.0 <= defect_rate <= 1.0:
            raise ValueError(f"defect_rate must be from 0 to 1, not {defect_rate!r}")
        self.seed = seed
        self.size = size
        self.defect_rate = float(defect_rate)
        self.scenario = _as_scenario(scenario)
        self._textures = make_textures(seed, size)

    def sample(self, index: int, scenario: Scenario | str | None = None, *,
               force_label: str | None = None) -> Sample:
        """Render sample ``index`` under ``scenario`` (the generator's own when None).

        ``force_label`` draws this same scene with the given class instead of the drawn one:
        the belt, part and pose stay, only the defect changes, which is what lets a test or a
        dataset pair a part with and without its defect.
        """
        index = _check_index(index)
        chosen = self.scenario if scenario is None else _as_scenario(scenario)
        if force_label is None:
            label = self.label_of(index, chosen)
        elif force_label in CLASSES:
            label = force_label
        else:
            raise ValueError(f"unknown class {force_label!r}; known: {', '.join(CLASSES)}")

        plan = self._plan(index, chosen)
        image, mark = render_scene(self._textures, plan, label, self._stream(index, "defect"))
        image = drift_image(image, chosen, lambda: np.random.default_rng([self.seed, index, 0x5E45]))
        boxes = () if mark is None else (self._box(label, mark, chosen),)
        return Sample(image=image, label=label, boxes=boxes, index=index, scenario=chosen.name,
                      part=plan.part.kind)

    def batch(self, start: int, count: int, scenario: Scenario | str | None = None) -> list[Sample]:
        """Samples ``start`` to ``start + count - 1``."""
        if count < 0:
            raise ValueError(f"count must be >= 0, not {count!r}")
        return [self.sample(i, scenario) for i in range(start, start + count)]

    def label_of(self, index: int, scenario: Scenario | str | None = None) -> str:
        """The class sample ``index`` will have, without drawing it (cheap)."""
        index = _check_index(index)
        chosen = self.scenario if scenario is None else _as_scenario(scenario)
        rate = self.defect_rate
        if chosen.name == "defect_rate":
            rate += (chosen.target_defect_rate - rate) * chosen.strength
        rng = self._stream(index, "label")
        # Whether and which are separate draws, so a rising rate only turns "ok" parts
        # defective and never changes the class of a part that already was.
        defective, which = rng.random() >= 1 - rate, rng.random()
        if not defective:
            return CLASSES[0]
        defects = len(CLASSES) - 1
        return CLASSES[1 + min(defects - 1, int(which * defects))]

    def _stream(self, index: int, purpose: str) -> random.Random:
        # Seeding from text hashes it with SHA-512: stable across runs, platforms and versions.
        return random.Random(f"edgeloop-scene/{self.seed}/{index}/{purpose}")

    def _plan(self, index: int, scenario: Scenario) -> ScenePlan:
        rng = self._stream(index, "scene")
        size, k = self.size, self.size / 128
        # The same draws in the same order whatever the scenario, so a drift changes only
        # what it is about.
        belt_offset = rng.randrange(size)
        metal_offset = (rng.randrange(size), rng.randrange(size))
        shade = rng.uniform(0.82, 1.12)
        cx = size / 2 + rng.uniform(-14, 14) * k
        cy = size / 2 + rng.uniform(-7, 7) * k
        angle = math.radians(rng.uniform(-35, 35))
        variant = rng.random() < (scenario.strength if scenario.name == "new_variant" else 0.0)
        make = make_flange if variant else make_plate
        part = make(rng, cx, cy, angle, k)
        return ScenePlan(part=part, belt_offset=belt_offset, metal_offset=metal_offset, shade=shade)

    def _box(self, label: str, mark: Mark, scenario: Scenario) -> Box:
        points, reach = mark.points, mark.reach
        matrix = camera_matrix(scenario, self.size)
        if matrix is not None:
            points = points @ matrix[:, :2].T + matrix[:, 2]
            reach *= camera_zoom(scenario)
        # Pixel centres sit at integer coordinates, a pixel covers [col, col + 1) of the box.
        x0 = max(0.0, float(points[:, 0].min()) - reach)
        y0 = max(0.0, float(points[:, 1].min()) - reach)
        x1 = min(float(self.size), float(points[:, 0].max()) + reach + 1)
        y1 = min(float(self.size), float(points[:, 1].max()) + reach + 1)
        if x1 <= x0 or y1 <= y0:  # the camera moved the defect out of view
            x1, y1 = min(float(self.size), x0 + 1), min(float(self.size), y0 + 1)
            x0, y0 = x1 - 1, y1 - 1
        return Box(label, round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2))

    def __repr__(self) -> str:
        return (f"SceneGenerator(seed={self.seed}, size={self.size}, "
                f"defect_rate={self.defect_rate}, scenario={str(self.scenario)!r})")


def _as_scenario(value: Scenario | str) -> Scenario:
    if isinstance(value, Scenario):
        return value
    if isinstance(value, str):
        return Scenario.parse(value)
    raise ValueError(f"expected a Scenario or a scenario name such as 'blur:0.5', not {value!r}")


def _check_index(index: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"sample index must be an integer >= 0, not {index!r}")
    return int(index)

