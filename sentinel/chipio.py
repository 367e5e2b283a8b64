"""Chips as self-describing 12-band GeoTIFFs in memory: band names, CRS, transform and provenance tags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.io import MemoryFile

from sentinel.bands import BAND_NAMES

if TYPE_CHECKING:  # decoding chips (training, validation) must not need the STAC stack
    from sentinel.read import Chip

SCALE = 0.0001  # reflectance = DN * SCALE (after harmonization)


def chip_tags(chip: Chip) -> dict[str, str]:
    s = chip.scene
    return {
        "datetime": s.datetime,
        "stac_item_id": s.item_id,
        "stac_collection": s.collection,
        "stac_provider": s.provider,
        "processing_baseline": s.processing_baseline or "",
        "harmonize_offset": str(chip.offset),
        "boa_offset_applied_by_provider": str(s.boa_offset_applied).lower(),
        "cloud_fraction": f"{chip.cloud_fraction:.6f}",
        "nodata_fraction": f"{chip.nodata_fraction:.6f}",
        "band_names": ",".join(BAND_NAMES),
        "scale": str(SCALE),
        "nodata": "0",
    }


def encode_geotiff(chip: Chip) -> bytes:
    """The chip as a deflate-compressed 12-band uint16 GeoTIFF (nodata 0), band descriptions = band names."""
    data = np.asarray(chip.data)
    if data.ndim != 3 or data.shape[0] != len(BAND_NAMES):
        raise ValueError(f"chip data has shape {data.shape}: expected ({len(BAND_NAMES)}, H, W) in BAND_NAMES order")
    _, h, w = data.shape
    profile = {
        "driver": "GTiff", "width": w, "height": h, "count": len(BAND_NAMES), "dtype": "uint16",
        "crs": f"EPSG:{chip.epsg}", "transform": chip.transform, "nodata": 0,
        "compress": "deflate", "predictor": 2, "interleave": "band",
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data.astype(np.uint16, copy=False))
            for i, name in enumerate(BAND_NAMES, start=1):
                dst.set_band_description(i, name)
            dst.update_tags(**chip_tags(chip))
        return bytes(mem.read())


def decode_geotiff(b: bytes) -> tuple[np.ndarray, dict[str, Any]]:
    """(data (bands, H, W), meta) from `encode_geotiff` bytes; meta holds epsg, transform, band_names, tags."""
    with MemoryFile(b) as mem, mem.open() as src:
        data = src.read()
        meta = {
            "epsg": src.crs.to_epsg() if src.crs else None,
            "crs": src.crs.to_string() if src.crs else None,
            "transform": src.transform,
            "band_names": [d or "" for d in src.descriptions],
            "nodata": src.nodata,
            "tags": src.tags(),
        }
    return data, meta
