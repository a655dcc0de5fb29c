"""`edgeloop gui`, the real entry point, in its own process (its event loop must not share
pytest-qt's): it signs the password-less admin in, runs until told to stop, and Ctrl-C in
its terminal closes it cleanly, window state saved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from app.core.project import Project


def test_the_app_runs_until_ctrl_c_closes_it_cleanly(sqlite_project: Project) -> None:
    root = sqlite_project.root
    sqlite_project.close()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(root),
           "XDG_CONFIG_HOME": str(root / "config")}
    app = subprocess.Popen([sys.executable, "-m", "app.cli.main", "gui", "--project", str(root),
                            "--user", "admin"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6)  # let it start; it must still be running then
        assert app.poll() is None, app.communicate()
        app.send_signal(signal.SIGINT)
        _, err = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, err
    assert "Stopping the app" in err and "Traceback" not in err, err
    # The window closed through its own closeEvent, which saves its state.
    settings = list((root / "config").rglob("*.conf"))
    assert settings and "geometry" in settings[0].read_text(), settings
