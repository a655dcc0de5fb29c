"""Fixtures of the GUI tests: isolated QSettings and a task runner shut down after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from app.ui.tasks import TaskRunner


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """Settings in a file of the test's own, never the user's."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def runner(qtbot) -> Iterator[TaskRunner]:  # type: ignore[no-untyped-def]
    """A task runner whose workers are stopped (work cancelled) when the test ends."""
    tasks = TaskRunner()
    yield tasks
    tasks.shutdown()
