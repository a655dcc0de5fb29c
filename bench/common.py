"""Shared helpers of the benchmarks: timing, medians and a description of the machine."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def machine() -> str:
    """A one-line description of this machine for the results table."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Run ``fn`` ``warmup + repeats`` times; return the timed runs in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list[float]) -> str:
    """Median and p90 of timings in ms."""
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return f"median {statistics.median(ordered):.2f} ms, p90 {p90:.2f} ms (n={len(ordered)})"


def reusable_project(folder: Path, wanted: dict[str, Any]) -> bool:
    """Whether ``folder`` holds a finished bench project built with ``wanted`` (reuse it);
    otherwise create ``folder`` for a new one (mark it with :func:`mark_project_ready`).
    A folder with an unfinished or different project ends the bench with a message."""
    ready = folder / "ready.json"
    if ready.is_file() and json.loads(ready.read_text()) == wanted:
        return True
    if folder.exists():
        raise SystemExit(f"{folder} holds an unfinished or different bench project; "
                         "delete it or give another --dir")
    folder.mkdir(parents=True)
    return False


def mark_project_ready(folder: Path, wanted: dict[str, Any]) -> None:
    """Record that the bench project in ``folder`` is complete, for :func:`reusable_project`."""
    (folder / "ready.json").write_text(json.dumps(wanted))
