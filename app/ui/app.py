"""Starting the desktop app: a QApplication on a qasync event loop, sign-in, the main window."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.errors import InvalidInput
from app.core.progress import CancelToken
from app.core.project import open_project
from app.core.roles import Actor
from app.core.users import actor_named, list_users

if TYPE_CHECKING:
    from app.ui.pages.base import PageContext
    from app.ui.tasks import Task


def display_available() -> bool:
    """Whether Qt has somewhere to draw: an X or Wayland display, or an explicit platform."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM"))


DEFAULT_WATCH_INTERVAL_S = 60.0


def run_gui(project_path: Path, *, user: str | None = None, db_url: str | None = None,
            watch_interval_s: float = DEFAULT_WATCH_INTERVAL_S,
            stop: CancelToken | None = None) -> int:
    """Open the project, sign in, and run the window until it closes; the exit status.

    While the window is open a background task keeps the fleet's health current (and hands
    running rollouts to devices that come back) every ``watch_interval_s``. Setting ``stop``
    (Ctrl-C in the terminal that started the app) closes the window as its Quit would.
    """
    if not display_available():
        raise InvalidInput("no display to open the app on (DISPLAY is not set); run it on a "
                           "desktop, under Xvfb, or use `edgeloop demo --headless`")
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialog

    from app.ui.main_window import MainWindow
    from app.ui.pages import default_pages
    from app.ui.pages.base import PageContext
    from app.ui.resources import app_icon
    from app.ui.sign_in import SignInDialog
    from app.ui.tasks import TaskRunner

    app = QApplication.instance() or QApplication(sys.argv)
    app.setOrganizationName("EdgeLoop")
    app.setApplicationName("EdgeLoop")
    app.setWindowIcon(app_icon())
    project = open_project(project_path, db_url=db_url)
    try:
        actor = _passwordless(project, user)
        if actor is None:
            dialog = SignInDialog(project, user or "")
            if dialog.exec() != QDialog.DialogCode.Accepted or dialog.actor is None:
                return 1
            actor = dialog.actor
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        context = PageContext(project, actor, TaskRunner())
        window = MainWindow(context, default_pages())
        window.show()
        start_fleet_watch(context, watch_interval_s)
        start_training_warm_up(context)
        app.lastWindowClosed.connect(loop.stop)
        # Also gives Python a moment four times a second, so the terminal's Ctrl-C handler
        # runs while Qt's loop waits.
        stopper = QTimer(window)
        stopper.timeout.connect(lambda: window.close() if stop and stop.cancelled else None)
        stopper.start(250)
        with loop:
            loop.run_forever()
        return 0
    finally:
        project.close()


def start_fleet_watch(context: PageContext, interval_s: float) -> None:
    """Run :func:`~app.fleet.health_watch.watch_fleet` in the background until the window
    closes (closing cancels it)."""
    from app.fleet.context import FleetContext
    from app.fleet.health_watch import watch_fleet

    ctx, actor = FleetContext.of(context.project), context.actor
    context.tasks.run(
        "Watching the fleet",
        lambda progress, cancel: watch_fleet(ctx, actor, interval_s=interval_s, cancel=cancel),
        network=True, background=True)


def start_training_warm_up(context: PageContext) -> Task:
    """Pay torch's one-time setup now, on the compute lane, while the pages load (see
    :func:`~app.core.training.warm_up_training`); a training started later then runs
    without pausing the window."""
    from app.core.training import warm_up_training

    return context.tasks.run("Warming up training", lambda progress, cancel: warm_up_training(
        progress, cancel), compute=True, background=True)


def _passwordless(project, user: str | None) -> Actor | None:  # type: ignore[no-untyped-def]
    """A named user without a password signs in as on the command line (same trust: the
    person at this workstation's account); anyone else goes through the dialog."""
    if user is None:
        return None
    match = next((u for u in list_users(project.db) if u.name == user), None)
    if match is None:
        raise InvalidInput(f"no user {user!r} in this project; `edgeloop users list` shows them")
    return actor_named(project.db, user) if match.password_hash is None else None
