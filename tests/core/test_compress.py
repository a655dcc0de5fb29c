"""Compression end to end on a small real model: pruning, ONNX with its spec, INT8 on ONNX
Runtime and OpenVINO, scored the way the device runs them; broken files are refused clearly.

One EdgeNet is trained per module, for 10 epochs on 900 generated 64 px scenes of three of
the five classes (ok, scratch, stain; about 15-40 s on 2 shared cores). Its initial weights
come from a fixed seed: runs of this recipe either stall near 0.6 or break through to about
0.9, depending on the initialization alone (measured over seeds 0-3), and this seed breaks
through (276 of 300 here; chance is 100). A weak model would make the INT8 comparisons
below noisy, since many images would sit near a decision boundary. Every check compares
formats with each other on the same 300 held-out images, never with a target accuracy.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from app.core.augment import AugmentConfig
from app.core.compress import finetune_config, prune_and_finetune
from app.core.errors import InvalidInput
from app.core.evaluation import (
    artifact_size, confusion_report, evaluate_runner, measure_latency, predict_logits,
)
from app.core.export import (
    export_onnx, export_openvino, pack_ir, read_ir_metadata, read_onnx_metadata, unpack_ir,
)
from app.core.model_files import ModelFile, dump_model, load_model
from app.core.nets import build_net, count_parameters
from app.core.progress import CancelToken, Cancelled, Progress
from app.core.quantize import OrtInt8Settings, quantize_onnx, quantize_openvino
from app.core.runtimes import load_runner
from app.core.scene import CLASSES, SceneGenerator
from app.core.training import TrainConfig, input_spec, to_tensor, train_classifier

SIZE = 64
LABELS = list(CLASSES)
TAUGHT = ("ok", "scratch", "stain")


def scenes(start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Generated scenes cycling through the TAUGHT classes (the same parts, forced labels)."""
    generator = SceneGenerator(seed=5, size=SIZE)
    samples = [generator.sample(i, force_label=TAUGHT[i % len(TAUGHT)])
               for i in range(start, start + count)]
    return (np.stack([s.image for s in samples]),
            np.asarray([CLASSES.index(s.label) for s in samples], dtype=np.int64))


