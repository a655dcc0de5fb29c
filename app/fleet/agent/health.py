"""The device's health: latency, fps, resource use and errors, written to state/status.json.

The workstation polls this file over SSH (``edgeloop-agent ctl status``); it is replaced
atomically, so a reader never sees half of it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.fleet.agent.fsutil import write_json_atomic

LATENCY_WINDOW = 1000
FPS_WINDOW_S = 10.0


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class HealthMonitor:
    """Collects per-frame timings and counters; ``snapshot`` makes the status record."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started = clock()
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.frame_times: deque[float] = deque()
        self.frames = 0
        self.drops = 0
        self.captures = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._cpu_mark = (time.process_time(), time.monotonic())
        self._cpu_percent = 0.0

    def frame(self, latency_ms: float) -> None:
        now = self.clock()
        self.frames += 1
        self.latencies_ms.append(latency_ms)
        self.frame_times.append(now)
        while self.frame_times and now - self.frame_times[0] > FPS_WINDOW_S:
            self.frame_times.popleft()

    def error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        self.last_error_at = self.clock()

    def fps(self) -> float:
        if len(self.frame_times) < 2:
            return 0.0
        span = self.frame_times[-1] - self.frame_times[0]
        return (len(self.frame_times) - 1) / span if span > 0 else 0.0

    def _cpu(self) -> float:
        cpu, wall = time.process_time(), time.monotonic()
        last_cpu, last_wall = self._cpu_mark
        if wall - last_wall >= 0.5:
            self._cpu_percent = 100.0 * (cpu - last_cpu) / (wall - last_wall)
            self._cpu_mark = (cpu, wall)
        return self._cpu_percent

    def snapshot(self, home: Path, extra: dict[str, Any]) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        disk = shutil.disk_usage(home)
        return {
            "time": self.clock(),
            "uptime_s": round(self.clock() - self.started, 3),
            "pid": os.getpid(),
            "fps": round(self.fps(), 3),
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
                "p99": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
            },
            "frames": self.frames,
            "drops": self.drops,
            "captures": self.captures,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "cpu_percent": round(self._cpu(), 1),
            "memory_bytes": _rss_bytes(),
            "disk": {"free_bytes": disk.free, "total_bytes": disk.total},
            **extra,
        }

    def write(self, path: Path, home: Path, extra: dict[str, Any]) -> dict[str, Any]:
        record = self.snapshot(home, extra)
        write_json_atomic(path, record)
        return record
