"""The torch artifact of a model version: one file that rebuilds the network, pruned or not.

A checkpoint holds the architecture name and arguments, the label names, the input spec, the
weights, and the shape of every convolution, batch norm and linear layer. Pruned networks
have fewer channels than ``build_net`` makes; loading rebuilds those layers at the saved
shapes before the weights go in. (torch-pruning's own ``state_dict`` pickles whole modules,
which ``weights_only=True`` rightly refuses.) A checkpoint is data, never code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from app.core.errors import InvalidInput
from app.core.nets import build_net

FORMAT_VERSION = 1


@dataclass
class ModelFile:
    """A network and what is needed to use it: labels, input spec, how it was built."""

    model: nn.Module
    arch: str
    labels: list[str]
    input_spec: dict[str, Any]
    arch_kwargs: dict[str, float] = field(default_factory=dict)
    pruned: bool = False


def dump_model(item: ModelFile) -> bytes:
    """The checkpoint bytes of ``item`` (weights on CPU)."""
    model = item.model.to("cpu").eval()
    buffer = io.BytesIO()
    torch.save({"format": FORMAT_VERSION, "arch": item.arch, "arch_kwargs": item.arch_kwargs,
                "labels": list(item.labels), "input_spec": item.input_spec,
                "pruned": item.pruned, "shapes": layer_shapes(model),
                "state": model.state_dict()}, buffer)
    return buffer.getvalue()


def layer_shapes(model: nn.Module) -> dict[str, list[int]]:
    """The constructor sizes of every resizable layer, by module name."""
    shapes: dict[str, list[int]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            shapes[name] = [module.in_channels, module.out_channels, module.groups]
        elif isinstance(module, nn.BatchNorm2d):
            shapes[name] = [module.num_features]
        elif isinstance(module, nn.Linear):
            shapes[name] = [module.in_features, module.out_features]
    return shapes


def _reshape(model: nn.Module, shapes: dict[str, list[int]]) -> None:
    """Replace layers whose saved size differs with fresh ones of that size."""
    modules = dict(model.named_modules())
    for name, size in shapes.items():
        old = modules.get(name)
        if old is None:
            raise KeyError(f"no layer {name!r}")
        if isinstance(old, nn.Conv2d):
            new: nn.Module = nn.Conv2d(size[0], size[1], old.kernel_size, old.stride,
                                       old.padding, groups=size[2], bias=old.bias is not None)
        elif isinstance(old, nn.BatchNorm2d):
            new = nn.BatchNorm2d(size[0], eps=old.eps, momentum=old.momentum)
        elif isinstance(old, nn.Linear):
            new = nn.Linear(size[0], size[1], bias=old.bias is not None)
        else:
            raise KeyError(f"layer {name!r} is a {type(old).__name__}, not resizable")
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, new)


def load_model(data: bytes, what: str = "checkpoint") -> ModelFile:
    """Rebuild the network a checkpoint holds; ``what`` names it in errors."""
    try:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise InvalidInput(f"{what} is not a readable EdgeLoop checkpoint ({exc})") from exc
    if not isinstance(saved, dict) or saved.get("format") != FORMAT_VERSION:
        raise InvalidInput(f"{what} has an unknown checkpoint format; it was not written by "
                           "this version of EdgeLoop")
    labels = list(saved["labels"])
    model = build_net(saved["arch"], len(labels), **saved.get("arch_kwargs", {}))
    try:
        _reshape(model, saved["shapes"])
        model.load_state_dict(saved["state"])
    except (RuntimeError, KeyError) as exc:
        raise InvalidInput(f"{what} does not match its architecture {saved['arch']!r} "
                           f"({exc})") from exc
    return ModelFile(model.eval(), saved["arch"], labels, dict(saved["input_spec"]),
                     dict(saved.get("arch_kwargs", {})), bool(saved.get("pruned")))
