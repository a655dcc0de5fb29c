"""The network architectures EdgeLoop trains, in plain torch (no torchvision).

``EdgeNet`` is the small classifier that runs on devices: a stride-2 stem and depthwise-
separable blocks (MobileNet-style), about 0.1 M parameters at width 1. ``ObserverNet`` is the
large one that re-checks captures on the workstation: residual blocks of full 3x3
convolutions, about 2.8 M parameters at width 1. ``build_net`` makes one from a name, so a
model version records what it is.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Sequential):
    """Convolution, batch norm, ReLU6: the unit every block is made of."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class SeparableBlock(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1: most of a full 3x3's reach at a fraction of the cost."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(ConvBNAct(cin, cin, 3, stride, groups=cin), ConvBNAct(cin, cout, 1))


class EdgeNet(nn.Module):
    """Small defect classifier for devices; ``width`` scales every layer's channels."""

    def __init__(self, num_classes: int, width: float = 1.0) -> None:
        super().__init__()

        def ch(c: int) -> int:
            return max(8, int(c * width))

        plan = [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2)]
        layers: list[nn.Module] = [ConvBNAct(3, ch(24), 3, 2)]
        cin = ch(24)
        for cout, stride in plan:
            layers.append(SeparableBlock(cin, ch(cout), stride))
            cin = ch(cout)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(cin, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features (what drift on embeddings is measured on)."""
        return torch.flatten(self.pool(self.features(x)), 1)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (a 1x1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ObserverNet(nn.Module):
    """The workstation's large classifier (ResNet-style): slower, more accurate, and trained
    on everything reviewed, so its disagreements with the edge model are worth a look."""

    def __init__(self, num_classes: int, width: float = 1.0) -> None:
        super().__init__()

        def ch(c: int) -> int:
            return max(16, int(c * width))

        layers: list[nn.Module] = [ConvBNAct(3, ch(32), 3, 2)]
        cin = ch(32)
        for cout, stride in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1)]:
            layers.append(ResidualBlock(cin, ch(cout), stride))
            cin = ch(cout)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(cin, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features."""
        return torch.flatten(self.pool(self.features(x)), 1)


ARCHITECTURES = {"edgenet": EdgeNet, "observernet": ObserverNet}


def build_net(name: str, num_classes: int, *, seed: int | None = None,
              **kwargs: float) -> nn.Module:
    """A fresh network of a known architecture.

    With ``seed`` the initial weights depend on it alone, not on what used the global random
    generator before (which is left as it was): a run's recorded seed then reproduces it.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    if seed is None:
        return ARCHITECTURES[name](num_classes, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ARCHITECTURES[name](num_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
