"""Drift scenarios (what changes in the scene, and how strongly) and schedules of them over time.

A :class:`Scenario` names one drift and its strength from 0 (no drift: the image is the
undrifted one) to 1 (full drift). A :class:`Schedule` says which scenario is in force at a
given time, so a simulated device can run "clean for ten minutes, then the lamp dims"::

    Schedule.parse("none@0,lighting@600,blur:0.5@1200").at(700)  # Scenario("lighting")
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

SCENARIOS: tuple[str, ...] = (
    "none",
    "lighting",
    "colour_cast",
    "blur",
    "noise",
    "camera",
    "new_variant",
    "defect_rate",
)
"""Names of the drift scenarios :class:`Scenario` accepts."""

_FORMAT_HINT = "expected name[:strength]@seconds, e.g. 'blur:0.5@1200'"


@dataclass(frozen=True)
class Scenario:
    """One drift of the factory scene at a strength from 0 (none) to 1 (full).

    Only the fields of the named drift matter; each gives the effect at full strength and is
    scaled linearly down to no effect at strength 0:

    - ``lighting``: brightness times ``light_gain`` and gamma ``light_gamma`` (darker lamp).
    - ``colour_cast``: channel gains ``cast_gains`` in B, G, R order (warm cast).
    - ``blur``: Gaussian defocus of ``blur_sigma`` pixels at 128 px (scaled with the size).
    - ``noise``: sensor noise with a standard deviation of ``noise_sigma`` grey levels.
    - ``camera``: the camera moved: zoom ``camera_zoom``, roll ``camera_rotation`` degrees,
      shift ``camera_shift`` as fractions of the image size (x, y). Boxes move with the view;
      a defect near the frame's edge can leave it (about 1 in 70 at full strength), and its
      box is then clipped to the image.
    - ``new_variant``: a new part (a round brass flange instead of the steel plate) on the
      line; ``strength`` is the share of parts that are the new one.
    - ``defect_rate``: the defect share moves from the generator's rate to
      ``target_defect_rate``.
    """

    name: str = "none"
    strength: float = 1.0
    light_gain: float = 0.5
    light_gamma: float = 1.3
    cast_gains: tuple[float, float, float] = (0.7, 1.0, 1.35)
    blur_sigma: float = 2.0
    noise_sigma: float = 22.0
    camera_zoom: float = 1.3
    camera_rotation: float = 12.0
    camera_shift: tuple[float, float] = (0.06, -0.04)
    target_defect_rate: float = 0.9

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r}; known: {', '.join(SCENARIOS)}")
        if isinstance(self.strength, bool) or not isinstance(self.strength, (int, float)):
            raise ValueError(f"scenario strength must be a number, not {self.strength!r}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"scenario strength must be from 0 to 1, not {self.strength!r}")
        if not 0.0 <= self.target_defect_rate <= 1.0:
            raise ValueError(f"target_defect_rate must be from 0 to 1, not {self.target_defect_rate!r}")
        # Normalise ints so Scenario("blur", 1) == Scenario("blur", 1.0) and prints alike.
        object.__setattr__(self, "strength", float(self.strength))

    @classmethod
    def parse(cls, text: str) -> Scenario:
        """Read ``name`` or ``name:strength`` (e.g. ``"blur:0.5"``); ValueError if malformed."""
        name, sep, strength_text = text.strip().partition(":")
        name = name.strip()
        if not sep:
            return cls(name)
        try:
            strength = float(strength_text)
        except ValueError:
            raise ValueError(
                f"bad strength {strength_text.strip()!r} in scenario {text.strip()!r}: "
                "expected a number from 0 to 1"
            ) from None
        if math.isnan(strength):
            raise ValueError(f"bad strength 'nan' in scenario {text.strip()!r}")
        return cls(name, strength)

    def __str__(self) -> str:
        """The ``name[:strength]`` form :meth:`parse` reads back."""
        if self.strength == 1.0:
            return self.name
        return f"{self.name}:{_number(self.strength)}"


NO_DRIFT = Scenario("none")


def _number(value: float) -> str:
    """Shortest text that reads back as exactly ``value`` (600.0 prints as 600)."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class Schedule:
    """Which scenario is in force at a given time (seconds since start): switchable at given times.

    ``Schedule([(0, "none"), (600, "lighting"), (1200, Scenario("blur", 0.5))])`` runs
    undrifted until 600 s, then with dimmed lighting, then half-strength blur from 1200 s on.
    Before the first step no drift is in force. Steps may come in any order; two steps at
    the same time are an error.
    """

    def __init__(self, steps: Sequence[tuple[float, Scenario | str]]) -> None:
        pairs: list[tuple[float, Scenario]] = []
        for number, step in enumerate(steps, start=1):
            try:
                when, scenario = step
            except (TypeError, ValueError):
                raise ValueError(
                    f"schedule step {number} ({step!r}) is not a (seconds, scenario) pair"
                ) from None
            pairs.append((_seconds(when, f"schedule step {number}"), _scenario(scenario)))
        if not pairs:
            raise ValueError("a schedule needs at least one step, e.g. [(0, 'none')]")
        pairs.sort(key=lambda pair: pair[0])
        for (t0, _), (t1, _) in zip(pairs, pairs[1:]):
            if t0 == t1:
                raise ValueError(f"two schedule steps at {_number(t0)} s; give each its own time")
        self._times = [t for t, _ in pairs]
        self._scenarios = [s for _, s in pairs]

    @property
    def steps(self) -> tuple[tuple[float, Scenario], ...]:
        """The steps in time order."""
        return tuple(zip(self._times, self._scenarios))

    def at(self, t: float) -> Scenario:
        """The scenario in force ``t`` seconds after the start."""
        i = bisect.bisect_right(self._times, t) - 1
        return self._scenarios[i] if i >= 0 else NO_DRIFT

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Read ``"none@0,lighting@600,blur:0.5@1200"``: comma-separated ``name[:strength]@seconds``.

        Raises ValueError naming the step that is wrong and what was expected.
        """
        if not text.strip():
            raise ValueError(f"empty schedule: {_FORMAT_HINT}")
        steps: list[tuple[float, Scenario]] = []
        for number, part in enumerate(text.split(","), start=1):
            part = part.strip()
            where = f"schedule step {number} {part!r}"
            if not part:
                raise ValueError(f"schedule step {number} is empty: {_FORMAT_HINT}")
            scenario_text, at_sign, when_text = part.rpartition("@")
            if not at_sign:
                raise ValueError(f"{where} has no '@seconds': {_FORMAT_HINT}")
            if not scenario_text.strip():
                raise ValueError(f"{where} has no scenario name: {_FORMAT_HINT}")
            try:
                when = float(when_text)
            except ValueError:
                raise ValueError(f"{where}: {when_text.strip()!r} is not a number of seconds") from None
            try:
                scenario = Scenario.parse(scenario_text)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
            steps.append((_seconds(when, where), scenario))
        return cls(steps)

    def __str__(self) -> str:
        """The text form :meth:`parse` reads back (only names and strengths survive)."""
        return ",".join(f"{scenario}@{_number(t)}" for t, scenario in self.steps)

    def __repr__(self) -> str:
        return f"Schedule.parse({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self.steps == other.steps

    def __hash__(self) -> int:
        return hash(self.steps)


def _seconds(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: time {value!r} is not a number of seconds")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{where}: time must be a finite number of seconds >= 0, not {value!r}")
    return seconds


def _scenario(value: object) -> Scenario:
    if isinstance(value, Scenario):
        return value
    if isinstance(value, str):
        return Scenario.parse(value)
    raise ValueError(f"expected a Scenario or a scenario name, not {value!r}")
