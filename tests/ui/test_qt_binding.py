"""The pinned Qt binding keeps Python's reference counts: a long session must not abort.

PySide6 6.12.0 dropped a reference to ``True`` on every ``emit`` from Python and one to
``None`` whenever Qt handed None back (``QComboBox.currentData``); some thousands of emits
later the process died with "Fatal Python error: bool_dealloc". The project pins a version
without the bug; this runs the same calls many times in a child process (a crash must fail
this test, not the test run) and checks the counts did not move.
"""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import sys
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QComboBox

app = QApplication([])

class Source(QObject):
    changed = Signal(object)

source, seen = Source(), []
source.changed.connect(seen.append)
true_before, none_before = sys.getrefcount(True), sys.getrefcount(None)
for i in range(20000):
    source.changed.emit(i)
combo = QComboBox()
combo.addItem("no data")
combo.addItem("none", None)
for _ in range(20000):
    combo.currentData()
    combo.itemData(1)
print(len(seen), sys.getrefcount(True) - true_before, sys.getrefcount(None) - none_before)
"""


def test_emits_and_none_results_leave_reference_counts_alone() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    delivered, true_delta, none_delta = map(int, done.stdout.split())
    assert delivered == 20000
    assert abs(true_delta) < 50 and abs(none_delta) < 50, (true_delta, none_delta)
