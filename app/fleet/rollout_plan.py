"""Planning a staged rollout: which devices go in which stage, and what counts as healthy.

Pure functions and value classes, so the staging rules are tested without devices.
NOTES.md: phased rollouts in practice run 3-4 phases (5% -> 15% -> 80% -> all); EdgeLoop's
default is canary devices, then a quarter of the fleet, then all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from app.core.errors import InvalidInput

DEFAULT_SHARES = (0.25, 1.0)


@dataclass(frozen=True)
class HealthBounds:
    """When a freshly activated device counts as healthy.

    The device must report the new version with a status newer than the activation, keep
    at least ``min_fps``, and make at most ``max_error_rate`` errors per frame, over
    ``window_s`` seconds; ``timeout_s`` bounds the whole wait.
    """

    min_fps: float = 0.2
    max_error_rate: float = 0.05
    window_s: float = 6.0
    poll_interval_s: float = 1.0
    timeout_s: float = 60.0

    def to_json(self) -> dict[str, float]:
        return {"min_fps": self.min_fps, "max_error_rate": self.max_error_rate,
                "window_s": self.window_s, "poll_interval_s": self.poll_interval_s,
                "timeout_s": self.timeout_s}

    @classmethod
    def from_json(cls, data: dict[str, float]) -> HealthBounds:
        return cls(**{k: float(v) for k, v in data.items() if k in cls.__dataclass_fields__})


def parse_shares(text: str) -> tuple[float, ...]:
    """"25,100" -> (0.25, 1.0): cumulative percentages of the fleet after the canaries."""
    try:
        values = [float(part) / 100.0 for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(f"--stages {text!r}: give percentages such as 25,100") from None
    if not values or any(not 0 < v <= 1 for v in values) or values != sorted(values):
        raise InvalidInput(f"--stages {text!r}: percentages must rise, each in 1..100")
    if values[-1] != 1.0:
        values.append(1.0)  # a rollout always ends with the whole target set
    return tuple(values)


def plan_stages(targets: Sequence[str], canary: Sequence[str],
                shares: Sequence[float] = DEFAULT_SHARES) -> list[list[str]]:
    """Split ``targets`` into stages: the canaries first (default: the first target), then
    cumulative shares of the whole set. Empty stages are dropped; order is kept."""
    ordered = list(dict.fromkeys(targets))
    if not ordered:
        raise InvalidInput("no target devices: enroll devices first, or name them")
    unknown = [uid for uid in canary if uid not in ordered]
    if unknown:
        raise InvalidInput(f"canary devices {', '.join(unknown)} are not among the targets")
    first = list(dict.fromkeys(canary)) or ordered[:1]
    rest = [uid for uid in ordered if uid not in first]
    stages = [first]
    placed = len(first)
    for share in shares:
        upto = min(len(ordered), max(placed, math.ceil(share * len(ordered))))
        stage = rest[placed - len(first):upto - len(first)]
        if stage:
            stages.append(stage)
            placed = upto
    if placed < len(ordered):
        stages.append(rest[placed - len(first):])
    return stages
