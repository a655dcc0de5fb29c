"""The statistics EdgeLoop uses to tell whether the data a fleet sees has drifted.

Two measures, both pure numpy so they run anywhere the server runs:

- the Population Stability Index (PSI) between two histograms, for scalar signals the
  devices summarise on board (brightness, confidence, ...). :func:`histogram` bins values
  exactly as the device does, so server-side histograms compare bin for bin with uploaded
  ones;
- a kernel two-sample test (maximum mean discrepancy, MMD) on embeddings, for drift that no
  single scalar shows. It reduces dimension with a PCA of the pooled samples and gets its
  p-value by permutation, so on same-distribution data p < 0.05 happens 5% of the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.errors import InvalidInput

PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25


# -- histograms and PSI ---------------------------------------------------------------------


def histogram(values: np.ndarray, low: float, high: float, bins: int = 20) -> np.ndarray:
    """Count ``values`` into ``bins`` equal bins over ``[low, high]``, as the device does.

    Values outside the range are clipped into the end bins rather than dropped, so the
    total always equals the number of values. Returns an int64 array of length ``bins``.
    """
    if not (np.isfinite(low) and np.isfinite(high)) or not low < high:
        raise InvalidInput(
            f"histogram range [{low}, {high}] is not usable: give finite bounds with low < high."
        )
    if int(bins) != bins or bins < 1:
        raise InvalidInput(f"histogram bins={bins} is not usable: give a whole number >= 1.")
    bins = int(bins)
    flat = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(flat).any():
        raise InvalidInput("histogram values contain NaN: drop or replace them before binning.")
    clipped = np.clip(flat, low, high)
    # Same operations in the same order as the device formula, so float rounding (and
    # therefore the bin a value on a boundary lands in) agrees with the device.
    index = ((clipped - low) / (high - low) * bins).astype(np.int64)
    index = np.minimum(index, bins - 1)
    return np.bincount(index, minlength=bins).astype(np.int64)


def _proportions(counts: np.ndarray, name: str, epsilon: float) -> np.ndarray:
    """Counts as proportions, empty bins lifted to ``epsilon`` so a log ratio stays finite."""
    total = counts.sum()
    if total <= 0:
        raise InvalidInput(
            f"PSI {name} histogram has zero total: it needs at least one counted value."
        )
    p = counts / total
    p = np.where(p == 0, epsilon, p)
    return p / p.sum()


def _as_counts(counts: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(counts, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidInput(
            f"PSI {name} histogram must be 1-D counts, got shape {array.shape}: pass one "
            "count per bin."
        )
    if not np.isfinite(array).all():
        raise InvalidInput(f"PSI {name} histogram has non-finite counts: give finite counts.")
    if (array < 0).any():
        raise InvalidInput(
            f"PSI {name} histogram has negative counts: counts must be >= 0."
        )
    return array


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = 1e-4) -> float:
    """Population Stability Index of ``actual`` against ``expected`` (histograms of counts).

    Both are normalised to proportions; bins empty on either side get ``epsilon``
    proportion (then renormalised) so the result is finite. The value is
    ``sum((a - e) * ln(a / e))``: 0 for identical distributions, never negative; read it
    with :func:`psi_band`.
    """
    if not 0 < epsilon < 1:
        raise InvalidInput(f"PSI epsilon={epsilon} is not usable: give a value in (0, 1).")
    e_counts = _as_counts(expected, "expected")
    a_counts = _as_counts(actual, "actual")
    if e_counts.shape != a_counts.shape:
        raise InvalidInput(
            f"PSI histograms have different lengths (expected {e_counts.size} bins, actual "
            f"{a_counts.size}): bin both with the same range and bin count."
        )
    e = _proportions(e_counts, "expected", epsilon)
    a = _proportions(a_counts, "actual", epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_band(value: float) -> str:
    """The conventional reading of a PSI: ``"none"`` (< 0.1), ``"moderate"`` (0.1 to 0.25)
    or ``"significant"`` (> 0.25)."""
    if np.isnan(value) or value < 0:
        raise InvalidInput(f"PSI value {value} is not usable: a PSI is a number >= 0.")
    if value < PSI_MODERATE:
        return "none"
    if value <= PSI_SIGNIFICANT:
        return "moderate"
    return "significant"


# -- MMD two-sample test on embeddings --------------------------------------------------------


@dataclass(frozen=True)
class MMDResult:
    """Outcome of :func:`mmd_test`; the sample sizes are those used, after subsampling."""

    mmd2: float
    p_value: float
    bandwidth: float
    n_reference: int
    n_current: int


def _as_embeddings(array: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(array, dtype=np.float64)
    if x.ndim != 2:
        raise InvalidInput(
            f"MMD {name} embeddings must be 2-D (one row per sample), got shape {x.shape}."
        )
    if x.shape[0] < 2:
        raise InvalidInput(
            f"MMD {name} embeddings have {x.shape[0]} row(s): give at least 2 samples."
        )
    if not np.isfinite(x).all():
        raise InvalidInput(
            f"MMD {name} embeddings contain NaN or infinite values: drop those rows first."
        )
    return x


def _subsample(x: np.ndarray, max_samples: int, rng: np.random.Generator) -> np.ndarray:
    # The kernel matrix is quadratic in the sample count; a random subset keeps the test
    # fast while staying unbiased.
    if x.shape[0] <= max_samples:
        return x
    keep = np.sort(rng.choice(x.shape[0], size=max_samples, replace=False))
    return x[keep]


def _pooled_projection(
    reference: np.ndarray, current: np.ndarray, dims: int
) -> tuple[np.ndarray, np.ndarray]:
    """Project both samples on the pooled data's leading principal axes, in unit spread.

    The axes and scales come from both samples together, not from the reference alone: a
    permutation test is only valid when the transform treats every relabelling alike. Axes
    fitted on the reference overstate its spread along them (the top components of a sample
    covariance are biased upwards), so on same-distribution data the current sample looks
    narrower there and the test raises false alarms, the more so the more samples it has
    (about 60% at p < 0.05 with 300 rows each). Pooling does not hide a shift: a shifted
    sample adds variance along the shift, which draws an axis towards it.
    """
    pooled = np.vstack([reference, current])
    centred = pooled - pooled.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(dims, pooled.shape[1], pooled.shape[0])
    projected = centred @ vt[:k].T
    std = projected.std(axis=0)
    # With fewer rows than columns the last axes carry no variance; dividing by ~0 would
    # blow rounding noise up into a fake signal.
    scale = std.max() if std.size else 0.0
    projected /= np.where(std > 1e-12 * max(scale, 1.0), std, 1.0)
    m = reference.shape[0]
    return projected[:m], projected[m:]


def _squared_distances(z: np.ndarray) -> np.ndarray:
    sq = np.sum(z * z, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
    np.fill_diagonal(d2, 0.0)
    return np.maximum(d2, 0.0)  # rounding can make tiny distances negative


def _median_bandwidth(d2: np.ndarray) -> float:
    """The median pairwise distance: a scale-free default that suits the data at hand."""
    upper = d2[np.triu_indices(d2.shape[0], k=1)]
    bandwidth = float(np.sqrt(np.median(upper)))
    # All points identical: any bandwidth gives the same (zero) statistic.
    return bandwidth if bandwidth > 0 else 1.0


def _mmd2_batch(kernel: np.ndarray, in_x: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 for each labelling in ``in_x`` (rows of 0/1 marking the first sample).

    ``kernel`` must have a zero diagonal. Sums over blocks are quadratic forms in the
    indicator vectors, so every permutation costs one matrix product, not a re-indexing.
    """
    m = in_x[0].sum()
    n = in_x.shape[1] - m
    in_y = 1.0 - in_x
    k_x = in_x @ kernel
    sum_xx = np.sum(k_x * in_x, axis=1)
    sum_xy = np.sum(k_x * in_y, axis=1)
    sum_yy = kernel.sum() - sum_xx - 2.0 * sum_xy
    return sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * sum_xy / (m * n)


