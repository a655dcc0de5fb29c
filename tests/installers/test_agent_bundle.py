"""The device agent's PyInstaller bundle: built for real, self-checked, and put to work.

Each test runs the bundled program with a clean environment (no virtualenv on PATH, no
PYTHONPATH, run from /), as it runs on a device where nothing but the bundle is installed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.fleet.agent.manifest import public_key_to_text
from tests.support.releases import make_release

pytestmark = pytest.mark.slow

AGENT_CHECKS = ("onnxruntime", "openvino", "opencv", "zeroconf", "signing", "ssh")
# Top-level names (folders, modules, shared libraries) of the workstation stack.
FORBIDDEN = ("torch", "pyside6", "shiboken6", "sqlalchemy", "alembic", "scipy", "nncf",
             "libtorch", "libqt6", "paramiko", "onnx")


def run_agent(bundle: Path, *args: str, home: Path | None = None,
              stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home or bundle.parent)}
    return subprocess.run([str(bundle / "edgeloop-agent"), *args], env=env, cwd="/",
                          input=stdin, capture_output=True, text=True, timeout=300)


def test_bundle_passes_its_selfcheck_in_a_clean_environment(agent_bundle_dir: Path) -> None:
    result = run_agent(agent_bundle_dir, "--selfcheck")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:-1]}
    assert lines == dict.fromkeys(AGENT_CHECKS, "OK"), result.stdout
    # It ran the bundled interpreter, not some Python on the machine.
    assert str(agent_bundle_dir / "edgeloop-agent") in result.stdout.splitlines()[0]


def test_bundle_holds_none_of_the_workstation_stack(agent_bundle_dir: Path) -> None:
    from PyInstaller.archive.readers import pkg_archive_contents

    on_disk = [p.name.lower() for p in (agent_bundle_dir / "_internal").iterdir()]
    leaked = [n for n in on_disk if n.split(".")[0].split("-")[0] in FORBIDDEN
              or n.startswith(("libtorch", "libqt6"))]
    assert not leaked, f"the agent bundle carries workstation files: {leaked}"

    # The Python modules live in the PYZ archive appended to the executable.
    modules = pkg_archive_contents(str(agent_bundle_dir / "edgeloop-agent"))
    assert "app.fleet.agent.cli" in modules and "onnxruntime" in modules
    leaked = sorted({m.split(".")[0] for m in modules if m.split(".")[0].lower() in FORBIDDEN})
    assert not leaked, f"the agent bundle carries workstation modules: {leaked}"
    assert not [m for m in modules if m.startswith(("app.ui", "app.cli", "app.core.db"))]


def test_bundled_agent_installs_a_signed_release_and_runs_it(
        agent_bundle_dir: Path, tmp_path: Path) -> None:
    """Beyond the self-check: init, a signed release verified and self-tested, the loop
    inferring and capturing frames, status over the control command."""
    key = Ed25519PrivateKey.generate()
    release, _ = make_release(tmp_path / "releases", "r1", key, seed=3)
    pub = tmp_path / "project.pub"
    pub.write_text(public_key_to_text(key.public_key()))
    home = tmp_path / "home"

    helped = run_agent(agent_bundle_dir, "--help")
    assert helped.returncode == 0 and "--selfcheck" in helped.stdout, helped.stderr

    init = run_agent(agent_bundle_dir, "--home", str(home), "init", "--id", "cam-b",
                     "--trust", str(pub), "--interfaces", "127.0.0.1", "--every-nth", "1")
    assert init.returncode == 0, init.stderr
    installed = run_agent(agent_bundle_dir, "--home", str(home), "ctl", "install", str(release))
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout)["active"] == "r1"

    ran = run_agent(agent_bundle_dir, "--home", str(home), "run", "--source", "generator:7",
                    "--max-frames", "6", "--no-advertise")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"stopped": True, "frames": 6, "captures": 6}

    status = run_agent(agent_bundle_dir, "--home", str(home), "ctl", "status")
    assert status.returncode == 0, status.stderr
    answer = json.loads(status.stdout)
    assert answer["current"] == "r1" and answer["spool"]["captures"] == 6
    assert answer["status"]["last_error"] is None

    # A release signed by another key is refused by the bundled verifier.
    stranger, _ = make_release(tmp_path / "other", "r2", Ed25519PrivateKey.generate(), seed=4)
    refused = run_agent(agent_bundle_dir, "--home", str(home), "ctl", "install", str(stranger))
    assert refused.returncode == 1
    assert "does not verify with any trusted key" in refused.stderr
