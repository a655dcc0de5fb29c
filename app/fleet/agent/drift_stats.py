"""Hourly drift statistics kept on the device, so drift is watched without pulling images.

Per hour: histograms of top confidence, brightness (mean grey), contrast (grey std) and the
mean of each colour channel, plus predicted-class counts. Written to drift/<YYYYmmddHH>.json
(UTC hour) atomically, whenever flushed and when the hour turns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.fleet.agent.fsutil import read_json, write_json_atomic

BINS = 20
RANGES = {
    "confidence": (0.0, 1.0),
    "brightness": (0.0, 255.0),
    "contrast": (0.0, 128.0),
    "blue": (0.0, 255.0),
    "green": (0.0, 255.0),
    "red": (0.0, 255.0),
}


def hour_key(t: float) -> str:
    return time.strftime("%Y%m%d%H", time.gmtime(t))


def image_statistics(frame: np.ndarray) -> dict[str, float]:
    """Brightness, contrast and channel means of a BGR frame (on a 64 px thumbnail, for speed)."""
    small = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    means = small.reshape(-1, 3).mean(axis=0)
    return {"brightness": float(grey.mean()), "contrast": float(grey.std()),
            "blue": float(means[0]), "green": float(means[1]), "red": float(means[2])}


class DriftStatistics:
    """Accumulates one hour's histograms and writes them out."""

    def __init__(self, folder: Path, labels: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.labels = labels
        self._hour = hour_key(clock())
        self._reset()
        self._merge_existing()

    def _reset(self) -> None:
        self.counts = {name: np.zeros(BINS, dtype=np.int64) for name in RANGES}
        self.classes: dict[str, int] = {}
        self.n = 0
        self.model_versions: set[str] = set()

    def _merge_existing(self) -> None:
        """A restart within the hour continues that hour's file instead of overwriting it."""
        existing = read_json(self.folder / f"{self._hour}.json")
        if not existing:
            return
        for name, hist in existing.get("histograms", {}).items():
            if name in self.counts and len(hist.get("counts", [])) == BINS:
                self.counts[name] += np.asarray(hist["counts"], dtype=np.int64)
        for label, count in existing.get("classes", {}).items():
            self.classes[label] = self.classes.get(label, 0) + int(count)
        self.n += int(existing.get("n", 0))
        self.model_versions.update(existing.get("model_versions", []))

    def add(self, frame: np.ndarray, confidence: float, label: str, model_version: str) -> None:
        hour = hour_key(self.clock())
        if hour != self._hour:
            self.flush()
            self._hour = hour
            self._reset()
        values = {"confidence": confidence, **image_statistics(frame)}
        for name, value in values.items():
            low, high = RANGES[name]
            index = int((min(max(value, low), high) - low) / (high - low) * BINS)
            self.counts[name][min(index, BINS - 1)] += 1
        self.classes[label] = self.classes.get(label, 0) + 1
        self.model_versions.add(model_version)
        self.n += 1

    def record(self) -> dict[str, Any]:
        return {
            "hour": self._hour,
            "n": self.n,
            "model_versions": sorted(self.model_versions),
            "classes": dict(sorted(self.classes.items())),
            "histograms": {
                name: {"range": list(RANGES[name]), "bins": BINS, "counts": counts.tolist()}
                for name, counts in self.counts.items()
            },
        }

    def flush(self) -> Path | None:
        if self.n == 0:
            return None
        path = self.folder / f"{self._hour}.json"
        write_json_atomic(path, self.record())
        return path
