"""Next-image latency of the Label and Review pages: ``label-next`` and ``review-next`` of
bench/annotate.py.

Each opens the real page (offscreen, a real TaskRunner, a real SQLite project) over a queue
of ``--images`` captures at ``--side`` pixels (generated scenes, scaled up to a camera's
frame), and answers them one after another by keys as a person would: on the Label page a
number key (the class) and Enter (save and next), on the Review page E (accept the edge
model's class, which saves and moves on). Between two images it waits ``--pace`` ms with
the event loop running (the person looking at the image; 0: as fast as the machine goes).

The latency of one image is from the key that moves on to the next capture's image drawn
on screen: the key is sent (its handler runs), then the event loop runs until the page
shows the next capture with its image (checked after every signal that can bring it: a
card, an image, a row), then the image widget is repainted at once. Saves are not waited
for (they are the database lane's business, and the page shows its state), but the bench
checks at the end that every answer reached the database.

The baseline, measured in the same run on the same project, is the same "next" without any
read-ahead: read what the page shows beside the image (the capture's card; the review row)
and decode its image, on demand, for ``BASELINE`` captures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from bench.common import machine, mark_project_ready, reusable_project

OUT = Path(__file__).resolve().parent / "out"
GENERATED_SIDE = 256  # the scene generator's largest
BASELINE = 100  # captures read and decoded on demand for the baseline


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def queue_project(folder: Path, images: int, side: int, review: bool) -> Path:
    """The project of ``images`` unreviewed captures at ``side`` px in ``folder`` (made now
    or reused); with ``review`` every capture also carries an edge prediction and an
    observation, mined into the review queue."""
    from app.core.project import init_project
    from tests.support.labeling import fill_captures
    from tests.support.review_queue import mine_into_queue

    root = folder / "project"
    wanted = {"images": images, "side": side, "review": review}
    if reusable_project(folder, wanted):
        return root
    say(f"building a project of {images} captures at {side} px in {folder}")
    with init_project(root, admin="admin") as project:
        fill_captures(project, images, size=GENERATED_SIDE, image_side=side)
        if review:
            queued = mine_into_queue(project)
            say(f"  {queued} review items")
    mark_project_ready(folder, wanted)
    return root


def percentile(samples: list[float], share: float) -> float:
    """The ``share`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class NextTimer:
    """Times key-to-image: run the event loop until ``shown()`` holds, re-checking after
    every signal in ``wakers``, then repaint ``widget`` synchronously."""

    def __init__(self, wakers: list, shown: Callable[[], bool], widget) -> None:  # type: ignore[no-untyped-def]
        from PySide6.QtCore import QEventLoop

        self.loop = QEventLoop()
        self.shown, self.widget = shown, widget
        for signal in wakers:
            signal.connect(self._check)

    def _check(self, *_: object) -> None:
        if self.loop.isRunning() and self.shown():
            self.loop.quit()

    def time_ms(self, press: Callable[[], None]) -> float:
        start = time.perf_counter()
        press()
        if not self.shown():
            self.loop.exec()
        self.widget.repaint()
        return (time.perf_counter() - start) * 1000


def wait(ms: int) -> None:
    """Let the event loop run for ``ms`` (0: only what is queued now), as the application's
    own loop runs. Not ``QTest.qWait``: it keeps Python's GIL while it sleeps, so the
    worker threads (saves, reads) would stall for the whole wait."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    if ms > 0:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()
    else:
        QApplication.processEvents()


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        wait(5)


def report(name: str, samples: list[float], baseline: list[float],
           args: argparse.Namespace) -> None:
    print(f"{name}: {len(samples)} images at {args.side} px, pace {args.pace} ms: "
          f"p50 {statistics.median(samples):.1f} ms, p99 {percentile(samples, 0.99):.1f} ms, "
          f"max {max(samples):.1f} ms, over 30 ms: {sum(s > 30 for s in samples)}")
    print(f"  baseline, read and decode on demand ({len(baseline)} captures): "
          f"p50 {statistics.median(baseline):.1f} ms, p99 {percentile(baseline, 0.99):.1f} ms")


def on_demand_ms(read: Callable[[int], str], decode: Callable[[str], object],
                 capture_ids: list[int]) -> list[float]:
    """The baseline: per capture, ``read`` what is shown (returns its blob) and ``decode``
    the blob, with nothing read ahead."""
    samples = []
    for capture_id in capture_ids:
        start = time.perf_counter()
        if decode(read(capture_id)) is None:
            raise SystemExit(f"capture {capture_id}'s image did not decode")
        samples.append((time.perf_counter() - start) * 1000)
    return samples


@contextmanager
def opened_page(page_class, name: str, args: argparse.Namespace, review: bool):  # type: ignore[no-untyped-def]
    """The bench's project (built or reused, then copied to answer in), and ``page_class``
    over it as the admin, shown and refreshed: yields (project, page). The task runner stops
    when the block ends."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.core.project import open_project
    from app.core.users import actor_named
    from app.ui.pages.base import PageContext
    from app.ui.tasks import TaskRunner

    folder = args.dir or OUT / f"annotate-{name}-{args.images}-{args.side}"
    print(f"machine: {machine()}")
    root = queue_project(folder, args.images + 1, args.side, review=review)
    work = folder / "run"
    _fresh_copy(root, work)
    app = QApplication.instance() or QApplication([])
    runner = TaskRunner()
    with open_project(work) as project:
        page = page_class(PageContext(project, actor_named(project.db, "admin"), runner))
        page.resize(1280, 800)
        page.show()
        page.activateWindow()
        page.refresh()
        try:
            yield project, page
        finally:
            page.close()
            runner.shutdown()
            app.processEvents()  # the workers' last signals, before the project closes


def count_rows(project, query) -> int:  # type: ignore[no-untyped-def]
    """The count ``query`` (a ``select(func.count())...``) gives now."""
    with project.db.read() as s:
        return s.scalar(query) or 0


def bench_label_next(args: argparse.Namespace) -> None:
    """Label ``args.images`` captures by keys and time each next image."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from sqlalchemy import func, select

    from app.annotate.capture_card import capture_cards
    from app.annotate.widgets.image_prefetch import decode_image
    from app.annotate.widgets.labeling_pane import LabelingPage
    from app.core.models import Annotation

    with opened_page(LabelingPage, "label-next", args, review=False) as (project, page):
        def shown() -> bool:
            card = page.current_card
            return (card is not None and page.canvas.image is not None
                    and page.walk.images.has(card.blob_sha256))

        wait_until(shown, "the first capture")
        timer = NextTimer([page.walk.cards_arrived, page.walk.images.ready, page.walk.grown],
                          shown, page.canvas)
        keys = [Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5]
        samples = []
        for i in range(args.images):
            wait(args.pace)
            QTest.keyClick(page.canvas, keys[i % len(keys)])
            samples.append(timer.time_ms(lambda: QTest.keyClick(page.canvas, Qt.Key.Key_Return)))
        page.saver.flush()
        current = (select(func.count()).select_from(Annotation)
                   .where(Annotation.superseded.is_(False)))
        wait_until(lambda: count_rows(project, current) == args.images,
                   f"{args.images} labels in the database")
        baseline = on_demand_ms(
            lambda cid: capture_cards(project.db, [cid], "admin")[cid].blob_sha256,
            lambda sha: decode_image(project.blobs, sha), page.walk.ids[:BASELINE])
    report("label-next", samples, baseline, args)


def bench_review_next(args: argparse.Namespace) -> None:
    """Answer ``args.images`` review items with E and time each next image."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from sqlalchemy import func, select

    from app.annotate.widgets.review_page import IMAGE_SIDE, ReviewPage
    from app.core.models import Capture, ReviewItem
    from app.ui.thumbnails import ThumbnailState, decode_thumbnail

    with opened_page(ReviewPage, "review-next", args, review=True) as (project, page):
        expected: list[int | None] = [None]  # the item the next key should bring

        def shown() -> bool:
            row = page.current_row()
            return (row is not None and row.item_id != expected[0]
                    and page.thumbnails.state(row.blob_sha256, IMAGE_SIDE)
                    is not ThumbnailState.PENDING)

        wait_until(shown, "the first item")
        timer = NextTimer([page.walk.moved, page.thumbnails.loaded, page.item_shown],
                          shown, page.image)
        samples = []
        for _ in range(args.images):
            wait(args.pace)
            expected[0] = page.current_row().item_id  # type: ignore[union-attr]
            samples.append(timer.time_ms(lambda: QTest.keyClick(page, Qt.Key.Key_E)))
        closed = (select(func.count()).select_from(ReviewItem)
                  .where(ReviewItem.resolved_at.is_not(None)))
        wait_until(lambda: count_rows(project, closed) == args.images,
                   f"{args.images} answers in the database")

        def read_row(capture_id: int) -> str:
            with project.db.read() as s:
                return s.scalar(select(Capture.blob_sha256).where(Capture.id == capture_id))

        # The items are answered by now: the baseline reads the capture rows the page read.
        with project.db.read() as s:
            capture_ids = list(s.scalars(select(Capture.id).order_by(Capture.id)))
        baseline = on_demand_ms(read_row, lambda sha: decode_thumbnail(project.blobs, sha,
                                                                       IMAGE_SIDE),
                                capture_ids[:BASELINE])
    report("review-next", samples, baseline, args)


def _fresh_copy(root: Path, work: Path) -> None:
    """A copy of the built project to answer in (the built one stays unanswered, reusable)."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(root, work)


def add_parsers(commands) -> None:  # type: ignore[no-untyped-def]
    """The ``label-next`` and ``review-next`` subcommands of bench/annotate.py."""
    for name, run, what in (("label-next", bench_label_next, "the Label page"),
                            ("review-next", bench_review_next, "the Review page")):
        parser = commands.add_parser(name, help=f"next-image latency of {what}")
        parser.add_argument("--images", type=int, default=500)
        parser.add_argument("--side", type=int, default=640, help="image side in pixels")
        parser.add_argument("--pace", type=int, default=0,
                            help="ms the person looks at each image (0: machine speed)")
        parser.add_argument("--dir", type=Path, default=None,
                            help="where the bench project is kept")
        parser.set_defaults(run=run)