def _check_mmd_settings(permutations: int, max_samples: int, dims: int) -> None:
    if permutations < 1:
        raise InvalidInput(f"MMD permutations={permutations}: give at least 1.")
    if max_samples < 2:
        raise InvalidInput(f"MMD max_samples={max_samples}: give at least 2.")
    if dims < 1:
        raise InvalidInput(f"MMD dims={dims}: give at least 1.")


def mmd_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int = 200,
    max_samples: int = 300,
    dims: int = 16,
    seed: int = 0,
) -> MMDResult:
    """Test whether ``current`` embeddings come from the same distribution as ``reference``.

    Rows are samples. Each side is subsampled to at most ``max_samples`` rows, both are
    projected on the pooled data's first ``dims`` principal axes and scaled to unit spread
    there, and an RBF kernel (median-heuristic bandwidth on the pooled data) gives an
    unbiased MMD^2. The p-value comes from ``permutations`` random relabellings of the
    pooled samples. The same ``seed`` gives the same result.
    """
    _check_mmd_settings(permutations, max_samples, dims)
    ref = _as_embeddings(reference, "reference")
    cur = _as_embeddings(current, "current")
    if ref.shape[1] != cur.shape[1]:
        raise InvalidInput(
            f"MMD embeddings differ in width (reference {ref.shape[1]} columns, current "
            f"{cur.shape[1]}): compare embeddings from the same model."
        )
    rng = np.random.default_rng(seed)
    ref = _subsample(ref, max_samples, rng)
    cur = _subsample(cur, max_samples, rng)
    ref_z, cur_z = _pooled_projection(ref, cur, dims)

    pooled = np.vstack([ref_z, cur_z])
    d2 = _squared_distances(pooled)
    bandwidth = _median_bandwidth(d2)
    kernel = np.exp(-d2 / (2.0 * bandwidth**2))
    np.fill_diagonal(kernel, 0.0)  # the unbiased estimate leaves out self-similarity

    m, total = ref_z.shape[0], pooled.shape[0]
    observed_labels = np.zeros((1, total))
    observed_labels[0, :m] = 1.0
    observed = float(_mmd2_batch(kernel, observed_labels)[0])

    permuted_labels = np.zeros((permutations, total))
    for row in permuted_labels:
        row[rng.permutation(total)[:m]] = 1.0
    null = _mmd2_batch(kernel, permuted_labels)
    p_value = (1 + int(np.sum(null >= observed))) / (1 + permutations)

    return MMDResult(
        mmd2=observed,
        p_value=p_value,
        bandwidth=bandwidth,
        n_reference=m,
        n_current=total - m,
    )
