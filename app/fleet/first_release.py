"""Release 1 for a new fleet: an edge CNN trained on generated factory scenes, signed.

Used by the simulator and the demo, where no labeled data exists yet: the scene generator
provides it. CPU is enough (a couple of minutes at most); CUDA is used when present. The
result is a release folder ready for ``edgeloop-agent ctl install``, and is cached: building
it again with the same settings reuses the folder.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.core.export import export_onnx, export_openvino
from app.core.nets import build_net, count_parameters
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.scene import CLASSES, SceneGenerator
from app.core.augment import AugmentConfig
from app.core.training import TrainConfig, input_spec, train_classifier
from app.fleet.agent.errors import ReleaseRejected
from app.fleet.agent.manifest import InputSpec, Manifest, verify_release
from app.fleet.release_build import build_release

VERSION = "edge-1"


@dataclass(frozen=True)
class FirstReleaseSettings:
    """What release 1 is trained on; part of the cache key."""

    seed: int = 1
    size: int = 96
    train_images: int = 2000
    val_images: int = 500
    epochs: int = 10
    width: float = 1.0
    defect_rate: float = 0.5


def generate(settings: FirstReleaseSettings, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` generated scenes from index ``start``: (NHWC uint8 images, class ids)."""
    generator = SceneGenerator(seed=settings.seed, size=settings.size,
                               defect_rate=settings.defect_rate)
    samples = generator.batch(start, count)
    images = np.stack([s.image for s in samples])
    labels = np.asarray([CLASSES.index(s.label) for s in samples], dtype=np.int64)
    return images, labels


def build_first_release(
    out: Path,
    signing_key: Ed25519PrivateKey,
    settings: FirstReleaseSettings = FirstReleaseSettings(),
    *,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> Manifest:
    """Train, export and sign release 1 into ``out``; reuse ``out`` if it already matches."""
    out = Path(out)
    if out.exists():
        try:
            manifest = verify_release(out, [signing_key.public_key()])
            if manifest.raw.get("training", {}).get("settings") == asdict(settings):
                return manifest
        except ReleaseRejected:
            pass
        raise FileExistsError(f"{out} exists and is not this release 1; remove it first")
    progress(Progress("generate", 0, 1, "generating training scenes"))
    train = generate(settings, 0, settings.train_images)
    val = generate(settings, 1_000_000, settings.val_images)  # disjoint indices
    net = build_net("edgenet", len(CLASSES), seed=settings.seed, width=settings.width)
    # Flips only: release 1 is the fleet's fixed baseline, trained the same way every time.
    config = TrainConfig(epochs=settings.epochs, seed=settings.seed,
                         augment=AugmentConfig.preset("flip"))
    result = train_classifier(net, train, val, config, progress=progress, cancel=cancel)
    progress(Progress("export", 0, 1, "exporting ONNX and OpenVINO IR"))
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = export_onnx(result.model, Path(scratch) / "model.onnx",
                                settings.size, settings.size)
        xml_path = export_openvino(onnx_path, Path(scratch) / "model.xml")
        training = {
            "settings": asdict(settings),
            "val_accuracy": round(result.best_val_accuracy, 4),
            "best_epoch": result.best_epoch,
            "parameters": count_parameters(result.model),
            "seconds": round(result.seconds, 1),
            "images_per_second": round(result.images_per_second, 1),
        }
        manifest = build_release(
            out, version=VERSION, labels=CLASSES,
            input_spec=InputSpec.from_json(input_spec(settings.size)),
            artifacts={"onnxruntime": onnx_path, "openvino": xml_path},
            selftest_image=val[0][0], signing_key=signing_key,
            extra={"training": training},
        )
    progress(Progress("done", 1, 1, json.dumps(training)))
    return manifest
