"""Releases on the device: signature and hash checks, activation, self-test, rollback, and
recovery after the agent is killed at each step of an activation."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.fleet.agent.activation import ReleaseManager
from app.fleet.agent.errors import ReleaseRejected, SelfTestFailed
from app.fleet.agent.home import AgentConfig, AgentHome
from app.fleet.agent.manifest import public_key_to_text
from app.fleet.agent.runtime import self_test
from tests.support.releases import make_release


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def home(tmp_path: Path, key: Ed25519PrivateKey) -> AgentHome:
    home = AgentHome(tmp_path / "device")
    home.create(AgentConfig(device_id="cam-1"))
    home.add_trusted_key("project", public_key_to_text(key.public_key()))
    return home


@pytest.fixture
def manager(home: AgentHome) -> ReleaseManager:
    return ReleaseManager(home, self_test)


@pytest.fixture
def v1(manager: ReleaseManager, tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    folder, _ = make_release(tmp_path / "build", "edge-1", key, seed=1)
    assert manager.install(folder).active == "edge-1"
    return folder


def _resign(folder: Path, key: Ed25519PrivateKey, edit) -> None:  # type: ignore[no-untyped-def]
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    data = json.dumps(manifest).encode()
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.sig").write_bytes(base64.b64encode(key.sign(data)))


def test_install_activates_and_runs_on_both_runtimes(manager: ReleaseManager, v1: Path) -> None:
    assert manager.current_version() == "edge-1"
    manifest = manager.manifest_of("edge-1")
    for runtime in ("onnxruntime", "openvino"):
        engine = self_test(manager.release_dir("edge-1"), manifest, runtime)
        assert engine.runtime == runtime


@pytest.mark.parametrize("damage", ["tampered_model", "unsigned", "other_key", "bad_signature"])
def test_bad_release_is_refused_and_the_old_model_stays(
    manager: ReleaseManager, v1: Path, tmp_path: Path, key: Ed25519PrivateKey, damage: str
) -> None:
    signer = Ed25519PrivateKey.generate() if damage == "other_key" else key
    folder, _ = make_release(tmp_path / "build", "edge-2", signer, seed=2)
    if damage == "tampered_model":
        data = bytearray((folder / "model.onnx").read_bytes())
        data[-5] ^= 0xFF
        (folder / "model.onnx").write_bytes(bytes(data))
    elif damage == "unsigned":
        (folder / "manifest.sig").unlink()
    elif damage == "bad_signature":
        (folder / "manifest.json").write_text(
            (folder / "manifest.json").read_text().replace('"edge-2"', '"edge-3"'))
    with pytest.raises(ReleaseRejected):
        manager.install(folder)
    assert manager.current_version() == "edge-1"
    assert not manager.release_dir("edge-2").exists()
    self_test(manager.release_dir("edge-1"), manager.manifest_of("edge-1"))


@pytest.mark.parametrize("name", ["../evil.onnx", "/etc/passwd", ".hidden", "a/b.onnx"])
def test_path_traversal_in_a_signed_manifest_is_refused(
    manager: ReleaseManager, v1: Path, tmp_path: Path, key: Ed25519PrivateKey, name: str
) -> None:
    folder, _ = make_release(tmp_path / "build", "edge-2", key, seed=2)

    def edit(m: dict) -> None:
        m["files"][name] = m["files"].pop("model.onnx")
        m["artifacts"]["onnxruntime"] = name

    _resign(folder, key, edit)
    with pytest.raises(ReleaseRejected, match="not a plain file name"):
        manager.install(folder)
    assert manager.current_version() == "edge-1"


def test_failed_self_test_rolls_back(manager: ReleaseManager, v1: Path, tmp_path: Path,
                                     key: Ed25519PrivateKey) -> None:
    folder, _ = make_release(tmp_path / "build", "edge-2", key, seed=2)
    _resign(folder, key, lambda m: m["selftest"].update(
        expected_probs=[1.0 / 3] * 3, tolerance=0.0001, by_runtime={}))
    with pytest.raises(SelfTestFailed, match="rolled back to edge-1"):
        manager.install(folder)
    assert manager.current_version() == "edge-1"


def test_truncated_model_with_a_matching_hash_fails_its_self_test(
    manager: ReleaseManager, v1: Path, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    import hashlib

    folder, _ = make_release(tmp_path / "build", "edge-2", key, seed=2, openvino=False)
    model = folder / "model.onnx"
    model.write_bytes(model.read_bytes()[:100])
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    _resign(folder, key, lambda m: m["files"]["model.onnx"].update(sha256=digest))
    with pytest.raises(SelfTestFailed, match="does not load"):
        manager.install(folder)
    assert manager.current_version() == "edge-1"


def test_rollback_when_told_and_old_releases_pruned(
    manager: ReleaseManager, v1: Path, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    for seed, version in ((2, "edge-2"), (3, "edge-3")):
        folder, _ = make_release(tmp_path / "build", version, key, seed=seed)
        manager.install(folder)
    assert (manager.current_version(), manager.previous_version()) == ("edge-3", "edge-2")
    assert not manager.release_dir("edge-1").exists()  # two kept: current and previous
    result = manager.rollback()
    assert result.active == "edge-2"
    assert (manager.current_version(), manager.previous_version()) == ("edge-2", "edge-3")


_KILLED_INSTALL = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from app.fleet.agent import activation
    from app.fleet.agent.home import AgentHome
    from app.fleet.agent.runtime import self_test
    home, source, stage, ready = AgentHome(Path(sys.argv[1])), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    real_switch = activation.switch_symlink
    def die():
        ready.write_text(stage)
        time.sleep(60)   # the parent SIGKILLs us here
    def switch(link, target):
        if stage == "before_switch" and link.name == "current":
            die()
        real_switch(link, target)
        if stage == "after_switch" and link.name == "current":
            die()
    def test(folder, manifest):
        if stage == "during_selftest":
            die()
        return self_test(folder, manifest)
    activation.switch_symlink = switch
    activation.ReleaseManager(home, test).install(source)
    """
)


