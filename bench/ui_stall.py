"""How long the main window's event loop stalls while a pull and a training run work.

A QTimer asks to fire every 5 ms on the main thread; the gap between two firings beyond
those 5 ms is a stall, time in which the window could not repaint or take a click. The
bench measures the gaps for the same length of time twice in one run: with the window idle
(the baseline), and while a real pull from a running simulated fleet (captures waiting in
the devices' spools) and a real training run go on through the window's TaskRunner, with
the Training page showing the live curves. Goal: no stall over 50 ms.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.project import init_project
from app.core.users import actor_named
from app.fleet.context import FleetContext
from app.fleet.enrollment import Bootstrap, enroll
from app.fleet.signing import load_or_create_signing_key
from app.fleet.simulator import SimDeviceSpec, SimulatedFleet
from bench.common import machine
from tests.support.releases import make_release
from tests.support.ssh import client_key

TICK_MS = 5
STALL_GOAL_MS = 50.0


@dataclass(frozen=True)
class Gaps:
    """Stalls (ms beyond the tick) seen over one stretch."""

    label: str
    seconds: float
    stalls: list[float]

    def line(self) -> str:
        s = sorted(self.stalls) or [0.0]
        p99 = s[min(len(s) - 1, int(0.99 * (len(s) - 1)))]
        over = sum(1 for x in s if x > STALL_GOAL_MS)
        return (f"{self.label:<28} {self.seconds:6.1f} s  ticks {len(s):6d}  median "
                f"{statistics.median(s):5.1f} ms  p99 {p99:6.1f} ms  max {max(s):6.1f} ms  "
                f"over {STALL_GOAL_MS:.0f} ms: {over}")


class StallMeter:
    """Records the stall of each tick of a fast main-thread timer."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.stalls: list[float] = []
        self.worst: list[tuple[float, float]] = []  # (when, stall) of stalls over 20 ms
        self._last = 0.0

    def start(self) -> None:
        self.stalls, self.worst = [], []
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return self.stalls

    def _tick(self) -> None:
        now = time.perf_counter()
        stall = max(0.0, (now - self._last) * 1000 - TICK_MS)
        self.stalls.append(stall)
        if stall > 20:
            self.worst.append((now, stall))
        self._last = now


class StallTracer:
    """With ``--trace``: a watchdog thread that, when the main thread's timer is over 100 ms
    late, prints every other thread's stack once: what held the interpreter meanwhile."""

    def __init__(self, meter: StallMeter) -> None:
        import threading

        self.meter = meter
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="stall-tracer", daemon=True)

    def _watch(self) -> None:
        import sys
        import threading
        import traceback

        main = threading.main_thread().ident
        reported = 0.0
        while not self.stop.wait(0.01):
            late = time.perf_counter() - self.meter._last
            if late > 0.1 and self.meter.timer.isActive() and self.meter._last != reported:
                reported = self.meter._last
                print(f"-- main thread {late * 1000:.0f} ms late; other threads:", flush=True)
                for ident, frame in sys._current_frames().items():
                    if ident != threading.get_ident():
                        print("MAIN" if ident == main else "thread", flush=True)
                        importing = [f.f_locals.get("name") for f, _ in traceback.walk_stack(frame)
                                     if f.f_code.co_name == "_find_and_load"]
                        if importing:
                            print(f"  importing {importing[::-1]}", flush=True)
                        print("".join(traceback.format_stack(frame, limit=6)), flush=True)


