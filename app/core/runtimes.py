"""Running a model artifact on the workstation exactly as a device would: images in, logits out.

One runner per artifact format (``FORMATS``): the torch checkpoint, ONNX (FP32 or INT8) on
ONNX Runtime, OpenVINO IR (FP32 or INT8). Every runner turns uint8 NHWC BGR images into the
model's input with the device agent's own ``preprocess`` (resize, colour order, scale, mean
and std from the input spec), and configures its runtime like the agent does (one intra-op
thread by default, OpenVINO pinned to f32 so it does not silently run bf16), so a score
measured here is the score the device gets. The device's engines return probabilities; a
runner returns logits, which is what comparisons between formats need.

The agent's preprocessing is imported, not copied: the import-linter contracts allow
``app.core`` to import ``app.fleet.agent``, and a copy would drift from what devices run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import InvalidInput
from app.core.export import read_ir, read_ir_metadata, read_onnx_metadata
from app.fleet.agent.errors import ReleaseRejected
from app.fleet.agent.manifest import InputSpec
from app.fleet.agent.runtime import preprocess

FORMATS = ("torch", "onnx", "onnx_int8", "openvino", "openvino_int8")

Images = np.ndarray | Sequence[np.ndarray]


class Runner(ABC):
    """A loaded model artifact: uint8 NHWC BGR images -> logits, shape (N, classes).

    ``prepare`` is the device's preprocessing and ``infer`` the bare runtime call on a
    prepared batch; calling the runner does both. Timing ``infer`` alone measures the model,
    timing the call measures what a device spends per frame.
    """

    def __init__(self, format: str, path: Path, spec: dict[str, Any], labels: list[str] | None):
        self.format = format
        self.path = Path(path)
        self.spec_json = dict(spec)
        self.labels = labels
        try:
            self.spec = InputSpec.from_json(spec)
        except ReleaseRejected as exc:
            raise InvalidInput(f"{self.path.name}: {exc}; give a valid input spec") from exc

    def prepare(self, images: Images) -> np.ndarray:
        """The float32 NCHW batch the device would feed the model."""
        if len(images) == 0:
            raise InvalidInput("no images given to run the model on")
        return preprocess(images, self.spec)

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits of a prepared batch: the runtime call alone."""

    def __call__(self, images: Images) -> np.ndarray:
        return self.infer(self.prepare(images))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.format} {self.path.name}>"


class TorchRunner(Runner):
    """The torch checkpoint (``app.core.model_files``), on the CPU."""

    def __init__(self, path: Path, spec: dict[str, Any] | None, labels: list[str] | None) -> None:
        import torch

        from app.core.model_files import load_model

        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"{path.name} cannot be read ({exc.strerror})") from exc
        item = load_model(data, path.name)
        super().__init__("torch", path, spec or item.input_spec, labels or item.labels)
        self.model = item.model.eval()
        self._torch = torch

    def infer(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(batch)).numpy()


class OnnxRunner(Runner):
    """An ONNX file on ONNX Runtime's CPU provider, with the agent's session options."""

    def __init__(self, format: str, path: Path, spec: dict[str, Any] | None,
                 labels: list[str] | None, threads: int, **session: Any) -> None:
        import onnxruntime as ort

        path = Path(path)
        meta = read_onnx_metadata(path)
        super().__init__(format, path, _need_spec(spec or meta.input_spec, path),
                         labels or meta.labels)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        for name, value in session.items():  # e.g. graph_optimization_level, for experiments
            setattr(options, name, value)
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise InvalidInput(f"{path.name} does not load in ONNX Runtime ({exc}); export "
                               "it again") from exc
        self.input_name = self.session.get_inputs()[0].name

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: batch})[0], dtype=np.float32)


class OpenVinoRunner(Runner):
    """An OpenVINO IR on the CPU plugin, compiled like the agent does (f32, LATENCY)."""

    def __init__(self, format: str, path: Path, spec: dict[str, Any] | None,
                 labels: list[str] | None, threads: int) -> None:
        import openvino as ov

        path = Path(path)
        meta = read_ir_metadata(path)
        super().__init__(format, path, _need_spec(spec or meta.input_spec, path),
                         labels or meta.labels)
        # f32 applies to the layers left in floating point; INT8 layers stay INT8.
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
                  "PERFORMANCE_HINT": "LATENCY"}
        try:
            self.compiled = ov.Core().compile_model(read_ir(path), "CPU", config)
        except InvalidInput:
            raise
        except Exception as exc:
            raise InvalidInput(f"{path.name} does not compile on OpenVINO's CPU plugin "
                               f"({str(exc).strip().splitlines()[-1]})") from exc
        self.request = self.compiled.create_infer_request()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: batch})
        return np.array(next(iter(result.values())), dtype=np.float32)


def _need_spec(spec: dict[str, Any] | None, path: Path) -> dict[str, Any]:
    if spec is None:
        raise InvalidInput(f"{path.name} carries no input spec: export it with input_spec "
                           "(app.core.export) or pass spec= to load_runner")
    return spec


def load_runner(
    format: str,
    path: Path,
    *,
    spec: dict[str, Any] | None = None,
    labels: list[str] | None = None,
    threads: int = 1,
) -> Runner:
    """A runner for the artifact at ``path`` in ``format`` (one of ``FORMATS``).

    The input spec and labels come from the file (checkpoint, ONNX metadata, IR rt_info)
    unless given. ``threads`` is the runtime's intra-op thread count (the agent's default is
    1); the torch runner leaves torch's process-wide setting alone.
    """
    if format not in FORMATS:
        raise InvalidInput(f"model format {format!r} is not one of {', '.join(FORMATS)}")
    if threads < 1:
        raise InvalidInput(f"threads must be at least 1, not {threads}")
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist: give the path of a {format} model file")
    if format == "torch":
        # torch's thread count is process-wide: a runner must not change it for everyone.
        return TorchRunner(path, spec, labels)
    if format in ("onnx", "onnx_int8"):
        return OnnxRunner(format, path, spec, labels, threads)
    return OpenVinoRunner(format, path, spec, labels, threads)

