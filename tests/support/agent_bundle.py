"""The device agent's one-folder PyInstaller bundle, built once per source tree for tests.

``agent_bundle(root)`` builds it with installers/build.py (PyInstaller, then the bundle's own
``--selfcheck``) into ``root`` and returns the bundle folder, whose program is
``<folder>/edgeloop-agent``. A stamp file records a hash of everything that goes into the
bundle (app/, installers/, the PyInstaller version); a later call with the same ``root`` and
an unchanged tree reuses the bundle instead of rebuilding it; so does a call with another
``root`` in the same process (tests/installers and tests/fleet each have a session fixture:
one build serves both).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUNDLE_NAME = "edgeloop-agent"
STAMP = "agent-bundle.stamp"
# What the bundle is made from; a change to any of these files means a rebuild.
SOURCES = ("app", "installers")
SUFFIXES = {".py", ".spec", ".onnx", ".ini", ".mako", ".svg", ".json"}
_built: dict[str, Path] = {}  # source state -> a bundle folder this process built or reused


def source_state() -> str:
    """A hash of the files the agent bundle is built from, and of the PyInstaller version."""
    from PyInstaller import __version__ as pyinstaller_version

    digest = hashlib.sha256(f"pyinstaller {pyinstaller_version}\n".encode())
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in SUFFIXES or "__pycache__" in path.parts or not path.is_file():
                continue
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def agent_bundle(root: Path) -> Path:
    """Build (or reuse) the agent bundle under ``root``, or reuse one this process already
    built from the same tree; return the bundle folder.

    Raises AssertionError with PyInstaller's or the self-check's output when the build fails.
    """
    root = Path(root)
    dist, work = root / "dist", root / "work"
    folder = dist / BUNDLE_NAME
    stamp = root / STAMP
    state = source_state()
    earlier = _built.get(state)
    if earlier is not None and (earlier / BUNDLE_NAME).is_file():
        return earlier
    if (stamp.is_file() and (folder / BUNDLE_NAME).is_file()
            and json.loads(stamp.read_text()).get("source_state") == state):
        _built[state] = folder
        return folder
    stamp.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "installers.build", "agent", "--dist", str(dist), "--work",
         str(work)], cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )
    assert result.returncode == 0, (
        f"building the agent bundle failed (exit {result.returncode}):\n"
        f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    stamp.write_text(json.dumps({"source_state": state}) + "\n")
    _built[state] = folder
    return folder
