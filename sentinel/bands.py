"""Declarative facts about Sentinel-2 L2A bands: names, order, resolution, provider asset keys.

The chip band order is SSL4EO-S12's L2A order (12 bands, no B10). Values are L2A reflectance x 10000.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Band:
    name: str  # ESA name, e.g. "B8A"
    common: str  # Earth Search asset key, e.g. "nir08"
    resolution_m: int  # native ground sampling distance
    center_nm: int


BANDS: tuple[Band, ...] = (
    Band("B01", "coastal", 60, 443),
    Band("B02", "blue", 10, 490),
    Band("B03", "green", 10, 560),
    Band("B04", "red", 10, 665),
    Band("B05", "rededge1", 20, 705),
    Band("B06", "rededge2", 20, 740),
    Band("B07", "rededge3", 20, 783),
    Band("B08", "nir", 10, 842),
    Band("B8A", "nir08", 20, 865),
    Band("B09", "nir09", 60, 945),
    Band("B11", "swir16", 20, 1610),
    Band("B12", "swir22", 20, 2190),
)
BAND_NAMES: tuple[str, ...] = tuple(b.name for b in BANDS)
BAND_INDEX: dict[str, int] = {name: i for i, name in enumerate(BAND_NAMES)}
RGB_BANDS: tuple[str, str, str] = ("B04", "B03", "B02")
FALSE_COLOR_BANDS: tuple[str, str, str] = ("B08", "B04", "B03")

# Scene classification layer (SCL) classes of the L2A product.
SCL_CLASSES: dict[int, str] = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "topographic_shadow",
    3: "cloud_shadow",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow_ice",
}
SCL_CLOUD: frozenset[int] = frozenset({3, 8, 9, 10})
SCL_NODATA: frozenset[int] = frozenset({0, 1})
SCL_ASSET = {"earth-search": "scl", "planetary-computer": "SCL"}

# Processing baseline 04.00 (acquisitions from 2022-01-25) adds this offset to L2A digital numbers.
BOA_ADD_OFFSET = 1000
HARMONIZE_FROM_BASELINE = (4, 0)


def band(name: str) -> Band:
    """Look a band up by ESA name (B04) or common name (red); unknown names get a clear error."""
    for b in BANDS:
        if name.upper() == b.name or name.lower() == b.common:
            return b
    raise ValueError(
        f"unknown band {name!r}: use one of {', '.join(BAND_NAMES)} (or their common names: "
        f"{', '.join(b.common for b in BANDS)}); B10 is not in L2A products"
    )


def asset_key(name: str, provider: str) -> str:
    """The asset key that holds band `name` in a provider's sentinel-2-l2a items."""
    b = band(name)
    if provider == "earth-search":
        return b.common
    if provider == "planetary-computer":
        return b.name
    raise ValueError(f"unknown STAC provider {provider!r}: use 'earth-search' or 'planetary-computer'")