@dataclass
class Trained:
    model: torch.nn.Module
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    folder: Path
    checkpoint: Path
    onnx: Path
    xml: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small EdgeNet trained on generated scenes, saved as checkpoint, ONNX and IR."""
    train, val, test = scenes(0, 900), scenes(100_000, 150), scenes(200_000, 300)
    # Small batches and a high peak rate: the most learning per image seen.
    config = TrainConfig(epochs=10, lr=5e-3, batch_size=16, seed=0, patience=10,
                         augment=AugmentConfig.preset("none"))
    model = train_classifier(build_net("edgenet", len(LABELS), seed=2, width=1.0), train, val,
                             config).model.to("cpu").eval()
    folder = tmp_path_factory.mktemp("compress")
    spec = input_spec(SIZE)
    checkpoint = folder / "model.pt"
    checkpoint.write_bytes(dump_model(ModelFile(model, "edgenet", LABELS, spec, {"width": 1.0})))
    onnx_path = export_onnx(model, folder / "model.onnx", SIZE, SIZE, input_spec=spec,
                            labels=LABELS)
    xml = export_openvino(onnx_path, folder / "model.xml")
    return Trained(model, train, val, test, folder, checkpoint, onnx_path, xml)


@pytest.fixture(scope="module")
def onnx_int8(trained: Trained) -> Path:
    return quantize_onnx(trained.onnx, trained.folder / "model.int8.onnx", trained.train[0][:200])


@pytest.fixture(scope="module")
def openvino_int8(trained: Trained) -> Path:
    return quantize_openvino(trained.xml, trained.folder / "model.int8.xml",
                             trained.train[0][:200], subset_size=200)


def correct(path: Path, format: str, test: tuple[np.ndarray, np.ndarray]) -> int:
    """How many test images the artifact classifies right (counts, not floats, are compared)."""
    report = evaluate_runner(load_runner(format, path), test[0], test[1], LABELS)
    return int(np.trace(np.asarray(report.confusion)))


def test_pruning_shrinks_the_network_and_it_survives_a_save_and_load(trained: Trained) -> None:
    before = count_parameters(trained.model)
    events: list[Progress] = []
    pruned, report = prune_and_finetune(trained.model, 0.5, trained.train, trained.val,
                                        finetune_config(epochs=1), progress=events.append)
    assert count_parameters(trained.model) == before, "the caller's model must stay intact"
    assert report.parameters_before == before
    assert report.parameters_after == count_parameters(pruned) < 0.5 * before
    assert report.macs_after < 0.6 * report.macs_before
    assert report.finetune_epochs == 1 and 0 <= report.val_accuracy_after <= 1
    assert any(e.stage == "prune" for e in events) and any(e.stage == "train" for e in events)

    back = load_model(dump_model(ModelFile(pruned, "edgenet", LABELS, input_spec(SIZE),
                                           {"width": 1.0}, pruned=True)))
    assert back.pruned and count_parameters(back.model) == report.parameters_after
    x = to_tensor(trained.test[0][:16])
    with torch.no_grad():
        assert torch.allclose(back.model(x), pruned(x), atol=1e-5)
    # ...and it exports and runs on a device runtime like an unpruned one.
    path = export_onnx(back.model, trained.folder / "pruned.onnx", SIZE, SIZE,
                       input_spec=input_spec(SIZE), labels=LABELS)
    logits = load_runner("onnx", path)(trained.test[0][:16])
    np.testing.assert_allclose(logits, pruned(x).detach().numpy(), atol=1e-4)


def test_a_bad_pruning_ratio_is_refused(trained: Trained) -> None:
    with pytest.raises(InvalidInput, match="pruning ratio 0.95"):
        prune_and_finetune(trained.model, 0.95, trained.train, trained.val)


def test_onnx_carries_its_input_spec_and_labels_and_matches_torch(trained: Trained) -> None:
    meta = read_onnx_metadata(trained.onnx)
    assert meta.input_spec == input_spec(SIZE) and meta.labels == LABELS
    assert read_ir_metadata(trained.xml) == meta
    images = trained.test[0][:32]
    with torch.no_grad():
        expected = trained.model(to_tensor(images)).numpy()
    np.testing.assert_allclose(load_runner("onnx", trained.onnx)(images), expected, atol=1e-4)
    np.testing.assert_allclose(load_runner("torch", trained.checkpoint)(images), expected,
                               atol=1e-5)


def test_runners_preprocess_like_the_device_and_like_training(trained: Trained) -> None:
    # The agent's numpy preprocessing and training's torch one are two implementations of
    # the same spec: they must agree, or what is trained is not what runs.
    runner = load_runner("onnx", trained.onnx)
    images = trained.test[0][:8]
    np.testing.assert_allclose(runner.prepare(images), to_tensor(images).numpy(), atol=1e-5)
    # The device resizes frames of another size; so does the runner.
    big = SceneGenerator(seed=5, size=128).sample(3).image
    assert runner(big[None]).shape == (1, len(LABELS))


def test_ort_int8_stays_within_a_point_of_fp32(trained: Trained, onnx_int8: Path) -> None:
    fp32 = predict_logits(load_runner("onnx", trained.onnx), trained.test[0])
    int8 = predict_logits(load_runner("onnx_int8", onnx_int8), trained.test[0])
    truth = trained.test[1]
    fp32_right, int8_right = int((fp32.argmax(1) == truth).sum()), int((int8.argmax(1) == truth).sum())
    assert fp32_right > 240, "the fixture model did not learn; the comparison means little"
    # 300 test images: one point is 3 images.
    assert abs(int8_right - fp32_right) <= 3, (fp32_right, int8_right)
    # Not the same model: images near a decision boundary may flip, but not many.
    assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.9
    assert read_onnx_metadata(onnx_int8) == read_onnx_metadata(trained.onnx)
    assert artifact_size(onnx_int8) < 0.5 * artifact_size(trained.onnx)


def test_qoperator_and_signed_activation_variants_also_work(trained: Trained) -> None:
    fp32 = correct(trained.onnx, "onnx", trained.test)
    for settings in (OrtInt8Settings(quant_format="qoperator"),
                     OrtInt8Settings(activations="s8", reduce_range=True)):
        path = quantize_onnx(trained.onnx, trained.folder / "variant.onnx",
                             trained.train[0][:64], settings)
        # Calibrated on 64 images only (to stay quick): a looser 2 points.
        assert abs(correct(path, "onnx_int8", trained.test) - fp32) <= 6, settings.label()


def test_openvino_fp32_matches_onnx_fp32(trained: Trained) -> None:
    images = trained.test[0]
    onnx_logits = predict_logits(load_runner("onnx", trained.onnx), images)
    ov_logits = predict_logits(load_runner("openvino", trained.xml), images)
    np.testing.assert_allclose(ov_logits, onnx_logits, atol=1e-3)
    assert (ov_logits.argmax(1) == onnx_logits.argmax(1)).all()


def test_nncf_int8_loads_and_stays_close(trained: Trained, openvino_int8: Path) -> None:
    fp32 = correct(trained.xml, "openvino", trained.test)
    int8 = correct(openvino_int8, "openvino_int8", trained.test)
    assert abs(int8 - fp32) <= 3, (fp32, int8)  # one point of 300 images
    assert load_runner("openvino_int8", openvino_int8).labels == LABELS
    # NNCF keeps some layers (the stem, biases) in f32 on a net this small: about 0.53.
    assert artifact_size(openvino_int8) < 0.6 * artifact_size(trained.xml)


def test_truncated_models_are_refused_naming_the_file(trained: Trained, tmp_path: Path) -> None:
    data = trained.onnx.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput, match="cut.onnx"):
        load_runner("onnx", tmp_path / "cut.onnx")
    with pytest.raises(InvalidInput, match="cut.onnx"):
        read_onnx_metadata(tmp_path / "cut.onnx")

    xml, weights = trained.xml.read_bytes(), trained.xml.with_suffix(".bin").read_bytes()
    (tmp_path / "cutxml.xml").write_bytes(xml[: len(xml) // 2])
    (tmp_path / "cutxml.bin").write_bytes(weights)
    with pytest.raises(InvalidInput, match="cutxml.xml"):
        load_runner("openvino", tmp_path / "cutxml.xml")
    (tmp_path / "cutbin.xml").write_bytes(xml)
    (tmp_path / "cutbin.bin").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(InvalidInput, match="cutbin"):
        load_runner("openvino", tmp_path / "cutbin.xml")
    (tmp_path / "nobin.xml").write_bytes(xml)
    with pytest.raises(InvalidInput, match="nobin.bin is missing"):
        load_runner("openvino", tmp_path / "nobin.xml")
    with pytest.raises(InvalidInput, match="not one of"):
        load_runner("tflite", trained.onnx)


def test_pack_and_unpack_ir_round_trip(trained: Trained, tmp_path: Path) -> None:
    blob = pack_ir(trained.xml)
    assert blob == pack_ir(trained.xml), "the same IR must pack to the same bytes"
    xml = unpack_ir(blob, tmp_path / "out")
    assert xml.name == "model.xml"
    assert xml.read_bytes() == trained.xml.read_bytes()
    assert xml.with_suffix(".bin").read_bytes() == trained.xml.with_suffix(".bin").read_bytes()
    images = trained.test[0][:8]
    np.testing.assert_array_equal(load_runner("openvino", xml)(images),
                                  load_runner("openvino", trained.xml)(images))

    with pytest.raises(InvalidInput, match="edge-7 IR is not a readable tar"):
        unpack_ir(blob[: len(blob) // 3], tmp_path / "cut", "edge-7 IR")
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        for name in ("../model.xml", "../model.bin"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(InvalidInput, match="not a packed OpenVINO IR"):
        unpack_ir(evil.getvalue(), tmp_path / "evil")
    assert not (tmp_path / "model.xml").exists()


def test_evaluation_report_and_latency(trained: Trained) -> None:
    report = confusion_report(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), ["a", "b", "c"])
    assert report.accuracy == 0.75 and report.confusion == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert report.per_class["b"].precision == 0.5 and report.per_class["c"].recall == 0.5
    assert report.to_json()["per_class"]["a"] == {"precision": 1.0, "recall": 1.0, "support": 1}
    runner = load_runner("onnx", trained.onnx)
    p50, p99 = measure_latency(runner, trained.test[0][0], repeats=20, warmup=3)
    assert 0 < p50 <= p99
    bare = measure_latency(runner, trained.test[0][0], 20, warmup=3, include_preprocessing=False)
    assert bare.p50_ms > 0
    assert artifact_size(trained.xml) == (trained.xml.stat().st_size
                                          + trained.xml.with_suffix(".bin").stat().st_size)
    with pytest.raises(InvalidInput, match="3 images but 2 labels"):
        evaluate_runner(runner, trained.test[0][:3], trained.test[1][:2], LABELS)


def test_quantization_can_be_cancelled(trained: Trained, tmp_path: Path) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        quantize_onnx(trained.onnx, tmp_path / "never.onnx", trained.train[0][:16], cancel=cancel)
    with pytest.raises(Cancelled):
        quantize_openvino(trained.xml, tmp_path / "never.xml", trained.train[0][:16],
                          cancel=cancel)


def test_quantizing_leaves_the_root_loggers_handlers_alone(trained: Trained, tmp_path: Path) -> None:
    import logging

    watcher = logging.StreamHandler()
    logging.getLogger().addHandler(watcher)
    logging.getLogger("nncf").addHandler(watcher)  # as some call orders leave it
    try:
        quantize_openvino(trained.xml, tmp_path / "q.xml", trained.train[0][:8], subset_size=8)
        assert watcher.level == logging.NOTSET
    finally:
        logging.getLogger().removeHandler(watcher)
        logging.getLogger("nncf").removeHandler(watcher)
