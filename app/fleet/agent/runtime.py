"""Inference on the device: ONNX Runtime or OpenVINO, as the release and the device allow.

An engine takes BGR frames (OpenCV's order), applies the manifest's preprocessing and returns
class probabilities. ``self_test`` loads a release the way the loop will and checks it gives
the expected output on the sample input shipped with it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from app.fleet.agent.errors import SelfTestFailed
from app.fleet.agent.manifest import InputSpec, Manifest

PREFERENCE = ("openvino", "onnxruntime")


class Engine(Protocol):
    """A loaded model: frames in, probabilities out."""

    runtime: str

    def predict(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, shape (len(frames), n_classes)."""
        ...


def preprocess(frames: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """BGR uint8 frames to the NCHW float32 tensor the manifest describes."""
    batch = np.empty((len(frames), 3, spec.height, spec.width), dtype=np.float32)
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(3, 1, 1)
    for i, frame in enumerate(frames):
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if frame.shape[0] != spec.height or frame.shape[1] != spec.width:
            frame = cv2.resize(frame, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
        if spec.color == "RGB":
            frame = frame[:, :, ::-1]
        chw = np.transpose(frame, (2, 0, 1)).astype(np.float32) * spec.scale
        batch[i] = (chw - mean) / std
    return batch


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _as_probabilities(output: np.ndarray) -> np.ndarray:
    """Models may end in logits or in softmax; give probabilities either way."""
    output = np.asarray(output, dtype=np.float32)
    sums = output.sum(axis=1)
    if np.all(output >= 0) and np.allclose(sums, 1.0, atol=1e-3):
        return output
    return softmax(output)


class OnnxRuntimeEngine:
    """ONNX Runtime on the CPU, one session per loaded release."""

    runtime = "onnxruntime"

    def __init__(self, model_path: Path, spec: InputSpec, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.spec = spec

    def predict(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        outputs = self.session.run(None, {self.input_name: preprocess(frames, self.spec)})
        return _as_probabilities(outputs[0])


class OpenVinoEngine:
    """OpenVINO on the CPU, compiled at f32 (its default here would be bf16, see NOTES.md)."""

    runtime = "openvino"

    def __init__(self, model_path: Path, spec: InputSpec, threads: int = 1) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
                  "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = core.compile_model(core.read_model(str(model_path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.spec = spec

    def predict(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        result = self.request.infer({0: preprocess(frames, self.spec)})
        return _as_probabilities(next(iter(result.values())))


_ENGINES = {"onnxruntime": OnnxRuntimeEngine, "openvino": OpenVinoEngine}


def available_runtimes() -> tuple[str, ...]:
    """The runtimes importable on this device, in preference order."""
    return tuple(name for name in PREFERENCE if importlib.util.find_spec(name) is not None)


def choose_runtime(manifest: Manifest, wanted: str = "auto") -> str:
    """The runtime to use: the one asked for, or the first one both sides support."""
    usable = [rt for rt in available_runtimes() if rt in manifest.artifacts]
    if wanted != "auto":
        if wanted not in manifest.artifacts:
            raise SelfTestFailed(f"release {manifest.version} has no {wanted} artifact")
        if wanted not in available_runtimes():
            raise SelfTestFailed(f"{wanted} is not installed on this device")
        return wanted
    if not usable:
        raise SelfTestFailed(
            f"release {manifest.version} offers {sorted(manifest.artifacts)}, this device runs "
            f"{list(available_runtimes())}: nothing in common"
        )
    return usable[0]


def load_engine(release: Path, manifest: Manifest, wanted: str = "auto", threads: int = 1) -> Engine:
    runtime = choose_runtime(manifest, wanted)
    return _ENGINES[runtime](release / manifest.artifacts[runtime], manifest.input, threads)


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to BGR; a file that does not decode raises ValueError."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(f"{path.name} is not a decodable image")
    return image


def self_test(release: Path, manifest: Manifest, wanted: str = "auto") -> Engine:
    """Load the release and check its output on the shipped sample; return the engine."""
    try:
        engine = load_engine(release, manifest, wanted)
        probs = engine.predict([read_image(release / manifest.selftest.input)])[0]
    except SelfTestFailed:
        raise
    except Exception as exc:  # a truncated model or a broken image: any load error fails it
        raise SelfTestFailed(f"release {manifest.version} does not load: {exc}") from exc
    label = manifest.labels[int(np.argmax(probs))]
    expected_label, expected_probs = manifest.selftest.expected_for(engine.runtime)
    worst = float(np.max(np.abs(probs - np.asarray(expected_probs, dtype=np.float32))))
    if label != expected_label or worst > manifest.selftest.tolerance:
        raise SelfTestFailed(
            f"release {manifest.version} self-test on {engine.runtime}: predicted {label} "
            f"(expected {expected_label}), max probability error {worst:.3f} "
            f"(tolerance {manifest.selftest.tolerance})"
        )
    return engine
