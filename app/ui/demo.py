"""``edgeloop demo`` on a desktop: a fresh demo project, a running simulated fleet, the app.

The demo's setup (release 1 and the observer trained on generated scenes of the stations,
the fleet started, discovered over mDNS on loopback and enrolled, a clean phase and a
drifted phase pulled, observed and measured) is the headless loop's own
(:meth:`~app.fleet.closed_loop.ClosedLoopDemo.prepare`); then the app opens on that project
with the fleet still running, so every page has real data and the devices keep capturing.
Closing the window stops the fleet.
"""

from __future__ import annotations

from pathlib import Path

from app.core.progress import CancelToken, ProgressFn
from app.fleet.closed_loop import ClosedLoopDemo, DemoSettings, Say
from app.ui.app import run_gui

DEMO_WATCH_INTERVAL_S = 15.0


def run_demo_app(root: Path, settings: DemoSettings, *, say: Say, progress: ProgressFn,
                 cancel: CancelToken, drift: bool = True) -> int:
    """Prepare the demo under ``root`` and run the app on it; the app's exit status."""
    demo = ClosedLoopDemo(root, settings, say=say, progress=progress, cancel=cancel)
    try:
        ctx, admin = demo.prepare(drift=drift)
        demo.fill_review_queue(ctx, admin)
        project_root = demo.release_project()
        say(f"== the app opens on {project_root} (signed in as admin); the simulated fleet "
            "runs until the window closes")
        return run_gui(project_root, user="admin", watch_interval_s=DEMO_WATCH_INTERVAL_S,
                       stop=cancel)
    finally:
        demo.close()
