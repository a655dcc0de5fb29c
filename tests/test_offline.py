"""EdgeLoop makes no telemetry call: OpenVINO's converter runs with its telemetry blocked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_openvino_conversion_starts_no_telemetry(tmp_path: Path) -> None:
    code = f"""
import threading, sys
import app
from tests.support.releases import tiny_classifier
from app.core.export import export_openvino
from pathlib import Path
d = Path({str(tmp_path)!r})
tiny_classifier(d / "m.onnx", 1)
export_openvino(d / "m.onnx", d / "m.xml")
assert sys.modules.get("openvino_telemetry") is None, "telemetry module was loaded"
names = [t.name for t in threading.enumerate() if t.name != "MainThread"]
assert not names, names
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m.xml").exists()
    assert not (tmp_path / "intel").exists(), "OpenVINO telemetry wrote its consent folder"
