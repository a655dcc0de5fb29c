"""Small real releases for agent tests: a tiny ONNX classifier built with onnx.helper.

The model averages each colour channel and maps the three means to class logits, so its
output depends on the image and the weights, and it loads in ONNX Runtime and OpenVINO.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onnx import TensorProto, helper, numpy_helper

from app.fleet.agent.manifest import InputSpec, Manifest
from app.fleet.release_build import build_release

LABELS = ("ok", "scratch", "crack")
SIZE = 32


def tiny_classifier(path: Path, seed: int, n_classes: int = len(LABELS)) -> Path:
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 3, size=(3, n_classes)).astype(np.float32)
    bias = rng.normal(0, 0.5, size=(n_classes,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "W", "B"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_classes])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def sample_image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)


def make_release(
    workdir: Path, version: str, key: Ed25519PrivateKey, seed: int, *, openvino: bool = True
) -> tuple[Path, Manifest]:
    """Build a signed release folder ``workdir/version`` with a model unique to ``seed``."""
    scratch = workdir / f".build-{version}"
    scratch.mkdir(parents=True, exist_ok=True)
    onnx_path = tiny_classifier(scratch / "model.onnx", seed)
    artifacts: dict[str, Path] = {"onnxruntime": onnx_path}
    if openvino:
        from app.core.export import export_openvino

        artifacts["openvino"] = export_openvino(onnx_path, scratch / "model.xml")
    out = workdir / version
    manifest = build_release(
        out, version=version, labels=LABELS,
        input_spec=InputSpec(SIZE, SIZE, "RGB", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        artifacts=artifacts, selftest_image=sample_image(seed), signing_key=key,
    )
    return out, manifest
