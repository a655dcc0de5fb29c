"""Release 1: trained on generated scenes, exported to ONNX and OpenVINO, signed, loadable."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.core.progress import CancelToken, Cancelled
from app.fleet.agent.manifest import verify_release
from app.fleet.agent.runtime import self_test
from app.fleet.first_release import FirstReleaseSettings, build_first_release

SMALL = FirstReleaseSettings(size=64, train_images=300, val_images=100, epochs=2)


def test_first_release_is_signed_and_passes_its_self_test_on_both_runtimes(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    stages: list[str] = []
    manifest = build_first_release(tmp_path / "edge-1", key, SMALL,
                                   progress=lambda p: stages.append(p.stage))
    assert manifest.version == "edge-1"
    assert set(manifest.artifacts) == {"onnxruntime", "openvino"}
    assert manifest.labels[0] == "ok" and len(manifest.labels) == 5
    assert stages.count("train") == 2 and stages[-1] == "done"
    assert manifest.raw["training"]["settings"]["train_images"] == 300
    verify_release(tmp_path / "edge-1", [key.public_key()])
    for runtime in ("onnxruntime", "openvino"):
        assert self_test(tmp_path / "edge-1", manifest, runtime).runtime == runtime
    # Same settings: the folder is reused, not rebuilt.
    again = build_first_release(tmp_path / "edge-1", key, SMALL, progress=stages.append)
    assert again.files == manifest.files


def test_first_release_can_be_cancelled(tmp_path: Path) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        build_first_release(tmp_path / "edge-1", Ed25519PrivateKey.generate(), SMALL,
                            cancel=cancel)
    assert not (tmp_path / "edge-1").exists()
