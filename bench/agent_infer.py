"""Edge-model inference on the device runtimes: fps and latency p50/p99, in one run.

For ONNX Runtime and OpenVINO (f32), one frame at a time as the agent runs: through the
agent's engine (preprocessing included) and, as the baseline, the bare runtime call on an
already-prepared tensor. Frames come from the scene generator at 128 px.

    python -m bench.agent_infer                      # builds (or reuses) release 1 in bench/out
    python -m bench.agent_infer --release DIR --threads 1 --frames 2000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import machine
from app.core.scene import SceneGenerator
from app.fleet.agent.manifest import verify_release
from app.fleet.agent.runtime import OnnxRuntimeEngine, OpenVinoEngine, preprocess
from app.fleet.first_release import VERSION, build_first_release
from app.fleet.signing import load_or_create_signing_key

OUT = Path(__file__).with_name("out")


def latencies(fn, frames: list[np.ndarray], warmup: int = 50) -> np.ndarray:  # type: ignore[no-untyped-def]
    for frame in frames[:warmup]:
        fn(frame)
    samples = np.empty(len(frames))
    for i, frame in enumerate(frames):
        start = time.perf_counter()
        fn(frame)
        samples[i] = (time.perf_counter() - start) * 1000
    return samples


def row(name: str, ms: np.ndarray) -> str:
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    return f"| {name} | {p50:.3f} | {p99:.3f} | {1000 / ms.mean():.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    key = load_or_create_signing_key(OUT / "keys")
    release = args.release or OUT / "releases" / VERSION
    if args.release is None and not release.exists():
        build_first_release(release, key)
    manifest = verify_release(release, [key.public_key()])
    generator = SceneGenerator(seed=7, size=128)
    frames = [generator.sample(i).image for i in range(args.frames)]

    engines = {
        "onnxruntime": OnnxRuntimeEngine(release / manifest.artifacts["onnxruntime"],
                                         manifest.input, args.threads),
        "openvino": OpenVinoEngine(release / manifest.artifacts["openvino"], manifest.input,
                                   args.threads),
    }
    print(f"machine: {machine()}")
    print(f"release: {manifest.version}, input {manifest.input.width}x{manifest.input.height}, "
          f"{args.frames} frames, {args.threads} thread(s)")
    print("| path | p50 ms | p99 ms | fps |")
    print("| --- | --- | --- | --- |")
    tensors = [preprocess([f], manifest.input) for f in frames]
    ort_session, ort_input = engines["onnxruntime"].session, engines["onnxruntime"].input_name
    ov_request = engines["openvino"].request
    results = {
        "ONNX Runtime, bare session.run (baseline)":
            latencies(lambda t: ort_session.run(None, {ort_input: t}), tensors),
        "ONNX Runtime, agent engine (with preprocessing)":
            latencies(lambda f: engines["onnxruntime"].predict([f]), frames),
        "OpenVINO f32, bare infer (baseline)":
            latencies(lambda t: ov_request.infer({0: t}), tensors),
        "OpenVINO f32, agent engine (with preprocessing)":
            latencies(lambda f: engines["openvino"].predict([f]), frames),
    }
    for name, ms in results.items():
        print(row(name, ms))
    agree = np.mean([
        np.argmax(engines["onnxruntime"].predict([f])) == np.argmax(engines["openvino"].predict([f]))
        for f in frames[:500]
    ])
    print(f"top-1 agreement ONNX Runtime vs OpenVINO on 500 frames: {agree:.3f}")


if __name__ == "__main__":
    main()
