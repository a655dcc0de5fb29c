"""Compression on the device runtimes: FP32 vs INT8 on ONNX Runtime and OpenVINO, in one run.

Trains (or reuses, from ``bench/out/compress``) an EdgeNet on generated scenes, prunes a copy
and fine-tunes it, exports ONNX and OpenVINO IR, quantizes both to INT8 (ONNX Runtime static
QDQ; NNCF on OpenVINO), then measures every artifact on one held-out generated test set:
accuracy, size, and latency at batch 1 on a fixed number of threads. All formats are timed in
interleaved rounds so that load from other work on the machine falls on all of them alike.

    python -m bench.compress            # width 2.0 at 128 px (trains once, ~15 min on 2 cores)
    python -m bench.compress --quick    # width 1.0 at 96 px, smaller sets: a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from app.core.augment import AugmentConfig
from app.core.model_files import ModelFile, dump_model, load_model
from app.core.nets import build_net, count_parameters
from app.core.progress import Progress
from app.core.scene import CLASSES, SceneGenerator
from app.core.training import TrainConfig, input_spec, train_classifier
from bench.common import machine

OUT = Path(__file__).with_name("out") / "compress"


@dataclass(frozen=True)
class BenchSettings:
    """What the benchmark model is and what it is trained and tested on; the cache key."""

    width: float = 2.0
    size: int = 128
    seed: int = 3
    train_images: int = 2000
    val_images: int = 400
    test_images: int = 1000
    epochs: int = 8
    prune_ratio: float = 0.4
    finetune_epochs: int = 2

    def key(self, *fields: str) -> str:
        data = {name: getattr(self, name) for name in fields} if fields else asdict(self)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


FULL = BenchSettings()
QUICK = BenchSettings(width=1.0, size=96, train_images=600, val_images=200, test_images=300,
                      epochs=3, finetune_epochs=1)
# What the trained model depends on (the test set and pruning are not part of it).
TRAIN_FIELDS = ("width", "size", "seed", "train_images", "val_images", "epochs")


def scenes(settings: BenchSettings, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` generated scenes from index ``start``: (NHWC uint8 BGR, class ids)."""
    generator = SceneGenerator(seed=settings.seed, size=settings.size, defect_rate=0.5)
    samples = generator.batch(start, count)
    return (np.stack([s.image for s in samples]),
            np.asarray([CLASSES.index(s.label) for s in samples], dtype=np.int64))


def datasets(settings: BenchSettings) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    # Disjoint index ranges: the test set is never seen by training, pruning or calibration.
    return {"train": scenes(settings, 0, settings.train_images),
            "val": scenes(settings, 1_000_000, settings.val_images),
            "test": scenes(settings, 2_000_000, settings.test_images)}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def log_progress(event: Progress) -> None:
    say(f"  [{event.stage}] {event.message}")


def train_config(settings: BenchSettings) -> TrainConfig:
    # Flips only, as release 1: the cheapest augmentation that still helps on a busy CPU.
    return TrainConfig(epochs=settings.epochs, seed=settings.seed, augment=AugmentConfig.preset("flip"))


def trained_model(settings: BenchSettings, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> ModelFile:
    """The benchmark's FP32 model, trained once and cached under ``bench/out/compress``."""
    path = OUT / f"edgenet-w{settings.width}-s{settings.size}-{settings.key(*TRAIN_FIELDS)}.pt"
    if path.exists():
        say(f"reusing {path}")
        return load_model(path.read_bytes(), str(path))
    say(f"training EdgeNet width {settings.width} at {settings.size} px "
        f"({settings.train_images} images, {settings.epochs} epochs); cached in {path}")
    net = build_net("edgenet", len(CLASSES), seed=settings.seed, width=settings.width)
    started = time.perf_counter()
    result = train_classifier(net, data["train"], data["val"], train_config(settings),
                              progress=log_progress)
    say(f"trained in {time.perf_counter() - started:.0f} s, val accuracy "
        f"{result.best_val_accuracy:.3f}, {count_parameters(result.model)} parameters")
    item = ModelFile(result.model, "edgenet", list(CLASSES), input_spec(settings.size),
                     {"width": settings.width})
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dump_model(item))
    return item


