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


def seed_bench_project(root: Path, images: list[bytes], devices: int) -> list[str]:
    """A new SQLite project at ``root`` with ``images`` (PNG bytes) stored as blobs,
    ``devices`` cameras (``line-NN-cam``) and the generator's classes: what the bulk-inserted
    bench projects start from. Returns the blobs' sha256 in the order of ``images``."""
    from datetime import datetime, timezone

    from app.core.models import Blob, Device, LabelClass
    from app.core.project import init_project
    from app.core.scene import CLASSES

    with init_project(root, admin="bench") as project:
        if not project.db.is_sqlite:
            raise SystemExit("the bench project is SQLite (the default project database)")
        shas = project.blobs.put_many(images)
        now = datetime.now(timezone.utc)
        with project.db.write() as s:
            s.add_all(Blob(sha256=sha, size=len(data), media_type="image/png", created_at=now)
                      for sha, data in zip(shas, images))
            s.add_all(Device(uid=f"line-{i:02}-cam", name=f"Line {i} camera")
                      for i in range(1, devices + 1))
            s.add_all(LabelClass(name=name, position=i) for i, name in enumerate(CLASSES))
    return shas