def run_stall(devices: int = 3, fill_s: float = 20.0, scenes: int = 900, epochs: int = 4,
              size: int = 64, trace: bool = False) -> list[Gaps]:
    """Build the project and fleet, then measure idle and loaded stretches (see module)."""
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from app.fleet.pull import pull_devices
    from app.ui.app import start_training_warm_up
    from app.ui.main_window import MainWindow
    from app.ui.pages import default_pages
    from app.ui.pages.base import PageContext
    from app.ui.tasks import TaskRunner

    app = QApplication.instance() or QApplication([])
    app.setApplicationName("EdgeLoop stall bench")
    with tempfile.TemporaryDirectory(prefix="edgeloop-stall-") as scratch:
        root = Path(scratch)
        project = init_project(root / "project", admin="admin")
        admin = actor_named(project.db, "admin")
        print(f"generating {scenes} scenes for the training set ...", flush=True)
        import_generated(project.db, project.blobs, project.audit, admin, scenes, size=size)
        freeze_version(project.db, project.audit, admin, notes="stall bench")
        key = load_or_create_signing_key(project.keys_dir)
        release, _ = make_release(root / "releases", "edge-1", key, seed=1)
        _, public = client_key(root)
        tag = uuid.uuid4().hex[:6]
        fleet = SimulatedFleet(root / "sim", key, release,
                               [SimDeviceSpec(f"s{tag}-{i + 1}", seed=10 + i, fps=20.0,
                                              random_rate=1.0) for i in range(devices)],
                               authorized_keys=[public])
        try:
            sims = fleet.start()
            ctx = FleetContext.of(project)
            for sim in sims:
                enroll(ctx, admin, sim.spec.device_id,
                       confirmed_fingerprint=sim.endpoint.host_key_fingerprint,
                       address=sim.endpoint.host, port=sim.endpoint.port,
                       bootstrap=Bootstrap(key_file=root / "id_ed25519"))
            print(f"devices capture for {fill_s:.0f} s ...", flush=True)
            time.sleep(fill_s)

            runner = TaskRunner()
            window = MainWindow(PageContext(project, admin, runner), default_pages(),
                                settings=QSettings(str(root / "ui.ini"),
                                                   QSettings.Format.IniFormat),
                                show_error=lambda title, message: print("ERROR", title, message))
            window.resize(1280, 800)
            window.show()
            window.show_page("Training")
            meter = StallMeter()
            tracer = StallTracer(meter) if trace else None
            if tracer is not None:
                tracer.thread.start()

            def spin(seconds: float) -> None:
                loop = QEventLoop()
                QTimer.singleShot(int(seconds * 1000), loop.quit)
                loop.exec()

            # Startup as the app does it: the pages' first loads and the training warm-up
            # (app.ui.app.start_training_warm_up), measured as a stretch of its own.
            start = time.perf_counter()
            meter.start()
            warm = start_training_warm_up(window.context)
            spin(1.0)
            while warm.running:
                spin(0.1)
            startup = Gaps("startup (pages + warm-up)", time.perf_counter() - start,
                           meter.stop())
            spin(2.0)  # the Training page lists the dataset

            start = time.perf_counter()
            training_page = window.page("Training")
            meter.start()
            pull = runner.run("Pulling captures", lambda progress, cancel: pull_devices(
                ctx, admin, progress=progress, cancel=cancel), network=True)
            # The training starts as a person starts it: the Training page's form and Start.
            training_page.epochs.setValue(epochs)
            training_page.size.setValue(size)
            training_page.start_button.click()
            train = training_page.task
            if train is None:
                raise RuntimeError("the Training page offered no dataset version to train on")
            pulled: list[object] = []
            pull.succeeded.connect(pulled.append)
            pull.failed.connect(lambda m: print("pull failed:", m))
            train.failed.connect(lambda m: print("training failed:", m))
            while pull.running or train.running:
                spin(0.1)
            loaded = Gaps("pull + training", time.perf_counter() - start, meter.stop())
            results_of_pull = pulled[0] if pulled else []
            print(f"pulled {sum(r.imported for r in results_of_pull)} captures from "
                  f"{len(results_of_pull)} devices", flush=True)
            for at, stall in sorted(meter.worst, key=lambda w: -w[1])[:5]:
                print(f"  stall {stall:6.1f} ms at {at - start:6.2f} s", flush=True)

            meter.start()
            spin(min(loaded.seconds, 30.0))
            idle = Gaps("idle window (baseline)", min(loaded.seconds, 30.0), meter.stop())
            results = [startup, idle, loaded]
            window.close()
            runner.shutdown()
            if tracer is not None:
                tracer.stop.set()
                tracer.thread.join()
        finally:
            fleet.stop()
            project.close()
    return results


def main_stall(devices: int, fill_s: float, epochs: int, trace: bool = False) -> None:
    print(machine())
    for gaps in run_stall(devices=devices, fill_s=fill_s, epochs=epochs, trace=trace):
        print(gaps.line())
