"""Exporting a trained torch model to ONNX and to OpenVINO IR, for devices to run.

ONNX goes through torch's exporter with a dynamic batch dimension, as one file. OpenVINO IR
is converted from that ONNX file and saved at full precision (``compress_to_fp16=False``),
so the device's f32 inference matches what was validated.

Both formats carry how their input is made and what their outputs mean: the input spec
(``app.core.training.input_spec``) and the label names, as ONNX ``metadata_props`` and as
OpenVINO ``rt_info``. A model file found on its own can then be evaluated exactly as the
device will run it. An IR is two files (``.xml`` + ``.bin``); ``pack_ir`` makes it one blob
(a tar of both) and ``unpack_ir`` gives the files back, so one format is always one blob.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.core.errors import InvalidInput
from app.core.fsutil import atomic_write_bytes

SPEC_KEY = "edgeloop.input_spec"
LABELS_KEY = "edgeloop.labels"
# OpenVINO rt_info is a tree: the same two values under <rt_info><edgeloop>.
_RT_SECTION = "edgeloop"


@dataclass(frozen=True)
class ModelMetadata:
    """What an exported model says about itself; None where the file does not say."""

    input_spec: dict[str, Any] | None
    labels: list[str] | None


def export_onnx(
    model: nn.Module,
    path: Path,
    height: int,
    width: int,
    *,
    input_spec: dict[str, Any] | None = None,
    labels: Sequence[str] | None = None,
    output_names: Sequence[str] = ("logits",),
) -> Path:
    """Write ``model`` (in eval mode, on CPU) as ONNX with input ``image`` [N,3,H,W].

    With ``input_spec`` and ``labels`` the file carries them as metadata (see
    :func:`read_onnx_metadata`). ``output_names`` names the model's outputs in order (an
    observer has two: logits and its embedding).
    """
    # EdgeLoop has no torchvision by design; the exporter logs a warning per missing op.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    model = model.eval().to("cpu")
    example = torch.zeros(1, 3, height, width)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with warnings.catch_warnings():
        # torch 2.13's exporter trips over its own pytree deprecation; nothing for a user.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        torch.onnx.export(
            model, (example,), str(path),
            input_names=["image"], output_names=list(output_names),
            dynamic_shapes={"x": {0: batch}},
            external_data=False,
            dynamo=True,
            verbose=False,
        )
    if input_spec is not None or labels is not None:
        write_onnx_metadata(path, input_spec, labels)
    return Path(path)


def write_onnx_metadata(
    path: Path, input_spec: dict[str, Any] | None, labels: Sequence[str] | None
) -> None:
    """Set the input spec and labels of the ONNX file at ``path`` (atomically rewritten)."""
    import onnx

    path = Path(path)
    model = _load_onnx(path)
    props = {p.key: p.value for p in model.metadata_props}
    if input_spec is not None:
        props[SPEC_KEY] = json.dumps(input_spec, sort_keys=True)
    if labels is not None:
        props[LABELS_KEY] = json.dumps(list(labels))
    onnx.helper.set_model_props(model, props)
    atomic_write_bytes(path, model.SerializeToString())


def read_onnx_metadata(path: Path) -> ModelMetadata:
    """The input spec and labels an ONNX file carries; InvalidInput if it is not readable."""
    model = _load_onnx(Path(path))
    props = {p.key: p.value for p in model.metadata_props}
    return _metadata(props.get(SPEC_KEY), props.get(LABELS_KEY), Path(path))


def _load_onnx(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError, OSError, onnx's own: all mean unusable
        raise InvalidInput(f"{path.name} is not a readable ONNX model ({exc}); export it "
                           "again or check that the copy is complete") from exc


def _metadata(spec_text: str | None, labels_text: str | None, path: Path) -> ModelMetadata:
    try:
        spec = json.loads(spec_text) if spec_text else None
        labels = [str(label) for label in json.loads(labels_text)] if labels_text else None
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path.name} has malformed EdgeLoop metadata ({exc}); "
                           "export it again") from exc
    if spec is not None and not isinstance(spec, dict):
        raise InvalidInput(f"{path.name}: its input spec is not an object; export it again")
    return ModelMetadata(spec, labels)


def export_openvino(onnx_path: Path, xml_path: Path) -> Path:
    """Convert an ONNX model to OpenVINO IR (``.xml`` + ``.bin``) at f32.

    The ONNX file's input spec and labels, if it has them, go into the IR's ``rt_info``.
    """
    import openvino as ov

    meta = read_onnx_metadata(onnx_path)
    model = ov.convert_model(str(onnx_path))
    set_ir_metadata(model, meta)
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return Path(xml_path)


def set_ir_metadata(model: Any, meta: ModelMetadata) -> None:
    """Put ``meta`` into an in-memory ``openvino.Model``'s rt_info (saved with the model)."""
    if meta.input_spec is not None:
        model.set_rt_info(json.dumps(meta.input_spec, sort_keys=True), [_RT_SECTION, "input_spec"])
    if meta.labels is not None:
        model.set_rt_info(json.dumps(meta.labels), [_RT_SECTION, "labels"])


