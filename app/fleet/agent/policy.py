"""The capture policy: which frames a device keeps, and why.

Reasons, in order of precedence: low confidence (under the threshold), every Nth frame, and
an opt-in random sample. A device whose capture is switched off keeps nothing.
"""

from __future__ import annotations

import random

from app.fleet.agent.home import CaptureConfig


class CapturePolicy:
    """Decides per frame; the random draw is seeded, so a run can be replayed."""

    def __init__(self, config: CaptureConfig, seed: int = 0) -> None:
        self.config = config
        self._rng = random.Random(seed)
        self._frames = 0

    def reason(self, confidence: float) -> str | None:
        """The capture reason for a frame with this top confidence, or None to skip it."""
        self._frames += 1
        if not self.config.enabled:
            return None
        if confidence < self.config.low_confidence:
            return "low_confidence"
        if self.config.every_nth > 0 and self._frames % self.config.every_nth == 0:
            return "every_nth"
        if self.config.random_rate > 0 and self._rng.random() < self.config.random_rate:
            return "random_sample"
        return None