@pytest.mark.parametrize("stage", ["before_switch", "after_switch", "during_selftest"])
def test_agent_killed_mid_activation_restarts_with_a_loadable_model(
    manager: ReleaseManager, home: AgentHome, v1: Path, tmp_path: Path, key: Ed25519PrivateKey,
    stage: str,
) -> None:
    folder, _ = make_release(tmp_path / "build", "edge-2", key, seed=2)
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_INSTALL, str(home.root), str(folder),
                              stage, str(ready)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, "installer exited before reaching the stage"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # The next start: recovery, then the current release must load.
    result = manager.recover()
    assert result.active == "edge-1"
    assert "interrupted" in result.message
    assert manager.current_version() == "edge-1"
    self_test(manager.release_dir("edge-1"), manager.manifest_of("edge-1"))
    assert not (home.state / "activation.json").exists()
    # ...and the same release installs cleanly afterwards.
    assert manager.install(folder).active == "edge-2"


def test_recovery_falls_back_when_the_current_release_is_damaged_on_disk(
    manager: ReleaseManager, v1: Path, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    folder, _ = make_release(tmp_path / "build", "edge-2", key, seed=2)
    manager.install(folder)
    (manager.release_dir("edge-2") / "model.onnx").write_bytes(b"corrupted by a bad sector")
    result = manager.recover()
    assert result.active == "edge-1" and "edge-2 does not load" in result.message
    assert manager.current_version() == "edge-1"


def test_each_runtime_is_held_to_its_own_expected_output(tmp_path: Path,
                                                         key: Ed25519PrivateKey) -> None:
    """An INT8 release's runtimes run files from two quantizers, whose probabilities can
    differ by more than the tolerance: each is checked against what its own file gave."""
    from app.fleet.agent.manifest import verify_release

    folder, manifest = make_release(tmp_path / "build", "edge-9", key, seed=9)
    assert set(manifest.selftest.by_runtime) == {"onnxruntime", "openvino"}
    for runtime in ("onnxruntime", "openvino"):
        assert self_test(folder, manifest, runtime).runtime == runtime

    def shift_openvino(data: dict) -> None:  # type: ignore[type-arg]
        expected = data["selftest"]["by_runtime"]["openvino"]
        expected["expected_probs"] = [min(1.0, p + 0.05) for p in expected["expected_probs"]]

    _resign(folder, key, shift_openvino)
    shifted = verify_release(folder, [key.public_key()])
    assert self_test(folder, shifted, "onnxruntime").runtime == "onnxruntime"
    with pytest.raises(SelfTestFailed, match="self-test on openvino"):
        self_test(folder, shifted, "openvino")

    def unknown_runtime(data: dict) -> None:  # type: ignore[type-arg]
        data["selftest"]["by_runtime"]["tflite"] = data["selftest"]["by_runtime"]["openvino"]

    _resign(folder, key, unknown_runtime)
    with pytest.raises(ReleaseRejected, match="runtime the release has no artifact for"):
        verify_release(folder, [key.public_key()])