def pruned_model(settings: BenchSettings, data: dict[str, tuple[np.ndarray, np.ndarray]],
                 base: ModelFile) -> tuple[ModelFile, dict[str, object]]:
    """The base model pruned by ``settings.prune_ratio`` and fine-tuned; cached like it."""
    from app.core.compress import finetune_config, prune_and_finetune

    key = settings.key(*TRAIN_FIELDS, "prune_ratio", "finetune_epochs")
    path = OUT / f"edgenet-w{settings.width}-s{settings.size}-pruned-{key}.pt"
    report_path = path.with_suffix(".json")
    if path.exists() and report_path.exists():
        say(f"reusing {path}")
        return load_model(path.read_bytes(), str(path)), json.loads(report_path.read_text())
    say(f"pruning {settings.prune_ratio:.0%} of channels, fine-tuning {settings.finetune_epochs} "
        "epochs")
    config = finetune_config(train_config(settings), epochs=settings.finetune_epochs)
    model, report = prune_and_finetune(base.model, settings.prune_ratio, data["train"],
                                       data["val"], config, progress=log_progress)
    item = replace(base, model=model, pruned=True)
    path.write_bytes(dump_model(item))
    report_path.write_text(json.dumps(report.to_json(), indent=2))
    return item, report.to_json()


@dataclass
class Artifact:
    """One model file to measure, and how to name it in the table."""

    name: str
    format: str
    path: Path
    group: str  # rows of one group are compared with the group's FP32 row
    note: str = ""


def build_artifacts(settings: BenchSettings, base: ModelFile, pruned: ModelFile,
                    calibration: np.ndarray, folder: Path) -> list[Artifact]:
    """Export, convert and quantize everything the table compares."""
    from app.core.export import export_onnx, export_openvino
    from app.core.quantize import OrtInt8Settings, quantize_onnx, quantize_openvino

    size = settings.size
    artifacts: list[Artifact] = []

    def onnx(item: ModelFile, name: str) -> Path:
        return export_onnx(item.model, folder / name, size, size, input_spec=item.input_spec,
                           labels=item.labels)

    checkpoint = folder / "fp32.pt"
    checkpoint.write_bytes(dump_model(base))
    fp32 = onnx(base, "fp32.onnx")
    artifacts.append(Artifact("torch checkpoint (reference)", "torch", checkpoint, "torch"))
    artifacts.append(Artifact("ONNX Runtime FP32", "onnx", fp32, "ort"))
    # The sweep: EdgeLoop's default first (7-bit weights), then full-range weights and what
    # NOTES.md and the ORT docs suggest trying.
    variants = [OrtInt8Settings(),
                OrtInt8Settings(reduce_range=False),
                OrtInt8Settings(activations="s8", reduce_range=False),
                OrtInt8Settings(quant_format="qoperator"),
                OrtInt8Settings(per_channel=False, reduce_range=False)]
    for i, variant in enumerate(variants):
        say(f"quantizing for ONNX Runtime: {variant.label()}")
        path = quantize_onnx(fp32, folder / f"int8-{i}.onnx", calibration, variant)
        artifacts.append(Artifact(f"ONNX Runtime INT8 {variant.label()}", "onnx_int8", path,
                                  "ort", "default" if i == 0 else ""))
    xml = export_openvino(fp32, folder / "fp32.xml")
    artifacts.append(Artifact("OpenVINO FP32", "openvino", xml, "ov"))
    say("quantizing for OpenVINO with NNCF")
    ov_int8 = quantize_openvino(xml, folder / "int8.xml", calibration,
                                subset_size=len(calibration))
    artifacts.append(Artifact("OpenVINO INT8 (NNCF, performance preset)", "openvino_int8",
                              ov_int8, "ov"))
    pruned_fp32 = onnx(pruned, "pruned.onnx")
    artifacts.append(Artifact(f"pruned {settings.prune_ratio:.0%}, ONNX Runtime FP32", "onnx",
                              pruned_fp32, "pruned"))
    say("quantizing the pruned model for ONNX Runtime")
    artifacts.append(Artifact(f"pruned {settings.prune_ratio:.0%}, ONNX Runtime INT8", "onnx_int8",
                              quantize_onnx(pruned_fp32, folder / "pruned-int8.onnx", calibration),
                              "pruned"))
    return artifacts


