"""Shared fixtures for the pipeline tests: a Sample factory and the path of the real sample data."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from shapely.geometry import box

from pipeline.record import Sample

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def make_sample(index: int = 0, **overrides: Any) -> Sample:
    """A realistic ok sample: a 2.64 km UTM chip near Aalborg, Denmark (EPSG:32632), season 2024-Q2."""
    x0, y0 = 550_000.0 + 2640 * index, 6_340_000.0
    lon0, lat0 = 9.8261 + 0.045 * index, 57.2167
    fields: dict[str, Any] = {
        "id": f"loc{index:04d}_2024-Q2",
        "location_id": f"loc{index:04d}",
        "season": "2024-Q2",
        "season_start": "2024-04-01",
        "season_end": "2024-06-30",
        "epsg": 32632,
        "utm_bounds": (x0, y0, x0 + 2640.0, y0 + 2640.0),
        "lon": lon0 + 0.022,
        "lat": lat0 + 0.012,
        "footprint_wkb": box(lon0, lat0, lon0 + 0.044, lat0 + 0.024).wkb,
        "bbox": (lon0, lat0, lon0 + 0.044, lat0 + 0.024),
    }
    fields.update(overrides)
    return Sample(**fields)


@pytest.fixture
def sample_factory() -> Callable[..., Sample]:
    return make_sample


def png_bytes(color: tuple[int, int, int] = (40, 120, 60), size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def geotiff_bytes(size: int = 8, seed: int = 0) -> bytes:
    """A real 12-band uint16 GeoTIFF in EPSG:32632, as the sentinel stage stores `chip_tiff`."""
    data = np.random.default_rng(seed).integers(0, 10000, size=(12, size, size), dtype=np.uint16)
    with rasterio.MemoryFile() as mem:
        with mem.open(
            driver="GTiff",
            width=size,
            height=size,
            count=12,
            dtype="uint16",
            crs="EPSG:32632",
            transform=Affine(10.0, 0.0, 550_000.0, 0.0, -10.0, 6_342_640.0),
        ) as ds:
            ds.write(data)
        return mem.read()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (../shared/data beside the checkout)")
    return SHARED_DATA.resolve()


@pytest.fixture
def png_factory() -> Callable[..., bytes]:
    return png_bytes


@pytest.fixture
def tiff_factory() -> Callable[..., bytes]:
    return geotiff_bytes
