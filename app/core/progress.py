"""The one shape of long work: a progress callback and a cancel token.

Services that take long accept ``progress: ProgressFn`` and ``cancel: CancelToken``; the GUI
feeds the callback into a progress bar on the main thread, the CLI into a text bar.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import EdgeLoopError


class Cancelled(EdgeLoopError):
    """The user cancelled the work; whatever it had committed stays, nothing half-done."""


@dataclass(frozen=True)
class Progress:
    """A step of long work: ``done`` of ``total`` (total 0 when unknown), and details."""

    stage: str
    done: float
    total: float = 0.0
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """A progress callback that shows nothing."""


class CancelToken:
    """Set from any thread; the worker checks it between steps and raises :class:`Cancelled`."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True (at once) if cancelled meanwhile."""
        return self._event.wait(seconds)
