"""Cohen's weighted kappa and Krippendorff's ordinal alpha against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from validation.agreement import cohen_weighted_kappa, krippendorff_alpha_ordinal


def test_weighted_kappa_small_hand_example() -> None:
    # k=3, pairs (0,0) (1,1) (2,2) (0,1): observed p = 1/4 each. Row margins (1/2, 1/4, 1/4), columns
    # (1/4, 1/2, 1/4). Linear weights |i-j|/2: observed disagreement 1/4 * 1/2 = 1/8; expected:
    # sum_ij r_i c_j w_ij = (1/2)(1/2 * 1/2 + 1/4 * 1) + (1/4)(1/4 * 1/2 + 1/4 * 1/2)
    #                     + (1/4)(1/4 * 1 + 1/2 * 1/2)
    # = 1/4 + 1/16 + 1/8 = 7/16 -> kappa = 1 - (1/8)/(7/16) = 5/7.
    a, b = [0, 1, 2, 0], [0, 1, 2, 1]
    assert cohen_weighted_kappa(a, b, 3, "linear") == pytest.approx(5 / 7)
    # quadratic weights (|i-j|/2)^2: observed 1/4 * 1/4 = 1/16;
    # expected (1/2)(1/2*1/4 + 1/4*1) + (1/4)(1/4*1/4
    # + 1/4*1/4) + (1/4)(1/4*1 + 1/2*1/4) = 3/16 + 1/32 + 3/32 = 5/16 -> kappa = 1 - (1/16)/(5/16) = 4/5.
    assert cohen_weighted_kappa(a, b, 3, "quadratic") == pytest.approx(4 / 5)


def test_weighted_kappa_edge_cases() -> None:
    assert cohen_weighted_kappa([0, 3, 5, 2], [0, 3, 5, 2], 6) == pytest.approx(1.0)
    # perfectly reversed ratings on a symmetric spread: quadratic kappa is -1
    assert cohen_weighted_kappa([0, 5], [5, 0], 6) == pytest.approx(-1.0)
    assert math.isnan(cohen_weighted_kappa([2, 2, 2], [2, 2, 2], 6))  # no variation: undefined
    assert math.isnan(cohen_weighted_kappa([], [], 6))
    with pytest.raises(ValueError, match="0..5"):
        cohen_weighted_kappa([0, 6], [0, 1], 6)
    with pytest.raises(ValueError, match="weights"):
        cohen_weighted_kappa([0], [0], 6, "cubic")


def test_alpha_two_raters_by_hand() -> None:
    # units (0,0), (1,1), (0,1): coincidences o00=2, o11=2, o01=o10=1; n0=n1=3, n=6.
    # ordinal delta^2(0,1) = (n0 + n1 - (n0 + n1)/2)^2 = 3^2 = 9.
    # alpha = 1 - (n-1) * sum o*d / sum n_c n_k d = 1 - 5 * (2 * 9) / (2 * 3 * 3 * 9) = 1 - 90/162 = 4/9.
    assert krippendorff_alpha_ordinal([[0, 1, 0], [0, 1, 1]], 2) == pytest.approx(4 / 9)


def test_alpha_krippendorff_published_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 coders, 12 units, values 1..5,
    # missing data; the paper gives ordinal alpha = 0.815 (nominal .743, interval .849).
    nan = np.nan
    data = (
        np.array(
            [
                [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
                [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
                [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
                [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
            ]
        )
        - 1
    )
    assert krippendorff_alpha_ordinal(data, 5) == pytest.approx(0.8154, abs=1e-4)


def test_alpha_edge_cases() -> None:
    assert krippendorff_alpha_ordinal([[0, 1, 2], [0, 1, 2], [0, 1, 2]], 3) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha_ordinal([[1, 1], [1, 1]], 3))  # one value only
    assert math.isnan(krippendorff_alpha_ordinal([[0, np.nan], [np.nan, 1]], 3))  # nothing pairable
    with pytest.raises(ValueError, match="raters x units"):
        krippendorff_alpha_ordinal([0, 1, 2], 3)
