"""The agent loop: inference, captures, status and drift files, and hot reload."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.fleet.agent.activation import ReleaseManager
from app.fleet.agent.errors import ReleaseRejected
from app.fleet.agent.home import AgentConfig, AgentHome, CaptureConfig
from app.fleet.agent.loop import Agent
from app.fleet.agent.manifest import public_key_to_text
from app.fleet.agent.runtime import self_test
from app.fleet.agent.sources import Frame, folder_frames
from tests.support.releases import make_release


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def make_home(tmp_path: Path, key: Ed25519PrivateKey, **capture: object) -> AgentHome:
    home = AgentHome(tmp_path / "device")
    home.create(AgentConfig(device_id="cam-1", fps=200, status_interval_s=0.05,
                            capture=CaptureConfig(**capture)))  # type: ignore[arg-type]
    home.add_trusted_key("project", public_key_to_text(key.public_key()))
    return home


def install(home: AgentHome, tmp_path: Path, key: Ed25519PrivateKey, version: str, seed: int):  # type: ignore[no-untyped-def]
    folder, manifest = make_release(tmp_path / "build", version, key, seed, openvino=False)
    ReleaseManager(home, self_test).install(folder)
    return folder


def image_folder(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def test_loop_infers_captures_and_reports(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    home = make_home(tmp_path, key, every_nth=5, low_confidence=0.0)
    install(home, tmp_path, key, "edge-1", seed=1)
    frames = folder_frames(image_folder(tmp_path, 10))
    agent = Agent(home, frames, advertise=False, max_frames=30)
    agent.run(threading.Event())
    sidecars = sorted((home.spool).glob("*.json"))
    assert len(sidecars) == 6
    first = json.loads(sidecars[0].read_text())
    assert first["reason"] == "every_nth" and first["model_version"] == "edge-1"
    assert set(first["probs"]) == {"ok", "scratch", "crack"}
    assert cv2.imread(str(home.spool / first["file"])) is not None
    status = json.loads(home.status_path.read_text())
    assert status["state"] == "stopped" and status["frames"] == 30
    assert status["model_version"] == "edge-1" and status["runtime"] in ("openvino", "onnxruntime")
    assert status["latency_ms"]["p50"] > 0 and status["spool"]["captures"] == 6
    [drift] = list(home.drift.glob("*.json"))
    record = json.loads(drift.read_text())
    assert record["n"] == 30 and sum(record["histograms"]["brightness"]["counts"]) == 30


def test_capture_switched_off_keeps_nothing(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    home = make_home(tmp_path, key, enabled=False, every_nth=1)
    install(home, tmp_path, key, "edge-1", seed=1)
    Agent(home, folder_frames(image_folder(tmp_path, 5)), advertise=False, max_frames=20).run(
        threading.Event())
    assert list(home.spool.iterdir()) == []
    assert json.loads(home.status_path.read_text())["frames"] == 20


def _endless() -> Iterator[Frame]:
    rng = np.random.default_rng(1)
    while True:
        yield Frame(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "test")


def test_hot_reload_and_tampered_release_keeps_old_model(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    home = make_home(tmp_path, key, every_nth=1)
    install(home, tmp_path, key, "edge-1", seed=1)
    agent = Agent(home, _endless(), advertise=False)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        def wait_for(version: str) -> None:
            deadline = time.monotonic() + 20
            while home.status().get("model_version") != version:
                assert time.monotonic() < deadline, f"agent never ran {version}"
                time.sleep(0.05)

        wait_for("edge-1")
        install(home, tmp_path, key, "edge-2", seed=2)  # what `ctl install` does, from outside
        wait_for("edge-2")
        frames_before = agent.health.frames
        bad, _ = make_release(tmp_path / "bad", "edge-3", Ed25519PrivateKey.generate(), seed=3,
                              openvino=False)
        with pytest.raises(ReleaseRejected):
            ReleaseManager(home, self_test).install(bad)
        time.sleep(0.3)
        assert agent.version == "edge-2" and agent.health.frames > frames_before
    finally:
        stop.set()
        thread.join(timeout=20)
    versions = {json.loads(p.read_text())["model_version"] for p in home.spool.glob("*.json")}
    assert versions == {"edge-1", "edge-2"}
