"""Training speed on this machine: images per second through EdgeLoop's training loop.

For the edge model (EdgeNet) and the observer (ObserverNet), ``train_classifier`` runs on
generated scenes with each augmentation preset, against a baseline measured in the same run:
a bare torch loop over the same network, batch size and optimizer on tensors prepared in
advance (no augmentation, no per-batch uint8 conversion, no schedule, no validation). The
ratio says what EdgeLoop's loop costs on top of the network's own forward and backward.

    .venv/bin/python -m bench.train               # 1,024 images x 2 epochs, 3 repeats
    .venv/bin/python -m bench.train --quick       # 256 images, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from torch import nn

from app.core.augment import AugmentConfig
from app.core.nets import build_net, count_parameters
from app.core.scene import CLASSES, SceneGenerator
from app.core.training import TrainConfig, to_tensor, train_classifier
from bench.common import machine


def scenes(count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    generator = SceneGenerator(seed=11, size=size)
    samples = [generator.sample(i) for i in range(count)]
    return (np.stack([s.image for s in samples]),
            np.asarray([CLASSES.index(s.label) for s in samples], dtype=np.int64))


def bare_loop(arch: str, data: tuple[np.ndarray, np.ndarray], epochs: int, batch: int) -> float:
    """Images per second of a plain torch loop over ready-made float tensors."""
    torch.manual_seed(0)
    model = build_net(arch, len(CLASSES)).train()
    x, y = to_tensor(data[0]), torch.as_tensor(data[1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter()
    for _ in range(epochs):
        for start in range(0, len(x), batch):
            loss = loss_fn(model(x[start:start + batch]), y[start:start + batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return epochs * len(x) / (time.perf_counter() - started)


def edgeloop_loop(arch: str, data: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                  epochs: int, batch: int, preset: str) -> float:
    """Images per second of ``train_classifier`` (validation on a small split included)."""
    config = TrainConfig(epochs=epochs, batch_size=batch, patience=epochs,
                         augment=AugmentConfig.preset(preset))
    result = train_classifier(build_net(arch, len(CLASSES)), data, val, config,
                              device=torch.device("cpu"))
    return result.images_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    images, repeats, epochs = (256, 1, 1) if args.quick else (1024, 3, 2)
    data, val = scenes(images, args.size), scenes(64, args.size)
    rows = []
    # The observer is ~40x the edge model's compute: a quarter of the images keeps it minutes.
    for arch, presets, share in (("edgenet", ("none", "flip", "mild", "strong"), 1),
                                 ("observernet", ("none", "mild"), 4)):
        params = count_parameters(build_net(arch, len(CLASSES)))
        subset = (data[0][:images // share], data[1][:images // share])
        runs: dict[str, list[float]] = {"bare": [], **{p: [] for p in presets}}
        for _ in range(repeats):  # interleaved, so machine load falls on every row alike
            runs["bare"].append(bare_loop(arch, subset, epochs, args.batch))
            for preset in presets:
                runs[preset].append(edgeloop_loop(arch, subset, val, epochs, args.batch, preset))
        base = statistics.median(runs["bare"])
        for name, values in runs.items():
            median = statistics.median(values)
            label = ("bare torch loop (baseline)" if name == "bare"
                     else f"`train_classifier`, augment {name}")
            rows.append(f"| {arch} ({params / 1e6:.2f} M, {len(subset[0])} images) | {label} | {median:.0f} | "
                        f"{min(values):.0f}-{max(values):.0f} | {median / base:.2f} |")
    print(f"command: .venv/bin/python -m bench.train{' --quick' if args.quick else ''}")
    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"up to {images} generated scenes at {args.size} px, batch {args.batch}, {epochs} epoch(s), "
          f"{repeats} repeat(s), medians\n")
    print("| model | loop | images/s | min-max | vs bare loop |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
