"""Observer throughput: images per second through EdgeLoop's observer path vs plain ONNX Runtime.

Builds a throw-away project, imports generated captures (PNG blobs), freezes a dataset and
trains an observer for one epoch (speed is measured here, not accuracy). Then, on the same
captures and in one run, three ways of classifying them are timed in interleaved rounds, so
that load from other work on the machine falls on all of them alike:

* plain per-image loop: one ONNX Runtime session (default options), then per capture read the
  blob, ``cv2.imdecode``, resize, ``preprocess`` one image, ``session.run``;
* plain batched loop: the same session and steps, but ``--batch`` images per ``session.run``,
  decoded one after another on the calling thread;
* EdgeLoop: ``observe_captures``, which decodes on a thread pool while the previous batch is
  inferred, and also loads the observer (its ONNX artifact, exported once at the first run
  and kept, and a session) and writes an Observation row per capture: its time covers all
  of that.

    .venv/bin/python -m bench.observer                          # 2,000 captures, 3 repeats
    .venv/bin/python -m bench.observer --images 500 --repeats 1  # a smoke run
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from sqlalchemy import delete, select

from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.models import Capture, ModelKind, Observation
from app.core.observer import active_observer, export_observer_onnx, load_observer, observe_captures
from app.core.project import Project, init_project
from app.core.train_service import TrainRequest, train_model
from app.core.training import TrainConfig
from app.core.users import actor_named
from app.fleet.agent.manifest import InputSpec
from app.fleet.agent.runtime import preprocess
from bench.common import machine

Items = list[tuple[int, str]]  # (capture id, blob sha256), in capture id order


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build_project(root: Path, args: argparse.Namespace) -> Project:
    """A project with ``args.images`` generated captures, a frozen dataset and an observer."""
    project = init_project(root, admin="admin")
    actor = actor_named(project.db, "admin")
    started = time.perf_counter()
    import_generated(project.db, project.blobs, project.audit, actor, args.images, seed=3,
                     size=args.size)
    freeze_version(project.db, project.audit, actor)
    say(f"imported {args.images} generated captures at {args.size} px and froze a dataset "
        f"in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    # One epoch: the observer's weights do not change its speed, only its architecture does.
    request = TrainRequest(kind=ModelKind.OBSERVER, size=args.size, arch=args.arch,
                           width=args.width, config=TrainConfig(epochs=1, patience=1))
    outcome = train_model(project.db, project.blobs, project.audit, actor, request,
                          runs_dir=root / "runs")
    say(f"trained {outcome.version} ({args.arch} width {args.width}) for 1 epoch in "
        f"{time.perf_counter() - started:.0f} s")
    return project


def decode(project: Project, sha: str, size: int) -> np.ndarray:
    """A capture's image as ``decode_blob_image`` gives it to the observer: BGR, size x size."""
    data = project.blobs.read_bytes(sha)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return image


def per_image_loop(project: Project, session: Any, spec: InputSpec, items: Items) -> float:
    """Seconds to classify ``items`` one image per ``session.run``."""
    name = session.get_inputs()[0].name
    started = time.perf_counter()
    for _, sha in items:
        image = decode(project, sha, spec.height)
        session.run(None, {name: preprocess([image], spec)})
    return time.perf_counter() - started


def batched_loop(project: Project, session: Any, spec: InputSpec, items: Items,
                 batch: int) -> float:
    """Seconds to classify ``items`` ``batch`` at a time, decoding on this thread in between."""
    name = session.get_inputs()[0].name
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        images = [decode(project, sha, spec.height) for _, sha in items[start:start + batch]]
        session.run(None, {name: preprocess(images, spec)})
    return time.perf_counter() - started


def edgeloop_run(project: Project, model_id: int, batch: int, count: int) -> float:
    """Seconds ``observe_captures`` reports for a fresh run over all ``count`` captures."""
    # It skips captures the observer has seen: forget the previous round's observations
    # (not timed), so every round does the same work from scratch.
    with project.db.write() as session:
        session.execute(delete(Observation).where(Observation.model_id == model_id))
    actor = actor_named(project.db, "admin")
    outcome = observe_captures(project.db, project.blobs, project.audit, actor, batch_size=batch)
    if outcome.observed != count or outcome.unreadable:
        raise RuntimeError(f"the observer run did not observe all {count} captures: {outcome}")
    return outcome.seconds


