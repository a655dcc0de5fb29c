"""How fast the procedural factory scene renders, and what it looks like.

Times SceneGenerator.sample on one core (OpenCV held to one thread) at 128 and 256 px for the
undrifted scene and the two costliest drifts, and writes a contact sheet: one row per class,
then one row per drift scenario (same indices in every scenario row, so rows compare), then a
row of defects with their boxes drawn.

    python -m bench.scene                          # sheet to bench/out/scene_sheet.png
    python -m bench.scene --sheet /tmp/sheet.png --count 2000
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from app.core.scene import CLASSES, SCENARIOS, SceneGenerator
from bench.common import machine, summary, time_ms

TIMED = ("none", "noise", "blur")
LABEL_WIDTH = 110


def throughput(size: int, scenario: str, count: int, repeats: int) -> tuple[float, float, list[float]]:
    """Images/s from the median wall-clock run and from CPU time, and the runs' times in ms.

    CPU time is the fairer number on a shared machine (it leaves out time spent waiting for
    the core), wall-clock the one a single-threaded caller sees.
    """
    gen = SceneGenerator(seed=1, size=size)
    cpu_start = time.process_time()
    runs = time_ms(lambda: gen.batch(0, count, scenario), repeats=repeats, warmup=1)
    cpu_per_run = (time.process_time() - cpu_start) / (repeats + 1)
    return count / (statistics.median(runs) / 1000), count / cpu_per_run, runs


def contact_sheet(columns: int, size: int = 128) -> np.ndarray:
    gen = SceneGenerator(seed=1, size=size)
    rows: list[tuple[str, list[np.ndarray]]] = []
    for label in CLASSES:
        rows.append((label, [gen.sample(i, force_label=label).image for i in range(columns)]))
    for name in SCENARIOS:
        rows.append((f"~{name}", [gen.sample(100 + i, name).image for i in range(columns)]))
    boxed = []
    for i in range(columns):
        sample = gen.sample(200 + i, force_label=CLASSES[1 + i % 4])
        image = sample.image.copy()
        for box in sample.boxes:
            cv2.rectangle(image, (int(box.x), int(box.y)),
                          (int(np.ceil(box.x + box.w)) - 1, int(np.ceil(box.y + box.h)) - 1),
                          (0, 255, 0), 1)
        boxed.append(image)
    rows.append(("boxes", boxed))
    lines = []
    for title, images in rows:
        label = np.full((size, LABEL_WIDTH, 3), 255, np.uint8)
        cv2.putText(label, title, (4, size // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        lines.append(np.hstack([label, *images]))
    return np.vstack(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheet", type=Path, default=Path("bench/out/scene_sheet.png"))
    parser.add_argument("--count", type=int, default=1000, help="samples per timed run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--columns", type=int, default=8)
    args = parser.parse_args()

    cv2.setNumThreads(1)  # "per core": OpenCV would otherwise spread blur and warps over threads
    print(machine())
    print(f"OpenCV {cv2.__version__} (1 thread), numpy {np.__version__}")
    print(f"{'size':>5} {'scenario':<10} {'images/s':>9} {'(CPU time)':>10}   per run of {args.count}")
    for size in (128, 256):
        for scenario in TIMED:
            rate, cpu_rate, runs = throughput(size, scenario, args.count, args.repeats)
            print(f"{size:>5} {scenario:<10} {rate:>9.0f} {cpu_rate:>10.0f}   {summary(runs)}")

    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.sheet), contact_sheet(args.columns)):
        raise SystemExit(f"could not write {args.sheet}")
    print(f"contact sheet: {args.sheet}")


if __name__ == "__main__":
    main()