def interleaved(fns: dict[str, object], rounds: int, per_round: int, warmup: int) -> dict[str, np.ndarray]:
    """Latency samples of each function, timed in turns so machine load hits all alike."""
    from app.core.evaluation import latency_samples

    samples: dict[str, list[np.ndarray]] = {name: [] for name in fns}
    for fn in fns.values():
        latency_samples(fn, 0, warmup)  # type: ignore[arg-type]
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(latency_samples(fn, per_round, 2))  # type: ignore[arg-type]
    return {name: np.concatenate(parts) for name, parts in samples.items()}


def conv_kinds(path: Path) -> dict[str, str]:
    """Conv node name -> "stem" | "depthwise" | "pointwise" in an ONNX file."""
    import onnx

    kinds = {}
    model = onnx.load(str(path))
    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "QLinearConv"):
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        weight = node.input[1] if node.op_type == "Conv" else node.input[3]
        # A QDQ Conv's weight comes through DequantizeLinear: follow it to the initializer.
        producer = next((n for n in model.graph.node if weight in n.output), None)
        if producer is not None and producer.op_type == "DequantizeLinear":
            weight = producer.input[0]
        dims = shapes.get(weight, [0, 0, 0, 0])
        kinds[node.name] = ("depthwise" if group > 1 else "pointwise" if dims[2:] == [1, 1]
                            else "stem")
    return kinds


def ort_time_by_kind(path: Path, tensor: np.ndarray, threads: int, scratch: Path,
                     runs: int = 100) -> dict[str, float]:
    """Microseconds per run in each kind of node, from ONNX Runtime's profiler."""
    import re

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(scratch / f"profile-{path.stem}")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(runs):
        session.run(None, {name: tensor})
    events = json.loads(Path(session.end_profiling()).read_text())
    kinds = conv_kinds(path)
    totals: dict[str, float] = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        node, op = event["name"][: -len("_kernel_time")], event["args"]["op_name"]
        kind = "other"
        if op == "Conv":  # FP32, fused by ORT: the weight shape is in the event
            weight = list(event["args"]["input_type_shape"][1].values())[0]
            kind = ("depthwise" if weight[1] == 1 and weight[2] > 1 else
                    "pointwise" if weight[2:] == [1, 1] else "stem")
        elif op == "QLinearConv":
            kind = kinds.get(node) or kinds.get(re.sub(r"_token_\d+$", "", node), "conv ?")
        totals[kind] = totals.get(kind, 0.0) + event["dur"] / runs
    return totals


def ov_exec_types(path: Path, tensor: np.ndarray, threads: int, runs: int = 50) -> dict[str, float]:
    """Microseconds per run by OpenVINO CPU kernel (exec type) for the convolutions."""
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
              "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
    request = ov.Core().compile_model(str(path), "CPU", config).create_infer_request()
    totals: dict[str, float] = {}
    for _ in range(runs):
        request.infer({0: tensor})
        for info in request.profiling_info:
            if info.node_type == "Convolution":
                totals[info.exec_type] = (totals.get(info.exec_type, 0.0)
                                          + info.real_time.total_seconds() * 1e6 / runs)
    return totals


