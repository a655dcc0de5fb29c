"""The observer, drift and loop commands as a user runs them (the real console script)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.test_cli import EDGELOOP, cli_project, edgeloop  # noqa: F401 (cli_project is a fixture)


def test_observe_drift_and_loop_commands(cli_project: Path) -> None:  # noqa: F811
    p = ["--project", str(cli_project)]
    none = edgeloop("observe", *p)
    assert none.returncode == 2 and "no observer model" in none.stderr
    assert "Traceback" not in none.stderr
    assert edgeloop("dataset", "generate", "150", "--size", "64", *p).returncode == 0
    assert edgeloop("dataset", "freeze", *p).returncode == 0
    trained = edgeloop("train", "--kind", "observer", "--arch", "edgenet", "--width", "0.5",
                       "--epochs", "1", "--size", "64", "--augment", "none", *p)
    assert trained.returncode == 0, trained.stderr
    wrong = edgeloop("train", "--kind", "observer", "--arch", "resnet", *p)
    assert wrong.returncode == 2 and "unknown architecture 'resnet'" in wrong.stderr
    observed = edgeloop("observe", "--batch", "16", *p)
    assert observed.returncode == 0, observed.stderr
    assert "observer-1: 150 captures observed" in observed.stdout
    # Imported captures are reviewed already: nothing for the queue.
    assert "Review queue: nothing added" in observed.stdout

    chosen = edgeloop("observer", "use", "observer-1", *p)
    assert chosen.returncode == 0 and "The observer is now observer-1" in chosen.stdout
    unknown = edgeloop("observer", "use", "observer-9", *p)
    assert unknown.returncode == 2 and "no model version 'observer-9'" in unknown.stderr

    unmeasured = edgeloop("drift", "measure", *p)
    assert unmeasured.returncode == 2 and "no edge model is deployed" in unmeasured.stderr

    status = edgeloop("loop", "status", *p)
    assert status.returncode == 0 and "No pipeline run yet" in status.stdout
    triggers = edgeloop("loop", "triggers", "--min-new-labels", "100", *p)
    assert triggers.returncode == 0, triggers.stderr
    assert "min_new_labels  100" in triggers.stdout
    assert "Fires now: labels (150 new reviewed labels" not in triggers.stdout  # frozen
    requested = edgeloop("loop", "request", "--reason", "new lens", *p)
    assert requested.returncode == 0
    fires = edgeloop("loop", "triggers", *p)
    assert "Fires now: request" in fires.stdout and "new lens" in fires.stdout
    bad = edgeloop("loop", "triggers", "--schedule-hours", "0", *p)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr

    # No display: the demo says so and falls back to the headless loop, which checks its
    # options first (an unknown scenario ends it before anything starts).
    bare = {k: v for k, v in os.environ.items()
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    nogui = subprocess.run([EDGELOOP, "demo", "--scenario", "fog"], capture_output=True,
                           text=True, env=bare, timeout=120)
    assert "No display here" in nogui.stdout and "headless closed loop" in nogui.stdout
    assert nogui.returncode == 2 and "unknown scenario 'fog'" in nogui.stderr
    scenario = edgeloop("loop", "--auto", "--scenario", "fog")
    assert scenario.returncode == 2 and "unknown scenario 'fog'" in scenario.stderr
