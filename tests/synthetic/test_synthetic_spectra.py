"""The class spectra behave like typical Sentinel-2 L2A signatures."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.bands import BAND_INDEX
from synthetic.spectra import COVER_CODES, greenness, reflectance, spectrum

R, G, B, NIR, SWIR1, SWIR2 = (BAND_INDEX[b] for b in ("B04", "B03", "B02", "B08", "B11", "B12"))
SUMMER, WINTER = 196, 30


def ndvi(s: np.ndarray) -> float:
    return float((s[NIR] - s[R]) / (s[NIR] + s[R]))


def test_water_is_dark_in_nir_and_swir():
    w = spectrum("water")
    assert w[NIR] < 300 and w[SWIR1] < 100
    assert w[NIR] < w[G] and ndvi(w) < 0


@pytest.mark.parametrize("cover", ["forest", "crops", "grass"])
def test_green_vegetation_is_much_brighter_in_nir_than_red(cover):
    s = spectrum(cover, SUMMER)
    assert s[NIR] > 3 * s[R]
    assert ndvi(s) > 0.6


def test_snow_is_bright_in_the_visible_and_dark_in_swir_unlike_cloud():
    snow, cloud = spectrum("snow"), spectrum("cloud")
    assert min(snow[B], snow[G], snow[R]) > 7000
    assert snow[SWIR1] < 1000 and snow[SWIR2] < 1000
    ndsi = (snow[G] - snow[SWIR1]) / (snow[G] + snow[SWIR1])
    assert ndsi > 0.8
    assert cloud[SWIR1] > 4000  # clouds stay bright in SWIR: what separates them from snow


def test_crops_are_green_in_summer_and_bare_soil_in_winter():
    assert greenness("crops", WINTER) == 0.0 and greenness("crops", SUMMER) > 0.9
    assert ndvi(spectrum("crops", SUMMER)) > 0.7
    assert ndvi(spectrum("crops", WINTER)) < 0.25
    assert ndvi(spectrum("grass", WINTER)) < ndvi(spectrum("grass", SUMMER))


def test_built_and_bare_are_not_vegetated():
    for cover in ("built", "bare"):
        assert ndvi(spectrum(cover)) < 0.2


def test_per_pixel_reflectance_follows_the_class_with_small_noise():
    cover = np.full((64, 64), COVER_CODES["forest"], np.uint8)
    cover[:, 32:] = COVER_CODES["water"]
    green = np.ones(cover.shape, np.float32)
    refl = reflectance(cover, green, np.ones(cover.shape, np.float32), np.random.default_rng(0))
    assert refl.shape == (12, 64, 64) and refl.dtype == np.float32
    forest_nir = refl[NIR, :, :32]
    assert abs(forest_nir.mean() - spectrum("forest", SUMMER)[NIR] * 0 - 2650) < 60
    assert 0.01 < forest_nir.std() / forest_nir.mean() < 0.06
    assert refl[NIR, :, 32:].mean() < 200


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match="unknown land-cover class"):
        spectrum("lava")
