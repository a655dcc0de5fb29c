"""INT8 post-training quantization, calibrated on images preprocessed as the device does.

Two paths, one per device runtime:

* ONNX Runtime: ``quantize_onnx`` runs ``quant_pre_process`` (shape inference and graph
  clean-up) then ``quantize_static`` with per-channel 7-bit weights (``reduce_range``),
  calibrated with MinMax on training images. ``OrtInt8Settings`` holds the choices.
  ``reduce_range`` is on because ONNX Runtime's U8S8 kernels saturate their int16
  intermediates on AVX2 CPUs without VNNI (this one, and many edge x86 boxes): on the test
  model of tests/core/test_compress.py, full-range weights classified 160 of 300 test
  images right against FP32's 192, 7-bit weights 192, at the same speed.
* OpenVINO: ``quantize_openvino`` runs NNCF's post-training quantization on the FP32 IR.

Calibration images are uint8 NHWC BGR like any capture and go through the agent's
``preprocess`` with the model's own input spec (read from the file), so the ranges the
quantizer sees are the ranges the device produces. Both keep the source's input spec and
labels in the INT8 file. Neither checks accuracy: evaluate the result with
``app.core.evaluation`` on the runtime the device will use (NOTES.md: the same INT8 model can
lose different accuracy on different CPUs).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import InvalidInput
from app.core.export import (
    ModelMetadata, read_ir, read_ir_metadata, read_onnx_metadata, set_ir_metadata,
    write_onnx_metadata,
)
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.fleet.agent.errors import ReleaseRejected
from app.fleet.agent.manifest import InputSpec
from app.fleet.agent.runtime import preprocess

@dataclass(frozen=True)
class OrtInt8Settings:
    """Choices of ONNX Runtime static quantization.

    ``quant_format`` "qdq" (QuantizeLinear/DequantizeLinear pairs, fused by ORT at load) or
    "qoperator" (QLinearConv etc. written into the file); ``activations`` "u8" or "s8"
    (weights are always s8); ``reduce_range`` uses 7-bit weights, which avoids the
    intermediate int16 saturation of U8S8 kernels on AVX2 CPUs without VNNI at the cost of
    some resolution; ``op_types`` limits what is quantized (None: everything ORT can).
    """

    quant_format: str = "qdq"
    activations: str = "u8"
    per_channel: bool = True
    reduce_range: bool = True
    calibrate_method: str = "minmax"
    op_types: tuple[str, ...] | None = None
    pre_process: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """A short name for tables: e.g. ``qdq u8s8 per-channel``."""
        parts = [self.quant_format, f"{self.activations}s8",
                 "per-channel" if self.per_channel else "per-tensor"]
        if self.reduce_range:
            parts.append("reduce-range")
        if self.op_types:
            parts.append("+".join(self.op_types))
        if self.calibrate_method != "minmax":
            parts.append(self.calibrate_method)
        return " ".join(parts)


def model_input_spec(meta: ModelMetadata, path: Path, spec: dict[str, Any] | None) -> InputSpec:
    """The input spec to calibrate with: the one given, else the one the model file carries."""
    chosen = spec if spec is not None else meta.input_spec
    if chosen is None:
        raise InvalidInput(f"{Path(path).name} carries no input spec, so calibration images "
                           "cannot be prepared like the device does; export it with "
                           "input_spec or pass spec=")
    try:
        return InputSpec.from_json(chosen)
    except ReleaseRejected as exc:
        raise InvalidInput(f"{Path(path).name}: {exc}") from exc


def _check_images(images: np.ndarray, what: str) -> None:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or not len(images):
        raise InvalidInput(f"{what} must be a non-empty uint8 array of BGR images (N, H, W, 3), "
                           f"not {images.dtype} {images.shape}")


def _batches(images: np.ndarray, spec: InputSpec, batch: int, stage: str,
             progress: ProgressFn, cancel: CancelToken | None) -> Iterator[np.ndarray]:
    """Device-preprocessed batches, checking the cancel token and reporting progress."""
    for start in range(0, len(images), batch):
        if cancel is not None:
            cancel.check()
        done = min(start + batch, len(images))
        yield preprocess(images[start:done], spec)
        progress(Progress(stage, done, len(images), f"calibrated on {done} images"))


def quantize_onnx(
    fp32_path: Path,
    out_path: Path,
    calibration: np.ndarray,
    settings: OrtInt8Settings = OrtInt8Settings(),
    *,
    spec: dict[str, Any] | None = None,
    batch: int = 8,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> Path:
    """Write an INT8 copy of the FP32 ONNX model at ``fp32_path`` to ``out_path``.

    ``calibration`` is uint8 NHWC BGR images (a few hundred training images is plenty).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quant_pre_process,
        quantize_static,
    )

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    calibration = np.asarray(calibration)
    _check_images(calibration, "calibration images")
    meta = read_onnx_metadata(fp32_path)
    input_spec = model_input_spec(meta, fp32_path, spec)
    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    types = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if (settings.quant_format not in formats or settings.activations not in types
            or settings.calibrate_method not in methods):
        raise InvalidInput(f"quantization settings {settings.to_json()} are not valid: format "
                           f"{list(formats)}, activations {list(types)}, method {list(methods)}")

    class Reader(CalibrationDataReader):
        def __init__(self, input_name: str) -> None:
            self.input_name = input_name
            self.source = _batches(calibration, input_spec, batch, "calibrate", progress, cancel)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self.source, None)
            return None if tensor is None else {self.input_name: tensor}

    import onnx

    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="edgeloop-quantize-") as scratch:
        source = fp32_path
        if settings.pre_process:
            source = Path(scratch) / "pre.onnx"
            quant_pre_process(str(fp32_path), str(source))
        quantize_static(
            str(source), str(out_path), Reader(input_name),
            quant_format=formats[settings.quant_format],
            op_types_to_quantize=list(settings.op_types) if settings.op_types else None,
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            activation_type=types[settings.activations],
            weight_type=QuantType.QInt8,
            calibrate_method=methods[settings.calibrate_method],
            # Not CalibMaxIntermediateOutputs: in onnxruntime 1.31 MinMax drops (does not
            # merge) the batches it clears, so only the last few would count. MinMax keeps
            # two scalars per tensor per batch, so memory is no reason to set it.
        )
    write_onnx_metadata(out_path, meta.input_spec or spec, meta.labels)
    return out_path


