"""The CLI's progress line: a log or pipe gets a readable trickle of lines, not one per image."""

from __future__ import annotations

import pytest

from app.cli.longwork import ProgressLine
from app.core.progress import Progress


def test_plain_output_keeps_stage_changes_the_end_and_one_line_a_second(
        capsys: pytest.CaptureFixture[str]) -> None:
    now = [0.0]
    line = ProgressLine(tty=False, clock=lambda: now[0])
    for i in range(1, 301):  # 300 calibration images in 3 s
        now[0] = i / 100
        line(Progress("calibrate", i, 300, f"{i} images"))
    line(Progress("compress", 2, 4, "openvino"))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("calibrate [") and "1/300" in lines[0]
    assert "300/300" in lines[-2] and lines[-1].startswith("compress [")
    # First, one a second (3 s), the last one, the next stage: not 301 lines.
    assert 4 <= len(lines) <= 6, lines


def test_a_terminal_sees_every_step_rewritten_in_place(capsys: pytest.CaptureFixture[str]) -> None:
    line = ProgressLine(tty=True)
    for i in range(1, 4):
        line(Progress("pull", i, 3))
    line.close()
    err = capsys.readouterr().err
    # (click drops the erase-line code when the stream is not a real terminal)
    assert err.count("\r") == 3 and "3/3" in err and err.endswith("\n")
