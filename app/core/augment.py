"""Training-time augmentation with kornia, on batches of RGB images in [0, 1].

What the camera may do to a part between training and the line: mirror and rotate it, move
it closer or further, change the light (brightness, contrast, colour cast), defocus, add
sensor noise, or hide part of it. Each is applied with its own probability, per image, on
whichever device the batch is on (CPU or CUDA). Normalisation comes after, so augmented
pixels stay in the range the device sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import kornia.augmentation as K
import torch
from torch import nn

from app.core.errors import InvalidInput


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation; 0 switches one off. Recorded with the training run."""

    flip: float = 0.5
    rotate_degrees: float = 10.0
    scale: float = 0.1
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.1
    hue: float = 0.0
    blur: float = 0.1
    noise: float = 0.1
    # Off unless asked for: a defect covers a few percent of the image, and erasing it
    # would leave a "scratch" label on a clean part.
    cutout: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def preset(cls, name: str) -> AugmentConfig:
        """"none", "flip" (training's default), "mild" (this class's defaults) or "strong"."""
        off = dict(flip=0.0, rotate_degrees=0.0, scale=0.0, brightness=0.0, contrast=0.0,
                   saturation=0.0, hue=0.0, blur=0.0, noise=0.0, cutout=0.0)
        presets = {
            "none": cls(**off),
            "flip": cls(**{**off, "flip": 0.5}),
            "mild": cls(),
            "strong": cls(flip=0.5, rotate_degrees=20.0, scale=0.2, brightness=0.25,
                          contrast=0.25, saturation=0.2, hue=0.03, blur=0.25, noise=0.25,
                          cutout=0.15),
        }
        try:
            return presets[name]
        except KeyError:
            raise InvalidInput(f"augmentation {name!r}: choose one of "
                               f"{', '.join(presets)}") from None


def build_augmenter(config: AugmentConfig) -> nn.Module:
    """The augmentation pipeline of ``config`` (an identity module when everything is off)."""
    steps: list[nn.Module] = []
    if config.flip:
        steps.append(K.RandomHorizontalFlip(p=config.flip))
        steps.append(K.RandomVerticalFlip(p=config.flip))
    if config.rotate_degrees or config.scale:
        steps.append(K.RandomAffine(degrees=config.rotate_degrees,
                                    scale=(1 - config.scale, 1 + config.scale),
                                    padding_mode="reflection", p=0.8))
    if config.brightness or config.contrast or config.saturation or config.hue:
        steps.append(K.ColorJitter(config.brightness, config.contrast, config.saturation,
                                   config.hue, p=0.8))
    if config.blur:
        steps.append(K.RandomGaussianBlur((5, 5), (0.1, 1.5), p=config.blur))
    if config.noise:
        steps.append(K.RandomGaussianNoise(std=0.03, p=config.noise))
    if config.cutout:
        steps.append(K.RandomErasing(scale=(0.01, 0.05), p=config.cutout))
    return nn.Sequential(*steps) if steps else nn.Identity()


def clamp_unit(x: torch.Tensor) -> torch.Tensor:
    """Noise and jitter can leave [0, 1]; the device never sees such pixels."""
    return x.clamp_(0.0, 1.0)
