"""Drift statistics: PSI and its bands, device-compatible binning, and the MMD embedding test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from app.core.drift_math import (
    PSI_MODERATE,
    PSI_SIGNIFICANT,
    MMDResult,
    histogram,
    mmd_test,
    psi,
    psi_band,
)
from app.core.errors import InvalidInput

counts_arrays = hnp.arrays(
    dtype=np.int64,
    shape=st.integers(min_value=1, max_value=30),
    elements=st.integers(min_value=0, max_value=10_000),
).filter(lambda a: a.sum() > 0)


@st.composite
def count_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(min_value=1, max_value=30))
    elements = st.integers(min_value=0, max_value=10_000)
    expected = draw(hnp.arrays(np.int64, n, elements=elements).filter(lambda a: a.sum() > 0))
    actual = draw(hnp.arrays(np.int64, n, elements=elements).filter(lambda a: a.sum() > 0))
    return expected, actual


def _device_bin(v: float, low: float, high: float, bins: int) -> int:
    """The device's per-value binning, transcribed as the device protocol gives it."""
    index = int((min(max(v, low), high) - low) / (high - low) * bins)
    return min(index, bins - 1)


# -- PSI ------------------------------------------------------------------------------------


@given(counts_arrays)
def test_psi_of_histogram_with_itself_is_zero(counts: np.ndarray) -> None:
    assert psi(counts, counts) == 0.0


@given(count_pairs())
def test_psi_is_never_negative(pair: tuple[np.ndarray, np.ndarray]) -> None:
    expected, actual = pair
    value = psi(expected, actual)
    assert math.isfinite(value)
    assert value >= 0.0


def test_psi_known_value() -> None:
    # e = (0.5, 0.5), a = (0.25, 0.75): -0.25 ln 0.5 + 0.25 ln 1.5 = 0.25 ln 3
    assert psi(np.array([50, 50]), np.array([25, 75])) == pytest.approx(0.25 * math.log(3))


def test_psi_is_finite_with_empty_bins() -> None:
    value = psi(np.array([10, 0, 5]), np.array([0, 10, 5]))
    assert math.isfinite(value)
    assert psi_band(value) == "significant"


def test_psi_rejects_different_lengths() -> None:
    with pytest.raises(InvalidInput, match="different lengths"):
        psi(np.array([1, 2, 3]), np.array([1, 2]))


@pytest.mark.parametrize(
    ("expected", "actual", "name"),
    [([0, 0], [1, 1], "expected"), ([1, 1], [0, 0], "actual"), ([], [], "expected")],
)
def test_psi_rejects_empty_histograms(expected: list[int], actual: list[int], name: str) -> None:
    with pytest.raises(InvalidInput, match=f"{name} histogram has zero total"):
        psi(np.array(expected), np.array(actual))


def test_psi_rejects_negative_counts() -> None:
    with pytest.raises(InvalidInput, match="actual histogram has negative counts"):
        psi(np.array([1, 2]), np.array([3, -1]))


# -- histogram ------------------------------------------------------------------------------


def test_histogram_clips_out_of_range_into_end_bins() -> None:
    counts = histogram(np.array([-5.0, 0.0, 0.5, 1.0, 7.0, np.inf, -np.inf]), 0.0, 1.0, bins=4)
    assert counts.dtype == np.int64
    assert counts.tolist() == [3, 0, 1, 3]


@given(
    values=st.lists(st.floats(min_value=-1e6, max_value=1e6), max_size=50),
    low=st.floats(min_value=-1e3, max_value=1e3),
    width=st.floats(min_value=1e-3, max_value=1e3),
    bins=st.integers(min_value=1, max_value=64),
)
def test_histogram_matches_device_binning(
    values: list[float], low: float, width: float, bins: int
) -> None:
    high = low + width
    expected = np.zeros(bins, dtype=np.int64)
    for v in values:
        expected[_device_bin(v, low, high, bins)] += 1
    counts = histogram(np.array(values, dtype=np.float64), low, high, bins)
    assert counts.tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("low", "high", "bins"), [(1.0, 1.0, 4), (2.0, 1.0, 4), (0.0, math.inf, 4), (0.0, 1.0, 0)]
)
def test_histogram_rejects_bad_settings(low: float, high: float, bins: int) -> None:
    with pytest.raises(InvalidInput, match="histogram"):
        histogram(np.array([0.5]), low, high, bins)


def test_histogram_rejects_nan() -> None:
    with pytest.raises(InvalidInput, match="NaN"):
        histogram(np.array([0.5, np.nan]), 0.0, 1.0)


# -- PSI bands ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "band"),
    [
        (0.0, "none"),
        (0.0999, "none"),
        (PSI_MODERATE, "moderate"),
        (0.2, "moderate"),
        (PSI_SIGNIFICANT, "moderate"),
        (0.2501, "significant"),
        (3.0, "significant"),
    ],
)
def test_psi_band_boundaries(value: float, band: str) -> None:
    assert psi_band(value) == band


@pytest.mark.parametrize("value", [-0.1, math.nan])
def test_psi_band_rejects_impossible_values(value: float) -> None:
    with pytest.raises(InvalidInput, match="PSI value"):
        psi_band(value)


# -- MMD ------------------------------------------------------------------------------------


def _gaussian(seed: int, rows: int = 200, cols: int = 32, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=shift, size=(rows, cols))


def test_mmd_same_distribution_is_not_flagged() -> None:
    result = mmd_test(_gaussian(1), _gaussian(2))
    assert isinstance(result, MMDResult)
    assert result.p_value > 0.05
    assert (result.n_reference, result.n_current) == (200, 200)
    assert result.bandwidth > 0


def test_mmd_mean_shift_is_flagged() -> None:
    same = mmd_test(_gaussian(1), _gaussian(2))
    shifted = mmd_test(_gaussian(1), _gaussian(3, shift=0.5))
    assert shifted.p_value < 0.01
    assert shifted.mmd2 > same.mmd2


def test_mmd_false_alarm_rate_matches_the_significance_level() -> None:
    # 40 same-distribution pairs: a calibrated test flags about 2 at p < 0.05 (7 or more has
    # probability 0.003). Fitting the projection on the reference alone flagged 15 of these.
    flagged = 0
    for i in range(40):
        rng = np.random.default_rng(1000 + i)
        reference, current = rng.normal(size=(200, 32)), rng.normal(size=(200, 32))
        flagged += mmd_test(reference, current, permutations=99, seed=i).p_value < 0.05
    assert flagged <= 6


def test_mmd_is_deterministic_for_a_seed() -> None:
    reference, current = _gaussian(4, rows=400), _gaussian(5, rows=350, shift=0.1)
    first = mmd_test(reference, current, seed=7)
    assert mmd_test(reference, current, seed=7) == first
    assert (first.n_reference, first.n_current) == (300, 300)  # subsampled to max_samples


def test_mmd_handles_fewer_rows_than_dims() -> None:
    result = mmd_test(_gaussian(6, rows=5, cols=32), _gaussian(7, rows=4, cols=32))
    assert math.isfinite(result.mmd2)
    assert 0 < result.p_value <= 1


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        (np.zeros(10), np.zeros((10, 3)), "reference embeddings must be 2-D"),
        (np.zeros((10, 3)), np.zeros((10, 4)), "differ in width"),
        (np.zeros((10, 3)), np.full((10, 3), np.nan), "current embeddings contain NaN"),
        (np.zeros((1, 3)), np.zeros((10, 3)), "at least 2 samples"),
    ],
)
def test_mmd_rejects_bad_input(reference: np.ndarray, current: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        mmd_test(reference, current)
