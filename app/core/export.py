"""Exporting a trained torch model to ONNX and to OpenVINO IR, for devices to run.

ONNX goes through torch's exporter with a dynamic batch dimension, as one file. OpenVINO IR
is converted from that ONNX file and saved at full precision (``compress_to_fp16=False``),
so the device's f32 inference matches what was validated.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn


def export_onnx(model: nn.Module, path: Path, height: int, width: int) -> Path:
    """Write ``model`` (in eval mode, on CPU) as ONNX with input ``image`` [N,3,H,W]."""
    # EdgeLoop has no torchvision by design; the exporter logs a warning per missing op.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    model = model.eval().to("cpu")
    example = torch.zeros(1, 3, height, width)
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(
        model, (example,), str(path),
        input_names=["image"], output_names=["logits"],
        dynamic_shapes={"x": {0: batch}},
        external_data=False,
        dynamo=True,
        verbose=False,
    )
    return Path(path)


def export_openvino(onnx_path: Path, xml_path: Path) -> Path:
    """Convert an ONNX model to OpenVINO IR (``.xml`` + ``.bin``) at f32."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return Path(xml_path)
