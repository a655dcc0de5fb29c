"""How the GUI holds up on a large project: one subcommand per bench.

    .venv/bin/python -m bench.ui data-open --captures 1000000    # open the Data page on 1M
    .venv/bin/python -m bench.ui stall                           # event-loop stalls under work

``data-open`` builds (once, then reuses) a project with N captures over 20 devices, whose
images are a few hundred generated scenes, then times in fresh processes, offscreen, from
constructing the Data page to the first page of captures painted and to the first
thumbnails painted. The baselines in the same run are the raw SQL of the first page and a
``SELECT COUNT(*)`` of the captures. A bench is a function ``bench_<name>(args)`` with a
subparser in :func:`main`. ``stall`` is described in bench/ui_stall.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2

from app.core.scene import CLASSES, SceneGenerator
from bench.common import (
    machine, mark_project_ready, reusable_project, seed_bench_project, summary, time_ms,
)

OUT = Path(__file__).resolve().parent / "out"
DEVICES = 20
IMAGES = 300  # distinct images the captures point at; thumbnails decode real PNGs
BATCH = 50_000
# Captures arrive every ~5 s across the fleet, ending here; pulls insert them roughly in
# time order, with a jitter so that id order and time order differ, as they do after pulls.
LAST_CAPTURE = datetime(2026, 11, 20, tzinfo=timezone.utc)
STEP_S, JITTER_S = 5.0, 30.0
STATUSES = ["unreviewed"] * 60 + ["queued"] * 10 + ["reviewed"] * 28 + ["skipped"] * 2
REASONS = ["low_confidence"] * 50 + ["random_sample"] * 30 + ["every_nth"] * 15 + ["manual"] * 5


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- data-open: the Data page on N captures ---------------------------------------------------
def capture_project(folder: Path, captures: int, seed: int = 1) -> tuple[Path, float | None]:
    """The project of ``captures`` captures in ``folder``: made now, or reused if a finished
    one is there. Returns its root and the seconds the build took (None: reused)."""
    root = folder / "project"
    wanted = {"captures": captures, "devices": DEVICES, "images": IMAGES, "seed": seed}
    if reusable_project(folder, wanted):
        return root, None
    start = time.perf_counter()
    shas = seed_bench_project(root, [cv2.imencode(".png", s.image)[1].tobytes()
                                     for s in SceneGenerator(seed=seed, size=128).batch(0, IMAGES)],
                              DEVICES)
    _insert_captures(root / "project.db", captures, shas, seed)
    seconds = time.perf_counter() - start
    mark_project_ready(folder, wanted)
    return root, seconds


def _insert_captures(db_file: Path, captures: int, shas: list[str], seed: int) -> None:
    """Bulk-insert the captures with plain sqlite3 (the triggers keep ``capture_counts``),
    then a label for each reviewed capture; datetimes as SQLAlchemy stores them."""
    rng = random.Random(seed)
    first = LAST_CAPTURE - timedelta(seconds=captures * STEP_S)
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    imported = LAST_CAPTURE.strftime(fmt)
    conn = sqlite3.connect(db_file, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # a bench fixture, rebuilt if a crash spoils it
    sql = ("INSERT INTO captures (device_id, device_capture_id, blob_sha256, captured_at, "
           "imported_at, reason, model_version, edge_class_id, edge_confidence, "
           "observer_class_id, observer_confidence, review_status) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    classes = len(CLASSES)
    for offset in range(0, captures, BATCH):
        rows = []
        for i in range(offset, min(captures, offset + BATCH)):
            at = first + timedelta(seconds=i * STEP_S + rng.uniform(-JITTER_S, JITTER_S))
            reason = rng.choice(REASONS)
            edge = rng.randrange(classes) + 1
            confidence = (rng.uniform(0.3, 0.6) if reason == "low_confidence"
                          else rng.uniform(0.6, 1.0))
            observed = rng.random() < 0.4
            rows.append((
                rng.randrange(DEVICES) + 1, f"c{i:08}", shas[i % len(shas)],
                at.strftime(fmt), imported, reason, "edge-3", edge, confidence,
                (edge if rng.random() < 0.85 else rng.randrange(classes) + 1) if observed
                else None,
                rng.uniform(0.5, 1.0) if observed else None, rng.choice(STATUSES)))
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        say(f"  {offset + len(rows):,} of {captures:,} captures")
    conn.execute("BEGIN")
    # The label agrees with the edge class most of the time.
    conn.execute(
        "INSERT INTO annotations (capture_id, class_id, author_id, source, created_at, "
        "superseded) SELECT id, CASE WHEN id % 7 = 0 THEN 1 ELSE edge_class_id END, 1, "
        "'human', ?, 0 FROM captures WHERE review_status = 'reviewed'", (imported,))
    conn.execute("COMMIT")
    conn.close()


FIRST_PAGE_SQL = (
    "SELECT id, device_id, device_capture_id, captured_at, reason, blob_sha256, model_version, "
    "edge_class_id, edge_confidence, observer_class_id, observer_confidence, review_status "
    "FROM captures ORDER BY captured_at DESC, id DESC LIMIT ?")


def bench_data_open(args: argparse.Namespace) -> None:
    """Time opening the Data page on ``args.captures`` captures (see the module docstring)."""
    from app.core.capture_browser import PAGE_SIZE, CaptureFilter, capture_page, count_captures
    from app.core.project import open_project

    if args.repeats < 5:
        raise SystemExit("--repeats must be at least 5")
    folder = args.dir or OUT / f"ui-{args.captures}"
    print(f"machine: {machine()}")
    root, built = capture_project(folder, args.captures)
    print(f"project: {root} ({'built in %.1f s' % built if built else 'reused'})")
    start = time.perf_counter()
    with open_project(root) as project:  # brings the schema up to date before any timing
        print(f"opened (schema upgrade if any) in {time.perf_counter() - start:.1f} s")
        with project.db.read() as session:
            service_page = time_ms(lambda: capture_page(session, CaptureFilter()), 20)
            service_count = time_ms(lambda: count_captures(session, CaptureFilter()), 20)
    conn = sqlite3.connect(root / "project.db")
    raw_page = time_ms(lambda: conn.execute(FIRST_PAGE_SQL, (PAGE_SIZE + 1,)).fetchall(), 20)
    raw_count = time_ms(lambda: conn.execute("SELECT COUNT(*) FROM captures").fetchall(), 10)
    conn.close()

    cold_rows, cold_thumbs, warm_rows, warm_thumbs = [], [], [], []
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for i in range(args.repeats):
        out = subprocess.run(
            [sys.executable, "-m", "bench.ui", "data-open-once", "--project", str(root),
             "--warm", str(args.warm)],
            env=env, check=True, capture_output=True, text=True,
            cwd=Path(__file__).resolve().parent.parent).stdout
        result = json.loads(out.strip().splitlines()[-1])
        cold_rows.append(result["rows_ms"][0])
        cold_thumbs.append(result["thumbnails_ms"][0])
        warm_rows += result["rows_ms"][1:]
        warm_thumbs += result["thumbnails_ms"][1:]
        say(f"  process {i + 1}: first page {result['rows_ms'][0]:.0f} ms, "
            f"thumbnails {result['thumbnails_ms'][0]:.0f} ms")
    print(f"Data page on {args.captures:,} captures, {args.repeats} fresh processes:")
    print(f"  construct -> first page painted (cold process): {summary(cold_rows)}")
    print(f"  construct -> first thumbnails painted (cold process): {summary(cold_thumbs)}")
    print(f"  construct -> first page painted (page opened again): {summary(warm_rows)}")
    print(f"  construct -> first thumbnails painted (page opened again): {summary(warm_thumbs)}")
    print("baselines, same run:")
    print(f"  raw SQL, first page of {PAGE_SIZE} (sqlite3): {summary(raw_page)}")
    print(f"  raw SQL, SELECT COUNT(*) FROM captures (sqlite3): {summary(raw_count)}")
    print(f"  capture_page(), first page (service): {summary(service_page)}")
    print(f"  count_captures(), no filter (service): {summary(service_count)}")


def bench_data_open_once(args: argparse.Namespace) -> None:
    """One process: construct the Data page ``1 + args.warm`` times; print the times (JSON)."""
    from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    from app.core.project import open_project
    from app.core.users import actor_named
    from app.ui.pages.base import PageContext
    from app.ui.pages.data import DataPage
    from app.ui.tasks import TaskRunner
    from app.ui.thumbnails import ThumbnailState

    class PaintWatch(QObject):
        """Paints the grid's viewport itself, then notes when rows, then thumbnails, were on
        screen (the paint is inside the time, not after it)."""

        def __init__(self, page: DataPage, start: float, loop: QEventLoop) -> None:
            super().__init__()
            self.page, self.start, self.loop = page, start, loop
            self.rows_ms: float | None = None
            self.thumbnails_ms: float | None = None

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
            if event.type() != QEvent.Type.Paint:
                return False
            self.page.grid.viewportEvent(event)
            elapsed = (time.perf_counter() - self.start) * 1000
            rows = self.page.model.rows[:40]
            if rows and self.rows_ms is None:
                self.rows_ms = elapsed
            if self.thumbnails_ms is None and any(
                    self.page.thumbnails.state(r.blob_sha256) is ThumbnailState.READY
                    for r in rows):
                self.thumbnails_ms = elapsed
                self.loop.quit()
            return True

    QApplication([])
    rows_ms, thumbnails_ms = [], []
    with open_project(args.project) as project:
        actor = actor_named(project.db, "bench")
        for _ in range(1 + args.warm):
            context = PageContext(project, actor, TaskRunner())
            loop = QEventLoop()
            start = time.perf_counter()
            page = DataPage(context)
            watch = PaintWatch(page, start, loop)
            page.grid.viewport().installEventFilter(watch)
            page.resize(1100, 700)
            page.show()
            page.refresh()  # what the main window does when it shows a page
            QTimer.singleShot(60_000, loop.quit)
            loop.exec()
            if watch.rows_ms is None or watch.thumbnails_ms is None:
                raise SystemExit("the Data page showed nothing within 60 s")
            rows_ms.append(watch.rows_ms)
            thumbnails_ms.append(watch.thumbnails_ms)
            page.grid.viewport().removeEventFilter(watch)
            page.close()
            context.tasks.shutdown()
            page.deleteLater()
    print(json.dumps({"rows_ms": rows_ms, "thumbnails_ms": thumbnails_ms}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="bench", required=True)
    data_open = commands.add_parser("data-open", help="open the Data page on N captures")
    data_open.add_argument("--captures", type=int, default=1_000_000)
    data_open.add_argument("--repeats", type=int, default=7, help="fresh processes (>= 5)")
    data_open.add_argument("--warm", type=int, default=3,
                           help="further opens of the page in each process")
    data_open.add_argument("--dir", type=Path, default=None,
                           help="where the bench project is kept (default bench/out/ui-N)")
    data_open.set_defaults(run=bench_data_open)
    once = commands.add_parser("data-open-once", help=argparse.SUPPRESS)
    once.add_argument("--project", type=Path, required=True)
    once.add_argument("--warm", type=int, default=3)
    once.set_defaults(run=bench_data_open_once)
    stall = commands.add_parser("stall", help="main-thread stalls during a pull and a training")
    stall.add_argument("--devices", type=int, default=3)
    stall.add_argument("--fill", type=float, default=20.0,
                       help="seconds the devices capture before the pull")
    stall.add_argument("--epochs", type=int, default=4)
    stall.add_argument("--trace", action="store_true",
                       help="print the other threads' stacks when the main thread stalls")
    stall.set_defaults(run=bench_stall)
    args = parser.parse_args()
    args.run(args)


def bench_stall(args: argparse.Namespace) -> None:
    from bench.ui_stall import main_stall

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    main_stall(args.devices, args.fill, args.epochs, args.trace)


if __name__ == "__main__":
    main()
