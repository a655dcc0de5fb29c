"""One reviewer's walk through the review queue: rows paged in ahead, answers optimistic.

:class:`ReviewWalk` holds what the Review page walks: the rows loaded so far (keyset pages of
:func:`~app.annotate.review.review_page`, read on the database lane well before the reviewer
reaches them), the position shown, and what this session answered. An answer is recorded
and the walk moves on at once; the write (:func:`~app.annotate.review.decide_item` or
:func:`~app.annotate.review.skip_item`) runs on the database lane behind it, and if it fails
the walk goes back to that item with the answer it had before (``failed``). The database lane
is one worker, so writes and reads run in the order they were asked for: a read asked for
after an answer sees it.

Skipped items come back at the end: when the walk has loaded the whole queue and something
was skipped on the way, it reads the skipped items again from the first (after the skips,
on the lane), so the reviewer meets them once everything else is done.

Its tasks are background tasks: a reviewer answering a capture a second would otherwise
make the status bar flicker with each write, and Esc (cancel the running task) must not
cancel a label being written. Their failures still reach the user as dialogs.

No widget here: the page shows what the walk says, so the walk is the page's state alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.annotate.review import (
    PAGE_SIZE, QueueCounts, ReviewCursor, ReviewFilter, ReviewRow, decide_item, queue_counts,
    review_page, skip_item,
)
from app.ui.pages.base import PageContext
from app.ui.tasks import Task

SKIPPED = None
"""The answer of a skipped item (any other answer is a class name)."""
Answer = str | None
READ_AHEAD = 4  # rows left ahead below which the next page is read (at least)


class ReviewWalk(QObject):
    """The rows of one filter of the queue, the one shown, and this session's answers.

    ``moved``: the row shown changed (or arrived); ``counts_changed``: the per-kind counts;
    ``saved(row)``: an answer is committed; ``failed(row, message)``: an answer was not
    saved and the walk is back on its item; ``load_failed(message)``: rows could not be read.
    """

    moved = Signal()
    counts_changed = Signal()
    saved = Signal(object)
    failed = Signal(object, str)
    load_failed = Signal(str)

    def __init__(self, context: PageContext, page_size: int = PAGE_SIZE,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.page_size = page_size
        self.filter = ReviewFilter()
        self.rows: list[ReviewRow] = []
        self.position = 0
        self.answers: dict[int, Answer] = {}  # item id -> what this session answered
        self.pending: set[int] = set()  # item ids whose answer is not committed yet
        self.counts: QueueCounts | None = None
        self.exhausted = True
        self._cursor: ReviewCursor | None = None
        self._skipped_since_load = False  # skipped on the way since the skipped were read
        self._fetch: Task | None = None
        self._count: Task | None = None

    # -- where the walk is ------------------------------------------------------------------
    def current(self) -> ReviewRow | None:
        return self.rows[self.position] if self.position < len(self.rows) else None

    def ahead(self, count: int) -> list[ReviewRow]:
        """The next ``count`` rows after the one shown (fewer near the end)."""
        return self.rows[self.position + 1:self.position + 1 + count]

    @property
    def loading(self) -> bool:
        return self._fetch is not None or not self.exhausted

    def answer_of(self, row: ReviewRow) -> tuple[bool, Answer]:
        """Whether this session answered the item, and how (SKIPPED or a class name)."""
        return row.item_id in self.answers, self.answers.get(row.item_id)

    # -- loading ----------------------------------------------------------------------------
    def start(self, review_filter: ReviewFilter) -> None:
        """Walk the queue of ``review_filter`` from its top (answers still being written
        are written first: the lane runs them before this read)."""
        self.filter = review_filter
        self.rows, self.position, self.answers = [], 0, {}
        self.pending.clear()
        self._cursor, self.exhausted, self._skipped_since_load = None, False, False
        self._fetch = self._count = None  # results still on their way are ignored
        self.counts = None
        self.counts_changed.emit()
        self.moved.emit()
        self._read_more()
        self._read_counts()

    def _read_more(self) -> None:
        if self._fetch is None and self.exhausted and self._skipped_since_load:
            self._cursor, self.exhausted = ReviewCursor.skipped_start(), False
            self._skipped_since_load = False
        if self._fetch is not None or self.exhausted:
            return
        db, review_filter, cursor, size = (self.context.project.db, self.filter, self._cursor,
                                           self.page_size)
        self._fetch = self.context.tasks.run(
            "Loading the review queue",
            lambda progress, cancel: review_page(db, review_filter, cursor, size),
            background=True)
        self._fetch.succeeded.connect(self._rows_arrived)
        self._fetch.failed.connect(self._rows_failed)

    def _rows_arrived(self, result: tuple[list[ReviewRow], ReviewCursor | None]) -> None:
        if self.sender() is not self._fetch:
            return  # rows of an earlier filter
        rows, self._cursor = result
        self._fetch, self.exhausted = None, self._cursor is None
        self.rows.extend(rows)
        self._read_ahead()
        self.moved.emit()  # the row shown may have arrived, or rows ahead of it

    def _rows_failed(self, message: str) -> None:
        if self.sender() is self._fetch:
            self._fetch, self.exhausted = None, True  # reloading the page tries again
            self.load_failed.emit(message)

    def _read_ahead(self) -> None:
        if len(self.rows) - self.position <= max(READ_AHEAD, self.page_size // 2):
            self._read_more()

    def _read_counts(self) -> None:
        db, review_filter = self.context.project.db, self.filter
        self._count = self.context.tasks.run(
            "Counting the review queue",
            lambda progress, cancel: queue_counts(db, review_filter), background=True)
        self._count.succeeded.connect(self._counted)

    def _counted(self, counts: QueueCounts) -> None:
        if self.sender() is self._count:
            self._count, self.counts = None, counts
            self.counts_changed.emit()

    # -- moving and answering ---------------------------------------------------------------
    def move(self, position: int) -> None:
        self.position = max(0, min(position, len(self.rows)))
        self._read_ahead()
        self.moved.emit()

    def label(self, class_name: str) -> None:
        """Answer the row shown with ``class_name`` and move on."""
        row = self.current()
        if row is None:
            return
        db, audit, actor = self.context.project.db, self.context.project.audit, self.context.actor
        self._answer(row, class_name, f"Saving the review of capture {row.capture_id}",
                     lambda progress, cancel: decide_item(db, audit, actor, row.capture_id,
                                                         class_name))

    def skip(self) -> None:
        """Skip the row shown and move on; one already answered or skipped is left as it is."""
        row = self.current()
        if row is None:
            return
        if row.item_id in self.answers or row.skipped:
            self.move(self.position + 1)
            return
        db, audit, actor = self.context.project.db, self.context.project.audit, self.context.actor
        self._answer(row, SKIPPED, f"Skipping capture {row.capture_id}",
                     lambda progress, cancel: skip_item(db, audit, actor, row.capture_id))

    def _answer(self, row: ReviewRow, answer: Answer, title: str,
                work: Callable[[Any, Any], object]) -> None:
        position, item = self.position, row.item_id
        had, before = item in self.answers, self.answers.get(item)
        old = self._bucket(row)
        self.answers[item] = answer
        self.pending.add(item)
        self._recount(row, old)
        task = self.context.tasks.run(title, work, background=True)  # before move()'s reads
        if self._count is not None:
            self._read_counts()  # the count under way was read before this answer
        self._skipped_since_load |= answer is SKIPPED
        self.move(position + 1)
        task.succeeded.connect(lambda _: self._saved(row))
        task.failed.connect(lambda message: self._put_back(position, row, had, before, message))

    def _saved(self, row: ReviewRow) -> None:
        self.pending.discard(row.item_id)
        self.saved.emit(row)

    def _put_back(self, position: int, row: ReviewRow, had: bool, before: Answer,
                  message: str) -> None:
        """The write failed: back to the item, with the answer it had before."""
        if position >= len(self.rows) or self.rows[position] is not row:
            return  # the walk started over meanwhile: it shows the item as the DB has it
        self.pending.discard(row.item_id)
        old = self._bucket(row)
        if had:
            self.answers[row.item_id] = before
        else:
            self.answers.pop(row.item_id, None)
        self._recount(row, old)
        self.move(position)
        self.failed.emit(row, message)

    def _bucket(self, row: ReviewRow) -> str:
        """Where the item counts now: "waiting", "skipped" or "done" (answered)."""
        if row.item_id in self.answers:
            return "skipped" if self.answers[row.item_id] is SKIPPED else "done"
        return "skipped" if row.skipped else "waiting"

    def _recount(self, row: ReviewRow, old: str) -> None:
        """Keep the counts true without asking the database after every answer."""
        new = self._bucket(row)
        if self.counts is None or new == old:
            return
        by_kind, skipped = dict(self.counts.by_kind), self.counts.skipped
        for bucket, step in ((old, -1), (new, 1)):
            if bucket == "waiting":
                by_kind[row.kind] += step
            elif bucket == "skipped":
                skipped += step
        self.counts = QueueCounts(by_kind, skipped)
        self.counts_changed.emit()
