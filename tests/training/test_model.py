"""Widening the patch embedding: RGB kernels at B04/B03/B02, zeros elsewhere, and the RGB model's output on
RGB-only input (random and a real Sentinel-2 chip)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import rasterio
import torch

from pipeline.errors import InputError
from tests.training.conftest import SHARED_DATA
from training.data import ALL_BANDS, SEED_BANDS, BandStats, chip_tensor
from training.model import (
    check_widened_equivalence,
    create_rgb_model,
    find_patch_embedding,
    patch_embedding_parameters,
    widen_patch_embedding,
)


def test_widened_kernels_and_equivalence_on_random_input() -> None:
    torch.manual_seed(0)
    rgb, _ = create_rgb_model("tiny")
    wide = widen_patch_embedding(copy.deepcopy(rgb), SEED_BANDS)
    conv = find_patch_embedding(rgb.visual)[2]
    new = wide.visual.conv1
    assert new.in_channels == 10 and new.out_channels == conv.out_channels
    for c, band in enumerate(("B04", "B03", "B02")):
        assert torch.equal(new.weight[:, SEED_BANDS.index(band)], conv.weight[:, c])
    others = [i for i, b in enumerate(SEED_BANDS) if b not in ("B04", "B03", "B02")]
    assert torch.count_nonzero(new.weight[:, others]) == 0
    assert patch_embedding_parameters(wide)[0] is new.weight
    assert check_widened_equivalence(rgb, wide, SEED_BANDS) < 1e-5
    # the check notices a widened model whose RGB kernels differ from the RGB model's
    with torch.no_grad():
        new.weight[:, SEED_BANDS.index("B04")] += 0.5
    with pytest.raises(AssertionError, match="differs"):
        check_widened_equivalence(rgb, wide, SEED_BANDS, torch.ones(1, 3, 64, 64))


def test_equivalence_on_a_real_rgb_chip(band_stats: BandStats) -> None:
    chips = sorted((SHARED_DATA / "s2" / "msclip").glob("*.tif"))
    if not chips:
        pytest.skip(
            f"real chips {SHARED_DATA / 's2' / 'msclip'} are absent (../shared/data beside the checkout)"
        )
    with rasterio.open(chips[0]) as src:
        arr = src.read()
    x = chip_tensor(arr, ALL_BANDS, ("B04", "B03", "B02"), band_stats, 64)
    assert x.abs().max() > 0.1  # real signal, not an empty chip
    torch.manual_seed(1)
    rgb, _ = create_rgb_model("tiny")
    wide = widen_patch_embedding(copy.deepcopy(rgb), ALL_BANDS)
    assert check_widened_equivalence(rgb, wide, ALL_BANDS, x[None]) < 1e-5


def test_widening_needs_the_rgb_bands() -> None:
    rgb, _ = create_rgb_model("tiny")
    with pytest.raises(InputError, match="B04, B03 and B02"):
        widen_patch_embedding(rgb, ["B08", "B11", "B12"])
    with pytest.raises(InputError, match="not an OpenCLIP model"):
        create_rgb_model("ViT-Nope")
    with pytest.raises(InputError, match="no pretrained"):
        create_rgb_model("tiny", "laion2b_s34b_b88k")
    assert np.isfinite(
        check_widened_equivalence(rgb, widen_patch_embedding(copy.deepcopy(rgb), ALL_BANDS), ALL_BANDS)
    )
