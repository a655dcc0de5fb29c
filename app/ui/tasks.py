"""Long work off the UI thread: one shape for pulls, training, compression and deploys.

A service function takes a progress callback and a cancel token (app.core.progress). The GUI
runs it through :class:`TaskRunner`: the function runs on a worker thread, and its progress,
result or error come back as Qt signals, delivered on the main thread. Worker code never
touches a widget. Work that writes the project database goes to one single-worker lane (so
two writers never contend); network work to a pool of its own; compute work (training,
compression: minutes of CPU or GPU each) to a single-worker lane of its own, so it never holds
up the database lane and two of them queue rather than share the device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.errors import EdgeLoopError
from app.core.progress import Cancelled, CancelToken, Progress

log = logging.getLogger(__name__)

Work = Callable[[Callable[[Progress], None], CancelToken], Any]
"""A unit of long work: ``work(progress, cancel) -> result``."""


class Task(QObject):
    """One running piece of work. Its signals arrive on the main thread.

    ``failed`` carries a message for the user: an EdgeLoop error's own text (it says what to
    do), or for anything unexpected a short sentence and the exception, with the traceback in
    the log.
    """

    progressed = Signal(object)  # Progress
    succeeded = Signal(object)  # the work's return value
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()  # after any of the three above

    def __init__(self, title: str, parent: QObject | None = None, background: bool = False) -> None:
        super().__init__(parent)
        self.title = title
        # A background task (a watcher that lives as long as the window) is not shown in
        # the status bar; its failures still reach the user.
        self.background = background
        self.cancel_token = CancelToken()
        self.future: Future[Any] | None = None

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self.cancel_token.cancel()

    @property
    def running(self) -> bool:
        """Submitted or under way, and not yet done."""
        return self.future is None or not self.future.done()


class TaskRunner(QObject):
    """Starts tasks on the database lane or the network pool and tracks them."""

    started = Signal(object)  # Task
    ended = Signal(object)  # Task

    def __init__(self, parent: QObject | None = None, network_workers: int = 4) -> None:
        super().__init__(parent)
        self._db_lane = ThreadPoolExecutor(1, thread_name_prefix="ui-db")
        self._network = ThreadPoolExecutor(network_workers, thread_name_prefix="ui-net")
        self._compute = ThreadPoolExecutor(1, thread_name_prefix="ui-compute")
        self.tasks: list[Task] = []
        self._closed = False

    def run(self, title: str, work: Work, *, network: bool = False, compute: bool = False,
            background: bool = False) -> Task:
        """Start ``work`` (on the database lane unless ``network`` or ``compute``); connect to
        the returned task's signals for its outcome."""
        task = Task(title, self, background)
        self.tasks.append(task)
        # A bound slot of an object of the main thread: Qt queues the call there.
        task.finished.connect(self._forget_sender)
        pool = self._compute if compute else self._network if network else self._db_lane
        # Submitted from the event loop, not now: the caller connects to the task's signals
        # right after this returns, and a fast piece of work must not finish before that.
        QTimer.singleShot(0, lambda: self._submit(pool, task, work))
        return task

    def _submit(self, pool: ThreadPoolExecutor, task: Task, work: Work) -> None:
        if self._closed:
            return
        # Announced before it can run: listeners (the window's failure dialog) connect in
        # their slot for `started`, and a task that fails at once must not beat them.
        self.started.emit(task)
        task.future = pool.submit(self._call, task, work)

    @staticmethod
    def _call(task: Task, work: Work) -> None:
        # Runs on a worker: only signal emission here, never a widget.
        try:
            result = work(task.progressed.emit, task.cancel_token)
        except Cancelled:
            task.cancelled.emit()
        except EdgeLoopError as exc:
            task.failed.emit(str(exc))
        except Exception as exc:  # the user gets a sentence; the log gets the traceback
            log.exception("%s failed", task.title)
            task.failed.emit(f"{task.title} failed unexpectedly: {type(exc).__name__}: {exc}. "
                             "The log has the details.")
        else:
            task.succeeded.emit(result)
        task.finished.emit()

    def _forget_sender(self) -> None:
        task = self.sender()
        if task in self.tasks:
            self.tasks.remove(task)
        self.ended.emit(task)

    def running(self) -> list[Task]:
        return [t for t in self.tasks if t.running]

    def running_in_front(self) -> list[Task]:
        """The running tasks the user started and waits on (not background watchers)."""
        return [t for t in self.running() if not t.background]

    def shutdown(self, cancel: bool = True) -> None:
        """Cancel what runs and wait for the workers (closing the window calls this)."""
        self._closed = True
        if cancel:
            for task in list(self.tasks):
                task.cancel()
        for pool in (self._db_lane, self._network, self._compute):
            pool.shutdown(wait=True)