def quantize_openvino(
    xml_path: Path,
    out_xml: Path,
    calibration: np.ndarray,
    *,
    preset: str = "performance",
    subset_size: int = 300,
    fast_bias_correction: bool = True,
    spec: dict[str, Any] | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> Path:
    """Write an INT8 copy of the FP32 OpenVINO IR ``xml_path`` to ``out_xml`` with NNCF.

    ``preset`` "performance" (symmetric activations, fastest) or "mixed" (asymmetric
    activations, for activations that are not centred, e.g. after a non-ReLU); NNCF
    calibrates on up to ``subset_size`` of the ``calibration`` images, one at a time.
    """
    import nncf
    import openvino as ov

    xml_path, out_xml = Path(xml_path), Path(out_xml)
    calibration = np.asarray(calibration)
    _check_images(calibration, "calibration images")
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE,
               "mixed": nncf.QuantizationPreset.MIXED}
    if preset not in presets:
        raise InvalidInput(f"NNCF preset {preset!r} is not one of {', '.join(presets)}")
    meta = read_ir_metadata(xml_path)
    input_spec = model_input_spec(meta, xml_path, spec)
    model = read_ir(xml_path)
    total = min(subset_size, len(calibration))
    seen = 0

    def transform(image: np.ndarray) -> np.ndarray:
        # NNCF walks the dataset more than once (statistics, then bias correction).
        nonlocal seen
        if cancel is not None:
            cancel.check()
        seen += 1
        if seen <= total:
            progress(Progress("calibrate", seen, total, f"calibrated on {seen} images"))
        return preprocess(image[None], input_spec)

    # NNCF reports at INFO through its own logger; the progress callback is our channel.
    # Only the logger's level: nncf.set_log_level also sets the level of every handler that
    # logger has, and under some call orders those are the root logger's (pytest's capture,
    # the GUI's log view), which then silently drop everything below ERROR.
    logging.getLogger("nncf").setLevel(logging.ERROR)
    # NNCF also draws rich progress bars on stdout: noise in the CLI's output and the GUI's
    # log, where the progress callback already reports calibration.
    with contextlib.redirect_stdout(io.StringIO()):
        quantized = nncf.quantize(model, nncf.Dataset(list(calibration), transform),
                                  preset=presets[preset], subset_size=total,
                                  fast_bias_correction=fast_bias_correction)
    set_ir_metadata(quantized, ModelMetadata(meta.input_spec or spec, meta.labels))
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return out_xml
