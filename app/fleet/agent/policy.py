"""The capture policy: which frames a device keeps, and why.

Reasons, in order of precedence: every Nth frame, an opt-in random sample, and low confidence
(under the threshold). The two unbiased reasons come first and the random draw is made for
every frame, so the frames kept as ``every_nth`` or ``random_sample`` are a fair sample of
all frames whatever their confidence: the workstation measures field accuracy and embedding
drift on them. A device whose capture is switched off keeps nothing.
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
        sampled = self.config.random_rate > 0 and self._rng.random() < self.config.random_rate
        if self.config.every_nth > 0 and self._frames % self.config.every_nth == 0:
            return "every_nth"
        if sampled:
            return "random_sample"
        if confidence < self.config.low_confidence:
            return "low_confidence"
        return None
