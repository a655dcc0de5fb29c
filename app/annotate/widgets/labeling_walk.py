"""The walk through the labeling queue: which captures, where the pane is, and what is read
ahead of it.

:class:`LabelingWalk` reads the queue (:func:`app.annotate.labeling.labeling_queue`) a page
at a time on the database lane, the next page when the walk nears the end of what it has,
and at the very end the queue again (captures pulled meanwhile). Captures walked stay in
the walk (Previous and undo across captures reach them), even once labeled.

Around the capture shown it reads ahead: the cards (:func:`~app.annotate.capture_card.
capture_cards`, a batch per task so the lane sees few tasks) and, through an
:class:`~app.annotate.widgets.image_prefetch.ImagePrefetcher`, the images. With both ready
"Next" needs no query and no decode: it shows at once.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.annotate.capture_card import CaptureCard, capture_cards
from app.annotate.labeling import class_names, labeling_queue
from app.annotate.widgets.image_prefetch import ImagePrefetcher
from app.core.capture_browser import CaptureFilter, CaptureRow, PageCursor
from app.core.models import ReviewStatus
from app.ui.pages.base import PageContext

CARDS_BEHIND, CARDS_AHEAD = 2, 8  # cards kept read around the capture shown
CARDS_BATCH = 16  # read this many more at once when one is missing: few tasks on the lane
QUEUE_REFILL = 20  # this close to the end of the queue read so far, the next page is read
IMAGES_AHEAD = 4  # images decoded ahead (and one behind)


class LabelingWalk(QObject):
    """The captures walked, the position, and the cards and images read ahead of it.

    ``grown`` says the queue read more captures (or read that it has none), ``classes_read``
    gives the label schema read with it, ``cards_arrived`` the cards of a batch.
    """

    grown = Signal()
    classes_read = Signal(object)  # tuple of class names
    cards_arrived = Signal(object)  # dict: capture id -> CaptureCard

    def __init__(self, context: PageContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.images = ImagePrefetcher(context.project.blobs, parent=self)
        self.ids: list[int] = []  # capture ids, in the queue's order
        self.position = -1
        self.cards: dict[int, CaptureCard] = {}
        self.status = ReviewStatus.UNREVIEWED
        self.loading = False
        self.loaded = False  # a first page has been read
        self._cursor: PageCursor | None = None  # where the queue's next page starts
        self._shas: dict[int, str] = {}  # capture id -> blob, from the queue's rows
        self._cards_wanted: set[int] = set()
        self._generation = 0  # a read for an earlier walk is dropped when it lands

    # -- where the walk is ------------------------------------------------------------------
    @property
    def current(self) -> int | None:
        """The capture shown (None: none)."""
        return self.ids[self.position] if 0 <= self.position < len(self.ids) else None

    @property
    def current_card(self) -> CaptureCard | None:
        current = self.current
        return self.cards.get(current) if current is not None else None

    @property
    def at_end(self) -> bool:
        return self.position >= len(self.ids) - 1

    def move_to(self, position: int) -> None:
        """Go to the ``position``-th capture and read ahead around it."""
        self.position = position
        self._want_images()
        self._want_cards()
        if self._cursor is not None and self.position >= len(self.ids) - QUEUE_REFILL:
            self.read_more()

    def set_status(self, status: ReviewStatus) -> None:
        """Walk the captures of another review status instead, from the newest."""
        self.status = status
        self._generation += 1
        self.ids, self.position = [], -1
        self._cursor, self.loaded, self.loading = None, False, False
        self.read_more()

    # -- reading the queue ------------------------------------------------------------------
    def read_more(self) -> None:
        """Read the first page of the queue the first time; later, the next page when the
        walk nears the end of what is read, and at the very end the queue again."""
        if self.loading:
            return
        if self.loaded and not self.at_end and (
                self._cursor is None or self.position < len(self.ids) - QUEUE_REFILL):
            return
        self.loading = True
        # At the end of a queue read to its last page, read it again from the start:
        # captures pulled meanwhile are the newest (the ones walked already are left out).
        cursor = self._cursor if self._cursor is not None or not self.loaded else None
        db, known = self.context.project.db, set(self.ids)
        wanted, generation = CaptureFilter(review_status=self.status), self._generation

        def work(progress, cancel):  # type: ignore[no-untyped-def]
            rows, after = labeling_queue(db, wanted, after=cursor)
            return class_names(db), [r for r in rows if r.id not in known], after

        task = self.context.tasks.run("Reading the labeling queue", work, background=True)
        task.succeeded.connect(lambda result: self._arrived(generation, result))
        task.finished.connect(lambda: self._read_done(generation))

    def _read_done(self, generation: int) -> None:
        if generation == self._generation:
            self.loading = False

    def _arrived(self, generation: int,
                 result: tuple[list[str], list[CaptureRow], PageCursor | None]) -> None:
        if generation != self._generation:
            return
        names, rows, self._cursor = result
        self.loading, self.loaded = False, True
        self.classes_read.emit(tuple(names))
        self.ids.extend(row.id for row in rows)
        self._shas.update((row.id, row.blob_sha256) for row in rows)
        if self.position >= 0:
            self.move_to(self.position)  # read ahead into what arrived
        self.grown.emit()

    # -- reading ahead ----------------------------------------------------------------------
    def _want_cards(self) -> None:
        low = max(0, self.position - CARDS_BEHIND)

        def unread(high: int) -> list[int]:
            return [cid for cid in self.ids[low:high]
                    if cid not in self.cards and cid not in self._cards_wanted]

        if not unread(self.position + CARDS_AHEAD + 1):
            return
        ids = unread(self.position + CARDS_AHEAD + CARDS_BATCH + 1)
        self._cards_wanted.update(ids)
        db, author = self.context.project.db, self.context.actor.name
        task = self.context.tasks.run("Reading captures to label",
                                      lambda progress, cancel: capture_cards(db, ids, author),
                                      background=True)
        task.succeeded.connect(self._cards_read)
        task.finished.connect(lambda: self._cards_wanted.difference_update(ids))

    def _cards_read(self, cards: dict[int, CaptureCard]) -> None:
        self.cards.update(cards)
        self.cards_arrived.emit(cards)

    def _want_images(self) -> None:
        around = [self.position + d for d in range(IMAGES_AHEAD + 1)] + [self.position - 1]
        self.images.want(*[self._shas[self.ids[p]] for p in around if 0 <= p < len(self.ids)])

    def shutdown(self) -> None:
        """Stop the image workers (a later request starts them again)."""
        self.images.shutdown()
