"""``--selfcheck`` of the agent and of the workstation: it passes on a full install, and a
broken part fails its own line with what to do, and the exit status."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import selfcheck as app_selfcheck
from app.fleet.agent.selfcheck import MODEL, Check, check_zeroconf, run_checks, selfcheck
from installers import selfcheck_model

BIN = Path(sys.executable).parent
AGENT_CHECKS = ["onnxruntime", "openvino", "opencv", "zeroconf", "signing", "ssh"]
APP_CHECKS = ["qt", "onnxruntime", "openvino", "opencv", "zeroconf", "signing", "ssh",
              "torch", "quantize", "database"]


def check_lines(output: str) -> dict[str, str]:
    """{check name: OK/FAILED} from the lines between the header and the summary."""
    lines = output.strip().splitlines()[1:-1]
    return {line.split()[0]: line.split()[1] for line in lines}


def test_agent_selfcheck_passes_in_process() -> None:
    out = io.StringIO()
    assert selfcheck(out=out) == 0, out.getvalue()
    assert check_lines(out.getvalue()) == dict.fromkeys(AGENT_CHECKS, "OK")
    assert "6 of 6 checks OK" in out.getvalue()


def test_agent_selfcheck_with_a_corrupt_model_fails_those_checks(tmp_path: Path) -> None:
    corrupt = tmp_path / "selfcheck.onnx"
    corrupt.write_bytes(MODEL.read_bytes()[:200])  # a truncated download
    result = subprocess.run([str(BIN / "edgeloop-agent"), "--selfcheck", "--selfcheck-model",
                             str(corrupt)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    status = check_lines(result.stdout)
    assert status == {**dict.fromkeys(AGENT_CHECKS, "OK"), "onnxruntime": "FAILED",
                      "openvino": "FAILED"}
    failed = next(line for line in result.stdout.splitlines() if line.startswith("onnxruntime"))
    assert "cannot load" in failed and str(corrupt) in failed and "reinstall the agent" in failed
    failed = next(line for line in result.stdout.splitlines() if line.startswith("openvino"))
    assert f"OpenVINO cannot read or compile {corrupt}" in failed
    assert result.stdout.strip().splitlines()[-1] == \
        "self-check FAILED: onnxruntime, openvino (2 of 6)"


def test_agent_selfcheck_names_a_missing_model(tmp_path: Path) -> None:
    out = io.StringIO()
    assert selfcheck(tmp_path / "gone.onnx", out=out) == 1
    line = next(x for x in out.getvalue().splitlines() if x.startswith("openvino"))
    assert "FAILED" in line and "gone.onnx is missing" in line


def test_a_failing_check_does_not_stop_the_others() -> None:
    def broken() -> str:
        raise ImportError("No module named 'onnxruntime'")

    out = io.StringIO()
    code = run_checks("x", [Check("first", broken, "install it"),
                            Check("zeroconf", check_zeroconf, "-")], out)
    assert code == 1
    first, second = out.getvalue().splitlines()[1:3]
    assert first.split()[:2] == ["first", "FAILED"]
    assert first.endswith("ImportError: No module named 'onnxruntime' -> install it")
    assert second.split()[:2] == ["zeroconf", "OK"]


def test_agent_without_a_command_asks_for_one() -> None:
    result = subprocess.run([str(BIN / "edgeloop-agent")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "a command is required (init, run, ctl), or --selfcheck" in result.stderr


def test_selfcheck_model_is_current() -> None:
    """The shipped model and its expected output are what installers/selfcheck_model.py
    makes (run it after changing either)."""
    assert selfcheck_model.problems() == []


def test_workstation_selfcheck_passes() -> None:
    # A process of its own: Qt's platform is chosen when Qt first loads.
    result = subprocess.run([str(BIN / "edgeloop"), "--selfcheck"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert check_lines(result.stdout) == dict.fromkeys(APP_CHECKS, "OK")
    assert "schema at revision" in result.stdout and "pulled a file with tar" in result.stdout


def test_database_check_fails_without_the_migrations(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a bundle that lacks app/core/migrations shows."""
    empty = tmp_path / "migrations"
    empty.mkdir()
    monkeypatch.setattr("app.core.schema.MIGRATIONS", empty)
    out = io.StringIO()
    database = next(c for c in app_selfcheck.app_checks() if c.name == "database")
    assert run_checks("edgeloop", [database], out) == 1
    line = out.getvalue().splitlines()[1]
    assert line.split()[:2] == ["database", "FAILED"]
    assert "the migrations are missing" in line


@pytest.fixture
def no_icons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """resources/ as a bundle without its data files has it: absent."""
    from app.ui import resources

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(resources, "resources_dir", lambda: tmp_path / "resources")
    resources._svg.cache_clear()
    yield
    resources._svg.cache_clear()  # later tests must see the real icons again


def test_qt_check_fails_when_the_icons_are_missing(no_icons: None) -> None:
    with pytest.raises(RuntimeError, match="app icons"):
        app_selfcheck.check_qt()


def test_qt_check_passes_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert "confusion matrix painted" in app_selfcheck.check_qt()

