"""Structured pruning of a trained network, then a short fine-tune to win back accuracy.

Whole channels are removed (torch-pruning follows every layer a channel touches, so the
network stays consistent: a pointwise conv's output, the BN after it, the next depthwise
conv and the one after); the result is an ordinary smaller network that every runtime runs
faster, unlike unstructured sparsity. Channels are ranked by the L2 norm of their whole
dependency group, and kept counts are rounded to multiples of 8 so the convolutions stay
aligned with 8-wide AVX2 vectors (ONNX Runtime's NCHWc blocks). The classifier head is never
pruned: its outputs are the classes. The pruned network saves and loads through
``app.core.model_files`` like any other (``ModelFile(..., pruned=True)``).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from app.core.errors import InvalidInput
from app.core.nets import count_parameters
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from app.core.training import TrainConfig, evaluate, to_tensor, train_classifier

MAX_RATIO = 0.9
CHANNEL_MULTIPLE = 8


@dataclass(frozen=True)
class PruneReport:
    """What pruning did: sizes, compute and validation accuracy before and after."""

    ratio: float
    parameters_before: int
    parameters_after: int
    macs_before: int
    macs_after: int
    val_accuracy_before: float
    val_accuracy_pruned: float
    val_accuracy_after: float
    finetune_epochs: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def finetune_config(base: TrainConfig | None = None, epochs: int = 3) -> TrainConfig:
    """A short, gentle fine-tune: few epochs at a quarter of the learning rate."""
    base = base or TrainConfig()
    return TrainConfig(epochs=epochs, batch_size=base.batch_size, lr=base.lr / 4,
                       weight_decay=base.weight_decay, patience=epochs, seed=base.seed,
                       augment=base.augment)


def head_of(model: nn.Module) -> nn.Module:
    """The layer whose outputs are the classes (never pruned)."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise InvalidInput(f"{type(model).__name__} has no linear `head`; only networks "
                           "built by app.core.nets can be pruned")
    return head


def count_macs(model: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of one forward pass at batch 1."""
    import torch_pruning as tp

    was_training = model.training
    macs, _ = tp.utils.count_ops_and_params(model.eval(), torch.zeros(1, 3, height, width))
    model.train(was_training)
    return int(macs)


def prune_channels(model: nn.Module, ratio: float, height: int, width: int) -> nn.Module:
    """Remove about ``ratio`` of the channels of every prunable layer, in place."""
    import torch_pruning as tp

    if not 0.0 <= ratio <= MAX_RATIO:
        raise InvalidInput(f"pruning ratio {ratio} is out of range: give a share of channels "
                           f"to remove from 0 to {MAX_RATIO}")
    model = model.eval().to("cpu")
    pruner = tp.pruner.MagnitudePruner(
        model, torch.zeros(1, 3, height, width),
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio, ignored_layers=[head_of(model)], round_to=CHANNEL_MULTIPLE,
    )
    pruner.step()
    return model


def prune_and_finetune(
    model: nn.Module,
    ratio: float,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: TrainConfig | None = None,
    *,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> tuple[nn.Module, PruneReport]:
    """Prune a copy of ``model`` by ``ratio`` and fine-tune it on ``train``.

    ``train`` and ``val`` are (uint8 NHWC BGR images, class ids) like ``train_classifier``
    takes; ``config`` is the fine-tune's (default :func:`finetune_config`). The given model
    is left as it was. Returns the fine-tuned network (the best epoch by validation
    accuracy) and a :class:`PruneReport`.
    """
    config = config or finetune_config()
    images = np.asarray(train[0])
    if images.ndim != 4 or not len(images):
        raise InvalidInput(f"training images must be a non-empty (N, H, W, 3) array, not "
                           f"shape {images.shape}")
    height, width = images.shape[1:3]
    started = time.perf_counter()
    x_val, y_val = to_tensor(np.asarray(val[0])), torch.as_tensor(val[1], dtype=torch.long)
    pruned = copy.deepcopy(model).to("cpu").eval()
    before = {"parameters": count_parameters(pruned), "macs": count_macs(pruned, height, width),
              "accuracy": evaluate(pruned, x_val, y_val)[1]}
    progress(Progress("prune", 0, 1, f"pruning {ratio:.0%} of channels"))
    if cancel is not None:
        cancel.check()
    prune_channels(pruned, ratio, height, width)
    pruned_accuracy = evaluate(pruned, x_val, y_val)[1]
    progress(Progress("prune", 1, 1, f"pruned: val accuracy {pruned_accuracy:.3f} before "
                      "fine-tuning", metrics={"val_accuracy": pruned_accuracy}))
    result = train_classifier(pruned, train, val, config, progress=progress, cancel=cancel)
    tuned = result.model.to("cpu").eval()
    report = PruneReport(
        ratio=ratio,
        parameters_before=before["parameters"], parameters_after=count_parameters(tuned),
        macs_before=before["macs"], macs_after=count_macs(tuned, height, width),
        val_accuracy_before=before["accuracy"], val_accuracy_pruned=pruned_accuracy,
        val_accuracy_after=result.best_val_accuracy,
        finetune_epochs=len(result.history), seconds=time.perf_counter() - started,
    )
    return tuned, report
