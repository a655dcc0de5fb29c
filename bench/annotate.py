"""Annotation at scale: one subcommand per bench.

    .venv/bin/python -m bench.annotate export-coco --labels 100000   # export labels to COCO

``export-coco`` builds (once, then reuses) a project of N labelled captures over 20 devices,
each with a class and the boxes of its image, whose images are a few hundred generated
scenes (bulk-inserted with sqlite3, as bench/ui.py does), then times
``export_labels(..., fmt="coco", copy_images=False)`` from the database to the finished JSON
file, three times, and reports the median. The baselines in the same run are ``json.dump``
of the same document as a plain dict (what any exporter must at least pay to write it) and
``json.dumps`` + one write (the faster encoder the exporter uses).

    .venv/bin/python -m bench.annotate label-next --images 500    # Label page, next image
    .venv/bin/python -m bench.annotate review-next --images 500   # Review page, next image

A bench is a function ``bench_<name>(args)`` with a subparser in :func:`main`; the two
next-image benches drive the real pages and live in bench/annotate_next.py (its docstring
says what is timed).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2

from app.core.scene import CLASSES, SceneGenerator
from bench.annotate_next import add_parsers as add_next_parsers
from bench.common import machine, mark_project_ready, reusable_project, seed_bench_project

OUT = Path(__file__).resolve().parent / "out"
DEVICES = 20
IMAGES = 300
IMAGE_SIZE = 128
BATCH = 50_000
LAST_CAPTURE = datetime(2026, 11, 20, tzinfo=timezone.utc)
STAMP = "%Y-%m-%d %H:%M:%S.%f"  # datetimes as SQLAlchemy stores them in SQLite


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- export-coco: the time to export N labels to COCO JSON -----------------------------------
def labelled_project(folder: Path, labels: int, seed: int = 1) -> tuple[Path, float | None]:
    """The project of ``labels`` labelled captures in ``folder``: made now, or reused if a
    finished one is there. Returns its root and the seconds the build took (None: reused)."""
    root = folder / "project"
    wanted = {"labels": labels, "devices": DEVICES, "images": IMAGES, "seed": seed}
    if reusable_project(folder, wanted):
        return root, None
    start = time.perf_counter()
    samples = SceneGenerator(seed=seed, size=IMAGE_SIZE).batch(0, IMAGES)
    shas = seed_bench_project(
        root, [cv2.imencode(".png", s.image)[1].tobytes() for s in samples], DEVICES)
    _insert_labels(root / "project.db", labels, shas, samples, seed)
    mark_project_ready(folder, wanted)
    return root, time.perf_counter() - start


def _insert_labels(db_file: Path, labels: int, shas: list[str], samples: list, seed: int) -> None:
    """Reviewed captures, one human annotation each (the class of its image) and the boxes of
    its image, with plain sqlite3 (the capture_counts triggers run)."""
    rng = random.Random(seed)
    class_id = {name: i + 1 for i, name in enumerate(CLASSES)}
    first = LAST_CAPTURE - timedelta(seconds=labels * 5)
    stamp = LAST_CAPTURE.strftime(STAMP)
    conn = sqlite3.connect(db_file, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # a bench fixture, rebuilt if a crash spoils it
    for offset in range(0, labels, BATCH):
        rows = []
        for i in range(offset, min(labels, offset + BATCH)):
            sample = samples[i % len(samples)]
            at = first + timedelta(seconds=i * 5 + rng.uniform(-2, 2))
            rows.append((rng.randrange(DEVICES) + 1, f"c{i:08}", shas[i % len(shas)],
                         at.strftime(STAMP), stamp, "random_sample", "edge-3",
                         class_id[sample.label], rng.uniform(0.5, 1.0), "reviewed"))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO captures (device_id, device_capture_id, blob_sha256, captured_at, "
            "imported_at, reason, model_version, edge_class_id, edge_confidence, review_status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        say(f"  {offset + len(rows):,} of {labels:,} captures")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO annotations (capture_id, class_id, author_id, source, created_at, "
                  "superseded, resolves_conflict) SELECT id, edge_class_id, 1, 'human', ?, 0, 0 "
                  "FROM captures ORDER BY id", (stamp,))
    for sha, sample in zip(shas, samples):
        for box in sample.boxes:
            conn.execute(
                "INSERT INTO annotation_boxes (annotation_id, class_id, x, y, width, height) "
                "SELECT a.id, ?, ?, ?, ?, ? FROM annotations a JOIN captures c "
                "ON c.id = a.capture_id WHERE c.blob_sha256 = ? ORDER BY a.id",
                (class_id[box.label], box.x, box.y, box.w, box.h, sha))
    conn.execute("COMMIT")
    conn.close()


def bench_export_coco(args: argparse.Namespace) -> None:
    """Time exporting ``args.labels`` labels to COCO (see the module docstring)."""
    from app.annotate.transfer import export_labels
    from app.core.project import open_project

    folder = args.dir or OUT / f"annotate-export-{args.labels}"
    print(f"machine: {machine()}")
    root, built = labelled_project(folder, args.labels)
    print(f"project: {root} ({'built in %.1f s' % built if built else 'reused'})")
    work = folder / "exports"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    runs: list[float] = []
    with open_project(root) as project:  # brings the schema up to date before any timing
        for i in range(args.repeats):
            start = time.perf_counter()
            report = export_labels(project.db, project.blobs, "coco", work / f"run-{i}",
                                   copy_images=False)
            runs.append(time.perf_counter() - start)
            say(f"  export {i + 1}: {runs[-1]:.2f} s")
    exported = work / "run-0" / "annotations" / "instances_default.json"
    size_mb = exported.stat().st_size / 1e6
    document = json.loads(exported.read_text(encoding="utf-8"))
    dump_runs, dumps_runs = [], []
    for i in range(args.repeats):
        start = time.perf_counter()
        with open(work / f"dump-{i}.json", "w", encoding="utf-8") as fh:
            json.dump(document, fh, ensure_ascii=False, separators=(",", ":"))
        dump_runs.append(time.perf_counter() - start)
        start = time.perf_counter()
        with open(work / f"dumps-{i}.json", "w", encoding="utf-8") as fh:
            fh.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")))
        dumps_runs.append(time.perf_counter() - start)
    shutil.rmtree(work, ignore_errors=True)
    print(f"export_labels(coco, copy_images=False) of {report.images:,} images, "
          f"{report.boxes:,} boxes ({size_mb:.1f} MB JSON), {args.repeats} runs:")
    print(f"  median {statistics.median(runs):.2f} s (min {min(runs):.2f}, max {max(runs):.2f})"
          f" = {report.images / statistics.median(runs):,.0f} labels/s")
    print("baselines, same run, the same document as a plain dict:")
    print(f"  json.dump to a file: median {statistics.median(dump_runs):.2f} s")
    print(f"  json.dumps + one write: median {statistics.median(dumps_runs):.2f} s")


# -- main --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="bench", required=True)
    export = commands.add_parser("export-coco", help="export N labels to COCO JSON")
    export.add_argument("--labels", type=int, default=100_000)
    export.add_argument("--repeats", type=int, default=3)
    export.add_argument("--dir", type=Path, default=None,
                        help="where the bench project is kept (default bench/out/annotate-export-N)")
    export.set_defaults(run=bench_export_coco)
    add_next_parsers(commands)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
