"""Inter-rater agreement on ordinal scales: Cohen's weighted kappa (two raters) and Krippendorff's alpha
(ordinal metric, any number of raters, missing ratings allowed). numpy only.

Ratings are category indices 0..k-1 in scale order (for completeness 0 = Excellent ... 5 = Terrible).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WEIGHTS = ("linear", "quadratic")


def cohen_weighted_kappa(a: Sequence[int], b: Sequence[int], k: int, weights: str = "quadratic") -> float:
    """Cohen's kappa with linear or quadratic disagreement weights between two raters' paired ratings.

    `a[i]` and `b[i]` rate the same item. Returns nan when chance disagreement is zero (both raters used one
    and the same category for everything): agreement is then undefined, not perfect.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights!r}: use one of {', '.join(WEIGHTS)}")
    x, y = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"two equally long 1-D rating lists needed, got shapes {x.shape} and {y.shape}")
    if x.size == 0:
        return float("nan")
    if k < 2 or x.min() < 0 or y.min() < 0 or x.max() >= k or y.max() >= k:
        raise ValueError(f"ratings must be category indices in 0..{k - 1} (k={k} >= 2)")
    observed = np.zeros((k, k))
    np.add.at(observed, (x, y), 1.0)
    observed /= x.size
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    i, j = np.indices((k, k))
    w = np.abs(i - j).astype(float) / (k - 1)
    if weights == "quadratic":
        w = w**2
    chance = float((w * expected).sum())
    if chance == 0.0:
        return float("nan")
    return 1.0 - float((w * observed).sum()) / chance


def krippendorff_alpha_ordinal(data: np.ndarray | Sequence[Sequence[float]], k: int) -> float:
    """Krippendorff's alpha with the ordinal metric.

    `data` is raters x units, holding category indices 0..k-1 or nan where a rater did not rate a unit. Units
    rated by fewer than two raters are not pairable and are ignored. Returns nan when there is nothing to
    compare or no variation at all (expected disagreement zero).
    """
    d = np.asarray(data, dtype=float)
    if d.ndim != 2:
        raise ValueError(f"data must be raters x units (2-D), got shape {d.shape}")
    present = ~np.isnan(d)
    if present.any():
        vals = d[present]
        if vals.min() < 0 or vals.max() >= k or not np.all(vals == np.round(vals)):
            raise ValueError(f"ratings must be category indices in 0..{k - 1} or nan")
    # coincidence matrix: every ordered pair of values within a unit, weighted 1 / (m_u - 1)
    coincidence = np.zeros((k, k))
    for u in range(d.shape[1]):
        values = d[present[:, u], u].astype(int)
        m = values.size
        if m < 2:
            continue
        counts = np.bincount(values, minlength=k).astype(float)
        pairs = np.outer(counts, counts) - np.diag(counts)  # ordered pairs of distinct raters
        coincidence += pairs / (m - 1)
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return float("nan")
    # ordinal distance: (sum of n_g for g between c and k inclusive, minus half the two end counts)^2
    cum = np.concatenate([[0.0], np.cumsum(n_c)])
    c, kk = np.indices((k, k))
    lo, hi = np.minimum(c, kk), np.maximum(c, kk)
    delta2 = (cum[hi + 1] - cum[lo] - (n_c[lo] + n_c[hi]) / 2.0) ** 2
    expected = float((np.outer(n_c, n_c) * delta2).sum())
    if expected == 0.0:
        return float("nan")
    observed = float((coincidence * delta2).sum())
    return 1.0 - (n - 1) * observed / expected
