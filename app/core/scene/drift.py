"""Image-level drift: what a dimmer lamp, a colour cast, defocus, sensor noise or a moved camera
do to a finished scene image.

Each effect scales with the scenario's strength and is exactly nothing at strength 0, so a
drift at strength 0 gives the undrifted image byte for byte. Part-level drifts
(``new_variant``) and label drifts (``defect_rate``) are the generator's business.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from statistics import NormalDist

import cv2
import numpy as np

from app.core.scene.scenarios import Scenario


def camera_matrix(scenario: Scenario, size: int) -> np.ndarray | None:
    """The 2x3 affine map from undrifted to drifted image points, or None if the camera is put."""
    if scenario.name != "camera" or scenario.strength == 0:
        return None
    s = scenario.strength
    zoom = 1 + (scenario.camera_zoom - 1) * s
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), scenario.camera_rotation * s, zoom)
    matrix[:, 2] += (scenario.camera_shift[0] * size * s, scenario.camera_shift[1] * size * s)
    return matrix


def camera_zoom(scenario: Scenario) -> float:
    """How much the camera drift magnifies (1 when it is not in force)."""
    if scenario.name != "camera":
        return 1.0
    return 1 + (scenario.camera_zoom - 1) * scenario.strength


def drift_image(image: np.ndarray, scenario: Scenario,
                noise_rng: Callable[[], np.random.Generator]) -> np.ndarray:
    """Apply the scenario's image-level drift; returns ``image`` itself when there is none.

    ``noise_rng`` is only called by the noise drift, so undrifted samples never pay for a
    random generator they do not use.
    """
    s = scenario.strength
    if s == 0:
        return image
    name = scenario.name
    if name == "lighting":
        gain = 1 + (scenario.light_gain - 1) * s
        gamma = 1 + (scenario.light_gamma - 1) * s
        return cv2.LUT(image, _tone_curve(gain, gamma))
    if name == "colour_cast":
        gains = tuple(1 + (g - 1) * s for g in scenario.cast_gains)
        return cv2.LUT(image, _channel_gains(gains))  # type: ignore[arg-type]
    if name == "blur":
        return _defocus(image, scenario.blur_sigma * s * image.shape[0] / 128)
    if name == "noise":
        return _sensor_noise(image, scenario.noise_sigma * s, noise_rng())
    if name == "camera":
        matrix = camera_matrix(scenario, image.shape[0])
        assert matrix is not None
        # Reflecting the border keeps belt texture at the edges instead of black wedges.
        return cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
    return image


@lru_cache(maxsize=64)
def _tone_curve(gain: float, gamma: float) -> np.ndarray:
    levels = np.arange(256) / 255
    lut = np.clip(np.round(255 * gain * levels ** gamma), 0, 255).astype(np.uint8)
    lut.setflags(write=False)  # cached and shared between calls
    return lut


@lru_cache(maxsize=64)
def _channel_gains(gains: tuple[float, float, float]) -> np.ndarray:
    levels = np.arange(256, dtype=np.float64)[:, None] * np.array(gains)
    lut = np.clip(np.round(levels), 0, 255).astype(np.uint8).reshape(1, 256, 3)
    lut.setflags(write=False)  # cached and shared between calls
    return lut


def _defocus(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; a wide one is done at half resolution, 4x cheaper and looking the same."""
    if sigma < 2.5:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    size = image.shape[1::-1]
    half = cv2.resize(image, (size[0] // 2, size[1] // 2), interpolation=cv2.INTER_AREA)
    # Halving and the linear upsampling blur a little themselves (about 0.6 px between them).
    half = cv2.GaussianBlur(half, (0, 0), math.sqrt(sigma ** 2 - 0.6 ** 2) / 2)
    return cv2.resize(half, size, interpolation=cv2.INTER_LINEAR)


def _sensor_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian read noise plus shot noise, which grows with the square root of the signal.

    Done in uint8 throughout, as table look-ups on random bytes: the positive and negative
    halves of the noise are added and subtracted with saturation, which clips exactly as
    adding signed noise would (a pixel gets one or the other, never both).
    """
    raw = rng.bit_generator.random_raw(-(-image.size // 8)).view(np.uint8)[:image.size]
    raw = raw.reshape(image.shape)
    up, down = _noise_tables(round(sigma, 3))
    gain = cv2.LUT(image, _SHOT_GAIN)
    up = cv2.multiply(cv2.LUT(raw, up), gain, scale=1 / 128)
    down = cv2.multiply(cv2.LUT(raw, down), gain, scale=1 / 128)
    return cv2.subtract(cv2.add(image, up), down)


# Noise gain by pixel value, 128 = 1: 0.6 in the dark rising to about 1.17 at white.
_SHOT_GAIN = np.clip(np.round(128 * (0.6 + 0.4 * np.sqrt(np.arange(256) / 128))), 0, 255).astype(np.uint8)


@lru_cache(maxsize=64)
def _noise_tables(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Map a uniform random byte to the positive and negative parts of N(0, sigma) noise."""
    normal = NormalDist()
    z = np.array([normal.inv_cdf((b + 0.5) / 256) for b in range(256)])
    up = np.clip(np.round(sigma * z), 0, 255).astype(np.uint8)
    down = np.clip(np.round(-sigma * z), 0, 255).astype(np.uint8)
    up.setflags(write=False)
    down.setflags(write=False)
    return up, down
