"""Textures a scene generator computes once per (seed, size): belt, lamp, rails and metal finishes.

Computing them up front is what makes a sample cheap: a sample only crops and shades them.
All are unlit; the lamp's light field is multiplied in after the part and defect are drawn,
so light falls on belt, part and defect alike and stays put while the belt moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LIGHT_UNITY = 128
"""Value of :attr:`Textures.light` that leaves a pixel unchanged (``cv2.multiply`` scale 1/128)."""


@dataclass(frozen=True, eq=False)
class Textures:
    """The precomputed pieces of one generator's scenes (all uint8, BGR)."""

    size: int
    belt: np.ndarray
    """S x 2S belt; a sample crops an S x S window at some offset, which is the belt moving."""
    belt_shadow: np.ndarray
    """The belt in the part's shadow (same layout as :attr:`belt`)."""
    light: np.ndarray
    """S x S x 3 light field of the overhead lamp, :data:`LIGHT_UNITY` = gain 1."""
    rail: np.ndarray
    """R x S guide rail drawn along the top edge (and flipped along the bottom)."""
    steel: np.ndarray
    """2S x 2S brushed steel for the plate; a sample crops an S x S window."""
    brass: np.ndarray
    """2S x 2S turned brass for the flange, rings centred at (S, S)."""

    @property
    def rail_height(self) -> int:
        return self.rail.shape[0]


def make_textures(seed: int, size: int) -> Textures:
    """Build the textures of a generator; deterministic in ``seed`` and ``size``."""
    rng = np.random.default_rng([seed, size, 0x7E87])
    k = size / 128
    belt = _belt(rng, size, k)
    return Textures(
        size=size,
        belt=belt,
        belt_shadow=cv2.convertScaleAbs(belt, alpha=0.5),
        light=_light_field(size),
        rail=_rail(rng, size, k),
        steel=_brushed_steel(rng, size, k),
        brass=_turned_brass(rng, size, k),
    )


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma_x: float, sigma_y: float) -> np.ndarray:
    """Smoothed unit-variance noise: the grain of rubber or the streaks of brushed metal."""
    field = rng.standard_normal(shape, dtype=np.float32)
    field = cv2.GaussianBlur(field, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y)
    return field / max(float(field.std()), 1e-6)


def _belt(rng: np.random.Generator, size: int, k: float) -> np.ndarray:
    """Dark rubber with cross slats every ``size / 8`` pixels, a fine grain and some wear."""
    height, width = size, 2 * size
    grey = np.full((height, width), 66.0, dtype=np.float32)
    grey += 4.0 * _noise(rng, (height, width), 0.7 * k, 0.7 * k)
    grey += 5.0 * _noise(rng, (height, width), 10 * k, 3 * k)
    period = size // 8
    xs = np.arange(width)
    phase = xs % period
    groove = max(1, round(1.5 * k))
    # A slat joint: a dark groove and, just after it, the lit lip of the next slat.
    grey[:, phase < groove] -= 26.0
    grey[:, (phase >= groove) & (phase < 2 * groove)] += 10.0
    bgr = np.stack([grey * 1.04, grey * 1.0, grey * 0.93], axis=-1)
    return np.clip(bgr, 0, 255).astype(np.uint8)


def _light_field(size: int) -> np.ndarray:
    """One lamp above and left of the centre: bright there, falling off to the far corner."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    gain = 1.18 - 0.5 * ((xs - 0.4) ** 2 + (ys - 0.35) ** 2)
    # A slightly warm lamp: red a touch stronger than blue.
    channels = np.stack([gain * 0.98, gain, gain * 1.02], axis=-1)
    return np.clip(channels * LIGHT_UNITY, 0, 255).astype(np.uint8)


def _rail(rng: np.random.Generator, size: int, k: float) -> np.ndarray:
    """A galvanised guide rail: brushed light grey with a dark lower edge casting onto the belt."""
    height = max(5, round(8 * k))
    grey = np.full((height, size), 150.0, dtype=np.float32)
    grey += 10.0 * _noise(rng, (height, size), 12 * k, 0.3)
    grey += np.linspace(12, -18, height, dtype=np.float32)[:, None]
    grey[-max(1, round(1.5 * k)):] = 40.0
    bgr = np.stack([grey * 1.02, grey, grey * 0.97], axis=-1)
    return np.clip(bgr, 0, 255).astype(np.uint8)


def _brushed_steel(rng: np.random.Generator, size: int, k: float) -> np.ndarray:
    """Steel brushed along x: long thin streaks over a gentle cloudiness."""
    shape = (2 * size, 2 * size)
    grey = np.full(shape, 168.0, dtype=np.float32)
    grey += 7.0 * _noise(rng, shape, 9 * k, 0.35)
    grey += 6.0 * _noise(rng, shape, 16 * k, 16 * k)
    bgr = np.stack([grey * 1.03, grey * 1.0, grey * 0.96], axis=-1)
    return np.clip(bgr, 0, 255).astype(np.uint8)


def _turned_brass(rng: np.random.Generator, size: int, k: float) -> np.ndarray:
    """Brass turned on a lathe: fine concentric rings around the centre."""
    n = 2 * size
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
    radius = np.hypot(xs - size, ys - size)
    grey = 150.0 + 9.0 * np.sin(radius * (2 * np.pi / (3.2 * k)))
    grey += 6.0 * _noise(rng, (n, n), 12 * k, 12 * k)
    bgr = np.stack([grey * 0.45, grey * 0.95, grey * 1.22], axis=-1)
    return np.clip(bgr, 0, 255).astype(np.uint8)
