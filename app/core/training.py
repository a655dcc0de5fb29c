"""Training an image classifier in plain torch: CUDA when present, CPU otherwise.

Inputs are uint8 BGR images (what devices capture); ``to_tensor`` applies exactly the
preprocessing that the release manifest gives the device (``EDGE_INPUT``), so what is trained
is what runs. Augmentation (``app.core.augment``) happens between scaling to [0, 1] and
normalising, batch by batch on the training device. Each epoch's record (train and val loss
and accuracy, seconds since the start: what live curves and an ETA need) goes to the progress
callback as ``metrics``, the best weights so far to the ``checkpoint`` callback; the cancel
token is checked every batch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from app.core.augment import AugmentConfig, build_augmenter, clamp_unit
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress

# Called with (epoch, model, record) whenever validation accuracy improves.
Checkpoint = Callable[[int, nn.Module, dict[str, float]], None]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def input_spec(size: int) -> dict[str, Any]:
    """The preprocessing of a model trained here, in the release manifest's terms."""
    return {"width": size, "height": size, "color": "RGB", "mean": list(MEAN),
            "std": list(STD), "scale": 1 / 255, "layout": "NCHW", "dtype": "float32"}


def to_unit(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """NHWC uint8 BGR -> NCHW float32 RGB in [0, 1]."""
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    return x.flip(-1).permute(0, 3, 1, 2).float().div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB -> the mean/std normalised input the network and the device use."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """NHWC uint8 BGR -> NCHW float32 RGB, scaled and normalized like the device does."""
    return normalize(to_unit(images))


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run.

    The defaults are a recipe measured on generated scenes (1,200 frames at 96 px, CPU): it
    reached 0.915 test accuracy in 15 epochs (one minute), where 8 epochs at 2e-3, batch 64
    with mild augmentation stayed at the majority class (0.55). Small batches and a high peak
    rate give the most learning per image on small datasets.
    """

    epochs: int = 15
    batch_size: int = 32
    lr: float = 5e-3
    weight_decay: float = 1e-4
    patience: int = 5
    seed: int = 0
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig.preset("flip"))

    def to_json(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "augment"},
                "augment": self.augment.to_json()}


@dataclass
class TrainResult:
    """The best model (by validation accuracy) and the history of every epoch."""

    model: nn.Module
    best_epoch: int
    best_val_accuracy: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` on a tensor dataset."""
    model.eval()
    device = next(model.parameters()).device
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch].to(device), y[i:i + batch].to(device)
        logits = model(xb)
        total_loss += float(loss_fn(logits, yb))
        correct += int((logits.argmax(1) == yb).sum())
    return total_loss / max(1, len(x)), correct / max(1, len(x))


def train_classifier(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    *,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
    device: torch.device | None = None,
    checkpoint: Checkpoint | None = None,
) -> TrainResult:
    """Train with AdamW and a one-cycle schedule, keep the best epoch, stop early."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = device or pick_device()
    model = model.to(device)
    # Kept as uint8 and converted per batch: a quarter of the memory of float tensors.
    x_train, y_train = torch.as_tensor(train[0]), torch.as_tensor(train[1], dtype=torch.long)
    augment = build_augmenter(config.augment).to(device)
    x_val, y_val = to_tensor(val[0]), torch.as_tensor(val[1], dtype=torch.long)
    steps = (len(x_train) + config.batch_size - 1) // config.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(1, steps * config.epochs)
    )
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = nn.CrossEntropyLoss()
    best_state, best_acc, best_epoch, since_best = None, -1.0, 0, 0
    history: list[dict[str, float]] = []
    started, seen = time.perf_counter(), 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        running, correct = 0.0, 0
        for step in range(steps):
            if cancel is not None:
                cancel.check()
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            xb = to_unit(x_train[idx].to(device, non_blocking=True))
            yb = y_train[idx].to(device, non_blocking=True)
            with torch.no_grad():
                xb = normalize(clamp_unit(augment(xb)))
            with torch.autocast(device.type, enabled=use_amp):
                logits = model(xb)
                loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            running += loss.detach().item() * len(xb)
            correct += int((logits.detach().argmax(1) == yb).sum())
            seen += len(xb)
        val_loss, val_acc = evaluate(model, x_val, y_val)
        # Train accuracy is measured on the augmented batches in train mode (dropout on), as
        # they were seen: a curve to compare with val's, not a clean score.
        record = {"epoch": epoch, "train_loss": running / len(x_train),
                  "train_accuracy": correct / len(x_train), "val_loss": val_loss,
                  "val_accuracy": val_acc,
                  "seconds": round(time.perf_counter() - started, 3)}
        history.append(record)
        progress(Progress("train", epoch, config.epochs, f"epoch {epoch}: val acc {val_acc:.3f}",
                          metrics=record))
        if val_acc > best_acc:
            best_acc, best_epoch, since_best = val_acc, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            if checkpoint is not None:
                checkpoint(epoch, model, record)
        else:
            since_best += 1
            if since_best >= config.patience:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    seconds = time.perf_counter() - started
    return TrainResult(model.eval(), best_epoch, best_acc, history, seconds, seen / seconds)


def warm_up_training(progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                     ) -> float:
    """Train a tiny network for one epoch on random images; the seconds it took.

    A process's first training pays for torch's one-time setup (kernel selection, the
    autograd engine, the augmentation graph), some of it in C while holding the interpreter
    lock: measured, two pauses of ~200 ms for every other thread, the desktop app's event
    loop included. The app runs this once in the background as it starts, so no training a
    person starts later stalls the window (bench/ui.py stall).
    """
    from app.core.nets import build_net

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (16, 64, 64, 3), dtype=np.uint8)
    labels = np.arange(16) % 2
    config = TrainConfig(epochs=1, batch_size=8, augment=AugmentConfig.preset("flip"))
    train_classifier(build_net("edgenet", 2), (images, labels), (images, labels), config,
                     progress=lambda _: None, cancel=cancel)
    progress(Progress("warm-up", 1, 1, "training warmed up"))
    return time.perf_counter() - started