def scaling_rows(widths: list[float], size: int, calibration: np.ndarray, threads: int,
                 folder: Path, rounds: int) -> list[str]:
    """INT8 speed-up against width, untrained weights: latency does not depend on them."""
    import torch

    from app.core.compress import count_macs
    from app.core.export import export_onnx, export_openvino
    from app.core.quantize import quantize_onnx, quantize_openvino
    from app.core.runtimes import load_runner

    rows = []
    for width in widths:
        say(f"scaling: width {width}")
        torch.manual_seed(0)
        net = build_net("edgenet", len(CLASSES), width=width).eval()
        spec = input_spec(size)
        fp32 = export_onnx(net, folder / f"w{width}.onnx", size, size, input_spec=spec,
                           labels=list(CLASSES))
        int8 = quantize_onnx(fp32, folder / f"w{width}-int8.onnx", calibration[:64])
        xml = export_openvino(fp32, folder / f"w{width}.xml")
        ov_int8 = quantize_openvino(xml, folder / f"w{width}-int8.xml", calibration[:64],
                                    subset_size=64)
        runners = {"ort fp32": load_runner("onnx", fp32, threads=threads),
                   "ort int8": load_runner("onnx_int8", int8, threads=threads),
                   "ov fp32": load_runner("openvino", xml, threads=threads),
                   "ov int8": load_runner("openvino_int8", ov_int8, threads=threads)}
        tensor = runners["ort fp32"].prepare(calibration[:1])
        ms = interleaved({k: (lambda r=r: r.infer(tensor)) for k, r in runners.items()},
                         rounds, 20, 20)
        p50 = {k: float(np.percentile(v, 50)) for k, v in ms.items()}
        macs = count_macs(net, size, size)
        rows.append(f"| {width} | {count_parameters(net):,} | {macs / 1e6:.0f} | "
                    f"{p50['ort fp32']:.2f} | {p50['ort int8']:.2f} | "
                    f"**{p50['ort fp32'] / p50['ort int8']:.2f}x** | {p50['ov fp32']:.2f} | "
                    f"{p50['ov int8']:.2f} | **{p50['ov fp32'] / p50['ov int8']:.2f}x** |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small model and sets: a smoke run")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of every runtime (the agent's default is 1)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timing rounds (each times every artifact 25 times)")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    rounds = args.rounds or (6 if args.quick else 20)
    logging.getLogger("nncf").setLevel(logging.ERROR)

    import onnxruntime as ort
    import openvino as ov
    import torch

    from app.core.evaluation import artifact_size, evaluate_runner, summarize
    from app.core.runtimes import load_runner

    started = time.perf_counter()
    say("generating scenes")
    data = datasets(settings)
    base = trained_model(settings, data)
    pruned, prune_report = pruned_model(settings, data, base)
    calibration = data["train"][0][:300]
    # torch's intra-op pool is process-wide; match the runtimes (after training, which wants
    # every core) so the reference row compares.
    torch.set_num_threads(args.threads)
    test_x, test_y = data["test"]
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-") as scratch:
        folder = Path(scratch)
        artifacts = build_artifacts(settings, base, pruned, calibration, folder)
        runners = {a.name: load_runner(a.format, a.path, threads=args.threads) for a in artifacts}
        say("evaluating on the test set")
        reports = {a.name: evaluate_runner(runners[a.name], test_x, test_y, list(CLASSES))
                   for a in artifacts}
        frame = test_x[:1]
        tensor = runners[artifacts[1].name].prepare(frame)
        baseline_options = ort.SessionOptions()
        baseline_options.intra_op_num_threads = args.threads
        baseline_options.inter_op_num_threads = 1
        baseline = ort.InferenceSession(str(artifacts[1].path), baseline_options,
                                        providers=["CPUExecutionProvider"])
        baseline_input = baseline.get_inputs()[0].name
        say(f"timing: {rounds} rounds x 25 runs of every artifact, batch 1")
        fns: dict[str, object] = {"baseline": lambda: baseline.run(None, {baseline_input: tensor})}
        fns.update({a.name: (lambda r=runners[a.name]: r.infer(tensor)) for a in artifacts})
        fns.update({f"{a.name} +pre": (lambda r=runners[a.name]: r(frame)) for a in artifacts})
        ms = interleaved(fns, rounds, 25, 25)
        say("profiling")
        ort_fp32_path = artifacts[1].path
        ort_int8 = [a for a in artifacts if a.format == "onnx_int8" and a.group == "ort"]
        chosen = min((a for a in ort_int8
                      if abs(reports[a.name].accuracy - reports[artifacts[1].name].accuracy) <= 0.01),
                     key=lambda a: float(np.percentile(ms[a.name], 50)), default=None)
        profile = {"FP32": ort_time_by_kind(ort_fp32_path, tensor, args.threads, folder)}
        for a in ort_int8:
            if a.note == "default" or a is chosen:
                profile[a.name.replace("ONNX Runtime ", "")] = ort_time_by_kind(
                    a.path, tensor, args.threads, folder)
        ov_kernels = {a.name: ov_exec_types(a.path, tensor, args.threads)
                      for a in artifacts if a.format.startswith("openvino")}
        scaling = ([] if args.quick else
                   scaling_rows([3.0, 4.0], settings.size, calibration, args.threads, folder,
                                max(4, rounds // 2)))
        sizes = {a.name: artifact_size(a.path) for a in artifacts}

    base_p50 = float(np.percentile(ms["baseline"], 50))
    fp32_of = {"torch": artifacts[0].name, "ort": artifacts[1].name,
               "ov": next(a.name for a in artifacts if a.format == "openvino"),
               "pruned": next(a.name for a in artifacts if a.group == "pruned")}
    print(f"## bench.compress{' --quick' if args.quick else ''}\n")
    print(f"command: .venv/bin/python -m bench.compress{' --quick' if args.quick else ''}"
          f"{f' --threads {args.threads}' if args.threads != 1 else ''}")
    print(f"machine: {machine()}  (shared: other jobs run on these cores; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end)")
    print(f"versions: torch {torch.__version__}, onnxruntime {ort.__version__}, "
          f"openvino {ov.get_version().split('-')[0]}, date {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"model: EdgeNet width {settings.width} at {settings.size}x{settings.size}, "
          f"{count_parameters(base.model):,} parameters; trained on {settings.train_images} "
          f"generated scenes ({settings.epochs} epochs), calibration on {len(calibration)} of "
          f"them; test set {len(test_y)} held-out scenes (1 point = {len(test_y) // 100} images)")
    print(f"timing: batch 1, {args.threads} intra-op thread(s), {rounds} interleaved rounds x 25 "
          f"runs = {rounds * 25} samples per row after 25 warm-up runs; 'model' = runtime call on "
          "a prepared tensor, '+pre' = the device's per-frame cost (preprocess + infer)\n")
    print("| artifact | size KB | test acc | Δ pts vs FP32 | model p50 ms | p99 ms | "
          "speed-up vs FP32 | vs baseline | +pre p50 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| baseline: plain onnxruntime FP32 session.run loop | {sizes[artifacts[1].name] / 1024:.0f}"
          f" | | | {base_p50:.3f} | {float(np.percentile(ms['baseline'], 99)):.3f} | | 1.00x | |")
    for a in artifacts:
        lat = summarize(ms[a.name])
        ref = fp32_of[a.group]
        ref_p50 = float(np.percentile(ms[ref], 50))
        delta = (reports[a.name].accuracy - reports[ref].accuracy) * 100
        mark = " ★" if a is chosen else ""
        print(f"| {a.name}{mark} | {sizes[a.name] / 1024:.0f} | {reports[a.name].accuracy:.3f} | "
              f"{delta:+.1f} | {lat.p50_ms:.3f} | {lat.p99_ms:.3f} | {ref_p50 / lat.p50_ms:.2f}x | "
              f"{base_p50 / lat.p50_ms:.2f}x | {float(np.percentile(ms[a.name + ' +pre'], 50)):.3f} |")
    print("\n★ = the fastest ONNX Runtime INT8 setting within 1 point of FP32 accuracy "
          f"({chosen.name if chosen else 'none qualified'}).")
    print(f"pruning: {json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in prune_report.items()})}")

    print("\nONNX Runtime time per run by layer kind (µs, profiler, 100 runs):\n")
    kinds = ["stem", "depthwise", "pointwise", "other"]
    print("| model | " + " | ".join(kinds) + " | total |")
    print("| --- |" + " --- |" * (len(kinds) + 1))
    for name, totals in profile.items():
        print(f"| {name} | " + " | ".join(f"{totals.get(k, 0):.0f}" for k in kinds)
              + f" | {sum(totals.values()):.0f} |")
    print("\nOpenVINO convolution time by CPU kernel (µs per run, PERF_COUNT):\n")
    for name, totals in ov_kernels.items():
        top = sorted(totals.items(), key=lambda kv: -kv[1])
        print(f"- {name}: " + ", ".join(f"{k} {v:.0f}" for k, v in top))
    if scaling:
        print("\nINT8 speed-up against model size (untrained weights, same input size and "
              "settings; latency only, p50 ms of the runtime call):\n")
        print("| width | parameters | MMACs | ORT FP32 | ORT INT8 | ratio | OV FP32 | OV INT8 | ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        print("\n".join(scaling))
    say(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
