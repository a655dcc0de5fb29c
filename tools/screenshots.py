"""Screenshots of every page of the app, on the demo's data, for docs/screenshots/.

Run under a real X server (Xvfb is enough)::

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python -m tools.screenshots

It prepares the demo as ``edgeloop demo`` does (release 1, the observer, a running simulated
fleet with a clean and a drifted phase), answers the drift with one pipeline run (so there
are training runs, approvals and a rollout to show), then opens the main window on that
project with the fleet still running, visits every page, selects the first row of what a
page lists, and grabs the screen (the X server's pixels: what a person would see).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from app.fleet.closed_loop import ClosedLoopDemo, DemoSettings, demo_progress

SETTLE_S = 2.5  # after a page's own loading ends: thumbnails, charts, live tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--dir", type=Path, default=None, help="demo folder (default: temp)")
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--no-pipeline", action="store_true",
                        help="skip the pipeline run (faster; no rollout to show)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgeloop-shots-") as scratch:
        root = args.dir or Path(scratch)
        demo = ClosedLoopDemo(root, DemoSettings(devices=args.devices), say=print,
                              progress=demo_progress(print))
        try:
            ctx, admin = demo.prepare(drift=True)
            if not args.no_pipeline:
                try:
                    demo.run_pipeline(ctx, admin)
                except RuntimeError as exc:  # a candidate the gate refuses is real data too
                    print(f"   {exc}; the pages show that")
                time.sleep(20)  # the devices capture meanwhile
            demo.fill_review_queue(ctx, admin)
            project_root = demo.release_project()
            return _shoot(project_root, args.out, root / "settings.ini")
        finally:
            demo.close()


def _shoot(project_root: Path, out: Path, settings_file: Path) -> int:
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QAbstractItemView, QApplication, QListView

    from app.core.project import open_project
    from app.core.users import actor_named
    from app.ui.app import start_fleet_watch
    from app.ui.main_window import MainWindow
    from app.ui.pages import default_pages
    from app.ui.pages.base import PageContext
    from app.ui.tasks import TaskRunner
    from app.ui.theme import Theme

    app = QApplication.instance() or QApplication(sys.argv)
    project = open_project(project_root)
    context = PageContext(project, actor_named(project.db, "admin"), TaskRunner())
    window = MainWindow(context, default_pages(),
                        settings=QSettings(str(settings_file), QSettings.Format.IniFormat))
    window.resize(1360, 860)
    window.move(20, 20)
    window.show()
    start_fleet_watch(context, 15.0)
    out.mkdir(parents=True, exist_ok=True)

    def idle() -> bool:
        return not context.tasks.running_in_front()

    def select_first_rows() -> None:
        for view in window.current_page().findChildren(QAbstractItemView):
            model = view.model()
            if (view.isVisible() and model is not None and model.rowCount() > 0
                    and not view.selectionModel().hasSelection()):
                view.setCurrentIndex(model.index(0, 0))
                if isinstance(view, QListView):  # the Data grid: open the capture too
                    view.doubleClicked.emit(model.index(0, 0))

    def grab(name: str) -> None:
        shot = app.primaryScreen().grabWindow(0, window.x(), window.y(),
                                              window.frameGeometry().width(),
                                              window.frameGeometry().height())
        path = out / f"{name}.png"
        shot.save(str(path))
        print(f"   {path}")

    def steps() -> Iterator[float]:
        yield 3.0
        for page in window.pages:
            window.show_page(page.title)
            yield from _until(idle)
            select_first_rows()
            yield SETTLE_S
            yield from _until(idle)
            grab(page.title.lower())
        window.set_theme(Theme.DARK)
        window.show_page("Monitoring" if any(p.title == "Monitoring" for p in window.pages)
                         else window.pages[0].title)
        yield SETTLE_S
        grab(f"{window.current_page().title.lower()}-dark")
        window.set_theme(Theme.LIGHT)
        window.close()

    def _until(ready) -> Iterator[float]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline:
            yield 0.2

    plan = steps()

    def tick() -> None:
        try:
            QTimer.singleShot(int(next(plan) * 1000), tick)
        except StopIteration:
            app.quit()

    QTimer.singleShot(0, tick)
    app.exec()
    context.tasks.shutdown()
    project.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
