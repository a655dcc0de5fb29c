"""A labeling session killed outright (SIGKILL, no chance to clean up) loses no label the
pane had shown as saved. The pane runs in a process of its own (tests/ui/labeling_driver.py)
that labels captures by keys and prints each label it reports saved."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from app.core.models import Annotation, User
from app.core.project import Project, open_project
from tests.support.labeling import fill_captures

REPO = Path(__file__).resolve().parents[2]
KILL_AFTER = 12  # labels reported saved; the driver is labeling more when it dies


def _read_saved(driver: subprocess.Popen[bytes], wanted: int,
                limit_s: float = 120.0) -> dict[int, int]:
    """Annotation id -> capture id of each label the driver reported saved, until ``wanted``
    of them (or the driver ends, or ``limit_s`` passes: the caller's assert says which)."""
    assert driver.stdout is not None
    reported: dict[int, int] = {}
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(driver.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + limit_s
        while len(reported) < wanted and time.monotonic() < deadline:
            if not selector.select(timeout=1.0):
                continue
            chunk = os.read(driver.stdout.fileno(), 4096)
            if not chunk:
                break  # the driver ended
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                words = line.decode().split()
                if words[:1] == ["saved"]:
                    reported[int(words[2])] = int(words[1])
    return reported


def test_a_killed_session_loses_no_label_shown_as_saved(sqlite_project: Project) -> None:
    p = sqlite_project
    fill_captures(p, 40, size=96)
    root = p.root
    p.close()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(root),
           "XDG_CONFIG_HOME": str(root / "config")}
    driver = subprocess.Popen([sys.executable, "-m", "tests.ui.labeling_driver", str(root),
                               "admin", "40"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        reported = _read_saved(driver, KILL_AFTER)
        still_running = driver.poll() is None
        driver.kill()  # SIGKILL: no closeEvent, no flush, no atexit
        _, err = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert still_running, err.decode()
    assert len(reported) >= KILL_AFTER, err.decode()
    assert driver.returncode == -9

    with open_project(root) as again, again.db.read() as s:
        found = dict(s.execute(
            select(Annotation.id, Annotation.capture_id).join(User, User.id == Annotation.author_id)
            .where(Annotation.id.in_(list(reported)), User.name == "admin",
                   Annotation.superseded.is_(False))).all())
    assert found == reported