def time_rounds(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each function per round, the functions taking turns within a round."""
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(repeats):
        for name, fn in fns.items():
            runs[name].append(fn())
            say(f"  round {i + 1}/{repeats}: {name} {runs[name][-1]:.1f} s")
    return runs


def measure(project: Project, args: argparse.Namespace, scratch: Path) -> list[str]:
    """Warm up and time the three methods; the rows of the results table."""
    info = active_observer(project.db)
    spec = InputSpec.from_json(info.input_spec)
    with project.db.read() as session:
        items: Items = [(capture_id, sha) for capture_id, sha in session.execute(
            select(Capture.id, Capture.blob_sha256).order_by(Capture.id))]
    # The baselines get the very model the observer path exports, on a session with the
    # default options (intra-op threads: all physical cores), as a plain script would.
    onnx_path = export_observer_onnx(project.blobs, info, scratch / "observer.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    fns: dict[str, Callable[[], float]] = {
        "per-image": lambda: per_image_loop(project, session, spec, items),
        "batched": lambda: batched_loop(project, session, spec, items, args.batch),
        "edgeloop": lambda: edgeloop_run(project, info.id, args.batch, len(items)),
    }
    say("warm-up round (not timed)")
    time_rounds(fns, 1)
    say(f"{args.repeats} timed round(s)")
    runs = time_rounds(fns, args.repeats)
    # observe_captures' time includes loading the observer (unpacking its ONNX artifact, kept
    # since the first run, and opening a session) on every run: timed alone, to show its share.
    info = active_observer(project.db)
    load: list[float] = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(dir=scratch) as folder:
            begun = time.perf_counter()
            load_observer(project.blobs, info, Path(folder))
            load.append(time.perf_counter() - begun)

    count = len(items)
    rates = {name: [count / s for s in seconds] for name, seconds in runs.items()}
    base = statistics.median(rates["per-image"])
    labels = {
        "per-image": "plain ONNX Runtime loop, 1 image per run (baseline)",
        "batched": f"plain ONNX Runtime loop, batches of {args.batch}, sequential decode",
        "edgeloop": (f"EdgeLoop `observe_captures`, batch {args.batch} (incl. session load "
                     "and DB writes)"),
    }
    rows = []
    for name, values in rates.items():
        median = statistics.median(values)
        rows.append(f"| {labels[name]} | {median:.0f} | {min(values):.0f}-{max(values):.0f} | "
                    f"{median / base:.2f} |")
    # Derived, not measured in one go: EdgeLoop's rate with the median load time taken out.
    net = [count / (s - statistics.median(load)) for s in runs["edgeloop"]]
    rows.append(f"| EdgeLoop without the observer load ({statistics.median(load):.1f} s of "
                f"each run; derived) | {statistics.median(net):.0f} | "
                f"{min(net):.0f}-{max(net):.0f} | {statistics.median(net) / base:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="generated captures (2000)")
    parser.add_argument("--size", type=int, default=96, help="image size in px (96)")
    parser.add_argument("--batch", type=int, default=64, help="batch of the batched runs (64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (3)")
    parser.add_argument("--arch", default="observernet", help="observer architecture")
    parser.add_argument("--width", type=float, default=0.5, help="observer width (0.5)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the project in this new folder and keep it")
    args = parser.parse_args()
    # Training and the ONNX exporter log per epoch and per op; the table is the point here.
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()[0]  # another job on the machine shows here
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-observer-") as scratch:
        root = args.keep or Path(scratch) / "project"
        project = build_project(root, args)
        try:
            rows = measure(project, args, Path(scratch))
        finally:
            project.close()
    total = time.perf_counter() - started

    command = " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"command: .venv/bin/python -m bench.observer {command}".rstrip())
    print(f"machine: {machine()}; onnxruntime {ort.__version__}, CPU; load average "
          f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
          f"total {total:.0f} s (setup and training included)")
    cores = os.cpu_count() or 1
    print(f"plain loops: one session with default options; EdgeLoop: one session with "
          f"{cores} intra-op threads, {min(4, cores)} decode threads")
    print(f"{args.images} generated PNG captures at {args.size} px, {args.arch} width "
          f"{args.width} (1 epoch), batch {args.batch}, 1 warm-up + {args.repeats} timed "
          "round(s), medians\n")
    print("| method | images/s | min-max | vs per-image loop |")
    print("| --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
