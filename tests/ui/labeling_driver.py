"""Drives the Label page in a process of its own, for the crash test (test_labeling_crash.py).

    python -m tests.ui.labeling_driver PROJECT USER COUNT

Opens the page offscreen over the project as USER and labels the first COUNT captures of the
queue by keys alone (a number key, then Enter or Right), one as soon as it is shown. Each
label the page reports saved (the moment its status line says "Saved") is printed as
``saved CAPTURE_ID ANNOTATION_ID``; after COUNT captures it idles until killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.annotate.widgets.labeling_pane import LabelingPage
from app.core.project import open_project
from app.core.users import actor_named
from app.ui.pages.base import PageContext
from app.ui.tasks import TaskRunner

NUMBER_KEYS = (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5)


def main(argv: list[str]) -> int:
    root, user, count = Path(argv[1]), argv[2], int(argv[3])
    project = open_project(root)
    app = QApplication([])
    runner = TaskRunner()
    page = LabelingPage(PageContext(project, actor_named(project.db, user), runner))
    page.resize(1100, 700)
    page.show()
    page.activateWindow()
    page.saver.saved.connect(lambda capture_id, annotation_id: print(
        f"saved {capture_id} {annotation_id}", flush=True))
    labeled: set[int] = set()

    def label(capture_id: int) -> None:
        if capture_id in labeled or len(labeled) >= count:
            return
        labeled.add(capture_id)
        k = len(labeled)

        def keys() -> None:
            QTest.keyClick(page.canvas, NUMBER_KEYS[k % len(NUMBER_KEYS)])
            QTest.keyClick(page.canvas, Qt.Key.Key_Return if k % 2 else Qt.Key.Key_Right)

        QTimer.singleShot(0, keys)

    page.shown_capture.connect(label)
    page.refresh()
    print("ready", flush=True)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