def read_ir(xml_path: Path) -> Any:
    """Read an OpenVINO IR (``.xml`` and its ``.bin``); InvalidInput naming the file if broken."""
    import openvino as ov

    xml_path = Path(xml_path)
    weights = xml_path.with_suffix(".bin")
    if not xml_path.is_file() or not weights.is_file():
        missing = xml_path if not xml_path.is_file() else weights
        raise InvalidInput(f"{missing.name} is missing: an OpenVINO IR needs both "
                           f"{xml_path.stem}.xml and {xml_path.stem}.bin side by side")
    try:
        return ov.Core().read_model(str(xml_path), str(weights))
    except Exception as exc:  # OpenVINO raises RuntimeError with a long C++ trace
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"{xml_path.name} (with {weights.name}) is not a readable OpenVINO "
                           f"IR ({first}); export it again or check that the copy is "
                           "complete") from exc


def read_ir_metadata(xml_path: Path) -> ModelMetadata:
    """The input spec and labels an OpenVINO IR carries in its rt_info."""
    model = read_ir(xml_path)

    def get(name: str) -> str | None:
        key = [_RT_SECTION, name]
        return model.get_rt_info(key).astype(str) if model.has_rt_info(key) else None

    return _metadata(get("input_spec"), get("labels"), Path(xml_path))


_IR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def pack_ir(xml_path: Path) -> bytes:
    """One blob for an OpenVINO IR: an uncompressed tar of its ``.xml`` and ``.bin``.

    The tar is deterministic (fixed times, owners and modes), so the same IR always packs
    to the same bytes and a content-addressed store keeps it once.
    """
    xml_path = Path(xml_path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in (xml_path, xml_path.with_suffix(".bin")):
            if not member.is_file():
                raise InvalidInput(f"{member.name} is missing: an OpenVINO IR needs both "
                                   f"{xml_path.stem}.xml and {xml_path.stem}.bin")
            data = member.read_bytes()
            info = tarfile.TarInfo(member.name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack_ir(data: bytes, folder: Path, what: str = "OpenVINO IR blob") -> Path:
    """Write a :func:`pack_ir` blob's two files into ``folder``; return the ``.xml`` path.

    Only a tar of exactly one ``.xml`` and its ``.bin``, with plain names, is accepted: the
    blob may come from elsewhere, and nothing in it may write outside ``folder``.
    """
    folder = Path(folder)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
            names = sorted(m.name for m in members)
            stems = {Path(n).stem for n in names}
            if (len(members) != 2 or not all(m.isfile() for m in members)
                    or not all(_IR_NAME.match(n) and ".." not in n for n in names)
                    or len(stems) != 1 or [Path(n).suffix for n in names] != [".bin", ".xml"]):
                raise InvalidInput(f"{what} is not a packed OpenVINO IR (it holds {names}); "
                                   "pack it with pack_ir")
            contents = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(f"{what} is not a readable tar ({exc}); it may be truncated") from exc
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        atomic_write_bytes(folder / name, content)
    return folder / next(n for n in contents if n.endswith(".xml"))
