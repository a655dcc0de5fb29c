"""Building a signed release folder on the workstation, for devices to verify and install.

The expected self-test output is computed here by running the release's own ONNX artifact
through the agent's runtime code, so the device later checks exactly what was shipped.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.core.fsutil import sha256_file
from app.fleet.agent.manifest import (
    MANIFEST, MANIFEST_FORMAT, SIGNATURE, InputSpec, Manifest, check_name, key_fingerprint,
    verify_release,
)
from app.fleet.agent.runtime import OnnxRuntimeEngine, OpenVinoEngine

SELFTEST_NAME = "selftest.png"
SELFTEST_TOLERANCE = 0.02


def build_release(
    out: Path,
    *,
    version: str,
    labels: Sequence[str],
    input_spec: InputSpec,
    artifacts: Mapping[str, Path],
    selftest_image: np.ndarray,
    signing_key: Ed25519PrivateKey,
    extra: Mapping[str, object] | None = None,
) -> Manifest:
    """Write a signed release into the new folder ``out`` and return its verified manifest.

    ``artifacts`` maps a runtime ("onnxruntime", "openvino") to its model file; an OpenVINO IR
    ``.xml`` brings its ``.bin`` along.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=False)
    files: list[str] = []
    artifact_names: dict[str, str] = {}
    for runtime, source in artifacts.items():
        source = Path(source)
        name = check_name(source.name, "artifact")
        shutil.copyfile(source, out / name)
        files.append(name)
        artifact_names[runtime] = name
        if source.suffix == ".xml":
            weights = source.with_suffix(".bin")
            shutil.copyfile(weights, out / weights.name)
            files.append(weights.name)
    ok, encoded = cv2.imencode(".png", selftest_image)
    if not ok:
        raise ValueError("the self-test image could not be encoded")
    (out / SELFTEST_NAME).write_bytes(encoded.tobytes())
    files.append(SELFTEST_NAME)

    outputs = _reference_outputs(out, artifact_names, input_spec)
    # The top-level expectation is the first runtime's (ONNX Runtime when shipped), as
    # releases had before; each runtime also gets its own, from its own file.
    probs = next(iter(outputs.values()))
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": version,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": list(labels),
        "input": input_spec.to_json(),
        "artifacts": artifact_names,
        "files": {name: {"sha256": sha256_file(out / name), "size": (out / name).stat().st_size}
                  for name in files},
        "selftest": {
            "input": SELFTEST_NAME,
            "expected_label": labels[int(np.argmax(probs))],
            "expected_probs": [round(float(p), 6) for p in probs],
            "tolerance": SELFTEST_TOLERANCE,
            "by_runtime": {runtime: {"expected_label": labels[int(np.argmax(p))],
                                     "expected_probs": [round(float(v), 6) for v in p]}
                           for runtime, p in outputs.items()},
        },
        "signing_key": key_fingerprint(signing_key.public_key()),
        **(dict(extra) if extra else {}),
    }
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (out / MANIFEST).write_bytes(data)
    (out / SIGNATURE).write_bytes(base64.b64encode(signing_key.sign(data)) + b"\n")
    return verify_release(out, [signing_key.public_key()])


def _reference_outputs(
    folder: Path, artifacts: Mapping[str, str], spec: InputSpec
) -> dict[str, np.ndarray]:
    """What each runtime's engine gives on the shipped self-test image, ONNX Runtime first."""
    decoded = cv2.imdecode(np.fromfile(str(folder / SELFTEST_NAME), np.uint8), cv2.IMREAD_COLOR)
    engines = {"onnxruntime": OnnxRuntimeEngine, "openvino": OpenVinoEngine}
    return {runtime: engines[runtime](folder / artifacts[runtime], spec).predict([decoded])[0]
            for runtime in sorted(artifacts, key=lambda r: r != "onnxruntime")}
