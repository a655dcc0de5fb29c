"""Long work in a terminal: a progress line fed by a service's progress callback, and Ctrl-C
turned into a cancel token (STYLE.md: one shape of long work, the GUI and the CLI alike)."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import typer

from app.core.progress import Cancelled, CancelToken, Progress

BAR_WIDTH = 24


def describe(step: Progress) -> str:
    """A step as text: a bar when the total is known, the count and message otherwise."""
    if step.total > 0:
        filled = int(BAR_WIDTH * min(1.0, step.done / step.total))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        return f"{step.stage} [{bar}] {step.done:g}/{step.total:g} {step.message}".rstrip()
    return f"{step.stage}: {step.message}" if step.message else f"{step.stage}: {step.done:g}"


class ProgressLine:
    """Shows progress on stderr: one line rewritten in place on a terminal, plain lines
    otherwise (a log, a pipe, a test). Safe to call from worker threads.

    Plain lines are thinned to the first and last step of each stage and at most one a
    ``plain_interval`` seconds in between: a log gets a line per second, not one per image.
    """

    def __init__(self, render: Callable[[Progress], str] = describe,
                 tty: bool | None = None, plain_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.render = render
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.plain_interval = plain_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._open = False  # a rewritten line is on screen without its newline
        self._last: tuple[str, float] | None = None  # stage and time of the last plain line

    def __call__(self, step: Progress) -> None:
        text = self.render(step)
        with self._lock:
            if self.tty:
                width = max(20, shutil.get_terminal_size().columns - 1)
                typer.echo("\r\033[K" + text[:width], err=True, nl=False)
                self._open = True
            elif self._worth_a_line(step):
                typer.echo(text, err=True)

    def _worth_a_line(self, step: Progress) -> bool:
        now = self.clock()
        last = self._last
        finished = step.total > 0 and step.done >= step.total
        if (last is None or last[0] != step.stage or finished
                or now - last[1] >= self.plain_interval):
            self._last = (step.stage, now)
            return True
        return False

    def close(self) -> None:
        """End the rewritten line, so that what follows starts on a line of its own."""
        with self._lock:
            if self._open:
                typer.echo("", err=True)
                self._open = False


@contextmanager
def cancel_on_ctrl_c(what: str) -> Iterator[CancelToken]:
    """A cancel token that the first Ctrl-C sets (the work stops at its next check, keeping
    what it committed); a second Ctrl-C interrupts at once. The old handler comes back after."""
    cancel = CancelToken()
    if threading.current_thread() is not threading.main_thread():
        yield cancel  # signal handlers can only be installed from the main thread
        return
    previous = signal.getsignal(signal.SIGINT)
    restore = previous if previous is not None else signal.default_int_handler

    def on_interrupt(_signum: int, _frame: FrameType | None) -> None:
        typer.echo(f"\nStopping {what} (Ctrl-C again to interrupt at once)...", err=True)
        cancel.cancel()
        signal.signal(signal.SIGINT, restore)

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, restore)


@contextmanager
def long_work(what: str, when_cancelled: str, render: Callable[[Progress], str] = describe,
              ) -> Iterator[tuple[ProgressLine, CancelToken]]:
    """A progress line (drawn by ``render``) and a Ctrl-C cancel token for one long command;
    a cancelled service ends the command with ``when_cancelled`` (what was kept or not) and
    exit status 130."""
    line = ProgressLine(render)
    with cancel_on_ctrl_c(what) as cancel:
        try:
            yield line, cancel
        except Cancelled:
            line.close()
            typer.echo(when_cancelled)
            raise typer.Exit(130) from None
        finally:
            line.close()
