"""Plausible Sentinel-2 L2A surface reflectance (x 10000) per land-cover class, with seasons and noise.

Band order is `sentinel.bands.BAND_NAMES` (B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12). The values are
rounded typical signatures, good enough for previews, indices and SCL-like masks to behave as in real data:

- vegetation: low blue/red, green bump, red-edge rise, NIR plateau 0.25-0.40, SWIR 0.10-0.20 (leaf water
  absorption); conifer forest darker than crops/grass in NIR (USGS Spectral Library v7, Kokaly et al. 2017;
  ESA Sentinel-2 User Handbook, 2015; EuroSAT class means, Helber et al. 2019);
- clear inland water: 0.02-0.06 in the visible, falling to ~0 in NIR and SWIR (Pahlevan et al. 2017);
- bare soil / harvested fields: rising slowly from 0.08 (blue) to 0.30 (SWIR1) (USGS library, soils);
- built-up: flat and moderately bright, 0.10-0.20 (Sentinel-2 urban endmembers);
- snow: very bright in the visible (0.8-0.9), falling through NIR, very dark in SWIR (< 0.1): the basis of
  NDSI and of the L2A snow class (Sen2Cor ATBD; Dozier 1989);
- cloud: bright everywhere including SWIR (unlike snow), slightly whiter (Sen2Cor ATBD cloud tests).

Seasons: crops go from bare soil (winter) to green (early summer) and back after harvest; grass and
deciduous parts of forest lose NIR and gain red in winter. `greenness(cover, doy)` drives the blend.
"""

from __future__ import annotations

import math

import numpy as np

from sentinel.bands import BAND_NAMES

N_BANDS = len(BAND_NAMES)

# Raster codes of the land-cover map (0 is reserved for nodata).
COVER_CODES: dict[str, int] = {"water": 1, "forest": 2, "crops": 3, "grass": 4, "built": 5, "bare": 6, "snow": 7}
COVER_NAMES: dict[int, str] = {v: k for k, v in COVER_CODES.items()}
N_CODES = max(COVER_CODES.values()) + 1

#                     B01   B02   B03   B04   B05   B06   B07   B08   B8A   B09   B11   B12
_GREEN: dict[str, tuple[int, ...]] = {
    "water": (550, 480, 420, 280, 230, 180, 150, 120, 100, 60, 40, 30),
    "forest": (200, 260, 480, 260, 750, 1900, 2400, 2650, 2750, 2600, 1250, 560),
    "crops": (280, 350, 750, 380, 1150, 2900, 3600, 3900, 4000, 3700, 2050, 980),
    "grass": (300, 400, 820, 520, 1250, 2600, 3100, 3300, 3400, 3200, 2250, 1200),
    "built": (1000, 1080, 1200, 1300, 1400, 1480, 1560, 1650, 1700, 1650, 2000, 1800),
    "bare": (1300, 1500, 1800, 2100, 2300, 2400, 2500, 2600, 2650, 2600, 3000, 2550),
    "snow": (8800, 9000, 8900, 8700, 8400, 8200, 7900, 7700, 7500, 6000, 600, 420),
}
# The dormant state each class blends towards when its greenness falls (winter, after harvest).
_DORMANT: dict[str, tuple[int, ...]] = {
    **_GREEN,
    "forest": (230, 300, 430, 380, 700, 1300, 1550, 1700, 1750, 1650, 1300, 700),
    "crops": (900, 1000, 1300, 1600, 1800, 1950, 2050, 2150, 2250, 2250, 3000, 2500),  # bare soil
    "grass": (500, 620, 900, 1000, 1250, 1550, 1700, 1800, 1850, 1800, 2600, 1800),  # dry/dormant grass
}
CLOUD: tuple[int, ...] = (7200, 7400, 7500, 7600, 7600, 7700, 7700, 7800, 7800, 6500, 5600, 4100)
SHADOW_FACTOR = 0.35  # cloud shadow keeps ~1/3 of the surface signal (diffuse light only)

# Greenness below which a crop pixel counts as bare soil ("not vegetated") in the SCL.
CROP_BARE_BELOW = 0.3


def greenness(cover: str, doy: int) -> float:
    """0 (dormant / bare) .. 1 (full green) for a class on day-of-year `doy` (northern hemisphere)."""
    if cover == "crops":
        # Sown in April, green through early July, harvested by early October.
        return max(0.0, math.sin(math.pi * (doy - 95) / 180.0)) if 95 <= doy <= 275 else 0.0
    if cover == "grass":
        return 0.25 + 0.75 * max(0.0, math.sin(math.pi * (doy - 70) / 250.0)) if 70 <= doy <= 320 else 0.25
    if cover == "forest":
        # Mostly evergreen: only the deciduous share browns.
        return 0.6 + 0.4 * max(0.0, math.sin(math.pi * (doy - 100) / 200.0)) if 100 <= doy <= 300 else 0.6
    return 1.0


def class_tables() -> tuple[np.ndarray, np.ndarray]:
    """(green, dormant) reflectance tables, shape (N_CODES, 12) float32, indexed by cover code."""
    green = np.zeros((N_CODES, N_BANDS), np.float32)
    dormant = np.zeros((N_CODES, N_BANDS), np.float32)
    for name, code in COVER_CODES.items():
        green[code] = _GREEN[name]
        dormant[code] = _DORMANT[name]
    return green, dormant


def greenness_table(doy: int) -> np.ndarray:
    """Greenness per cover code on `doy`, shape (N_CODES,) float32."""
    g = np.ones(N_CODES, np.float32)
    for name, code in COVER_CODES.items():
        g[code] = greenness(name, doy)
    return g


def spectrum(cover: str, doy: int = 196) -> np.ndarray:
    """The noise-free 12-band reflectance (x 10000) of one class on `doy` (default mid-July)."""
    if cover == "cloud":
        return np.asarray(CLOUD, np.float32)
    if cover not in COVER_CODES:
        raise ValueError(f"unknown land-cover class {cover!r}: use one of {', '.join(COVER_CODES)} or 'cloud'")
    g = greenness(cover, doy)
    return g * np.asarray(_GREEN[cover], np.float32) + (1 - g) * np.asarray(_DORMANT[cover], np.float32)


def reflectance(cover: np.ndarray, green_px: np.ndarray, brightness: np.ndarray, rng: np.random.Generator,
                noise: float = 0.03) -> np.ndarray:
    """Per-pixel reflectance (12, H, W) float32 from a cover-code map, a per-pixel greenness and brightness.

    `noise` is the relative std of the multiplicative speckle (shared across bands, plus a third of it per band).
    """
    green, dormant = class_tables()
    shared = 1.0 + noise * rng.standard_normal(cover.shape, dtype=np.float32)
    shared *= brightness
    out = np.empty((N_BANDS, *cover.shape), np.float32)
    for b in range(N_BANDS):
        gb, db = green[:, b][cover], dormant[:, b][cover]
        band = db + green_px * (gb - db)
        band *= shared
        band *= 1.0 + (noise / 3) * rng.standard_normal(cover.shape, dtype=np.float32)
        out[b] = band
    return out
