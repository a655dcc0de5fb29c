"""How the project database holds up at 1,000,000 captures.

Inserts N captures (default 1M) over D devices and C classes into a fresh project, then times
the review-queue query (one device, unreviewed, lowest confidence first, a page of 100) and
the count by device and class, each against baselines in the same run: the counts computed by
scanning the captures (with and without their covering index), and the queue query with its
purpose-built index dropped.

    python -m bench.db_scale                 # SQLite, 1M captures
    python -m bench.db_scale --rows 100000   # quicker
    python -m bench.db_scale --db postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text

from bench.common import machine, summary, time_ms
from app.core.captures import count_by_scanning, counts_by_device_and_class, review_queue
from app.core.models import Blob, Capture, Device, LabelClass, utcnow
from app.core.project import init_project

BATCH = 20_000


def populate(project, rows: int, devices: int, classes: int, seed: int) -> float:  # type: ignore[no-untyped-def]
    """Insert the devices, classes and ``rows`` captures; return the seconds it took."""
    rng = random.Random(seed)
    start = time.perf_counter()
    with project.db.write() as s:
        s.execute(insert(Device), [{"uid": f"dev-{i:03}", "name": f"Line {i}"} for i in range(devices)])
        s.execute(insert(LabelClass), [{"name": f"class{i}", "position": i} for i in range(classes)])
    now = utcnow()
    statuses = ["unreviewed"] * 6 + ["reviewed"] * 3 + ["queued"]
    for offset in range(0, rows, BATCH):
        n = min(BATCH, rows - offset)
        shas = [hashlib.sha256(str(offset + i).encode()).hexdigest() for i in range(n)]
        blobs = [{"sha256": sha, "size": 20_000, "media_type": "image/jpeg"} for sha in shas]
        captures = [
            {
                "device_id": rng.randrange(devices) + 1,
                "device_capture_id": f"c{offset + i}",
                "blob_sha256": sha,
                "captured_at": now - timedelta(seconds=rows - offset - i),
                "imported_at": now,
                "reason": "low_confidence",
                "edge_class_id": rng.randrange(classes) + 1,
                "edge_confidence": rng.random(),
                "review_status": rng.choice(statuses),
            }
            for i, sha in enumerate(shas)
        ]
        with project.db.write() as s:
            s.execute(insert(Blob), blobs)
            s.execute(insert(Capture), captures)
    return time.perf_counter() - start


def measure(project, devices: int, repeats: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    results = {}
    device_ids = [1 + (i % devices) for i in range(repeats + 1)]
    with project.db.read() as s:
        it = iter(device_ids)
        results["review queue (page of 100)"] = time_ms(
            lambda: review_queue(s, next(it), limit=100), repeats
        )
        results["count by device and class (capture_counts)"] = time_ms(
            lambda: counts_by_device_and_class(s), repeats
        )
        results["count by device and class (scan, covering index)"] = time_ms(
            lambda: count_by_scanning(s), max(5, repeats // 3)
        )
        assert counts_by_device_and_class(s) == count_by_scanning(s)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in the project)")
    parser.add_argument("--dir", default=None, help="where to make the project (default: temp)")
    args = parser.parse_args()

    root = Path(args.dir or tempfile.mkdtemp(prefix="edgeloop-bench-")) / "project"
    print(f"machine: {machine()}")
    with init_project(root, admin="bench", db_url=args.db) as project:
        print(f"database: {project.db.url.render_as_string(hide_password=True)}")
        seconds = populate(project, args.rows, args.devices, args.classes, seed=1)
        print(f"inserted {args.rows:,} captures in {seconds:.1f} s ({args.rows / seconds:,.0f}/s)")
        with project.db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        indexed = measure(project, args.devices, args.repeats)
        with project.db.engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_captures_review_queue"))
            conn.execute(text("DROP INDEX ix_captures_device_class"))
            conn.execute(text("ANALYZE"))
        baseline = measure(project, args.devices, max(5, args.repeats // 5))
    for name in indexed:
        print(f"{name}: {summary(indexed[name])}")
    print("baselines, purpose-built indexes dropped:")
    for name in ("review queue (page of 100)", "count by device and class (scan, covering index)"):
        print(f"  {name.replace(', covering index', ', no index')}: {summary(baseline[name])}")


if __name__ == "__main__":
    main()
