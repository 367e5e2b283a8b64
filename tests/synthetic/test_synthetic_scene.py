"""Scenes: Earth Search-style COGs and STAC items derived from the rasterized world."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.windows import from_bounds

from sentinel.bands import BANDS, SCL_CLOUD
from synthetic.scene import land_cover_map, mgrs_tile, processing_baseline, utm_chip_centre, write_scene
from synthetic.world import make_world

SUMMER = dt.date(2024, 7, 15)


@pytest.fixture(scope="module")
def world():
    return make_world((10.9, 47.4), 2, 1, seed=2)


@pytest.fixture(scope="module")
def lc(world):
    return land_cover_map(world)


def _read(path: str | Path, bounds=None) -> np.ndarray:
    with rasterio.open(path) as src:
        window = from_bounds(*bounds, src.transform) if bounds else None
        return src.read(1, window=window)


def test_cogs_have_native_resolutions_crs_nodata_and_one_band(world, lc, tmp_path):
    item = write_scene(world, SUMMER, tmp_path, lc=lc)
    minx, miny, maxx, maxy = world.bounds
    for b in BANDS:
        href = item["assets"][b.common]["href"]
        with rasterio.open(href) as src:
            assert src.driver == "GTiff" and src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.count == 1 and src.dtypes[0] == "uint16" and src.nodata == 0
            assert src.crs.to_epsg() == world.epsg
            assert src.res == (b.resolution_m, b.resolution_m)
            assert tuple(src.bounds) == pytest.approx((minx, miny, maxx, maxy))
            data = src.read(1)
            assert data.min() >= 1  # 0 is reserved for nodata
    with rasterio.open(item["assets"]["scl"]["href"]) as src:
        assert src.res == (20.0, 20.0) and src.dtypes[0] == "uint8" and src.nodata == 0
        assert set(np.unique(src.read(1))) <= {3, 4, 5, 6, 8, 9, 11}


def test_item_is_a_valid_earth_search_style_stac_item(world, lc, tmp_path):
    d = write_scene(world, SUMMER, tmp_path, lc=lc)
    item = pystac.Item.from_dict(d)
    assert item.id == "S2B_32TPT_20240715_0_L2A" or item.id == "S2A_32TPT_20240715_0_L2A"
    assert item.collection_id == "sentinel-2-l2a"
    assert d["properties"]["proj:epsg"] == 32632  # as Earth Search writes it (projection v1.1.0) ...
    p = item.properties
    assert p["proj:code"] == "EPSG:32632"  # ... and as pystac migrates it
    assert p["s2:processing_baseline"] == "05.10"
    assert p["earthsearch:boa_offset_applied"] is True and p["s2:nodata_pixel_percentage"] == 0
    assert 0 <= p["eo:cloud_cover"] < 1
    assert set(item.assets) == {b.common for b in BANDS} | {"scl"}
    for asset in item.assets.values():
        assert Path(asset.href).is_absolute() and Path(asset.href).is_file()
        assert asset.media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
    W, S, E, N = item.bbox
    for loc in world.locations:
        lon, lat = loc.center_lonlat
        assert W < lon < E and S < lat < N


def test_raw_post_2022_scene_carries_the_boa_offset(world, lc, tmp_path):
    es = write_scene(world, SUMMER, tmp_path / "es", lc=lc, boa_offset_applied=True)
    raw = write_scene(world, SUMMER, tmp_path / "raw", lc=lc, boa_offset_applied=False, provider="planetary-computer")
    assert raw["properties"]["earthsearch:boa_offset_applied"] is False
    a = _read(es["assets"]["red"]["href"]).astype(np.int32)
    b = _read(raw["assets"]["B04"]["href"]).astype(np.int32)
    assert np.all(b - a == 1000)
    # Before 2022-01-25 (baseline 02.14) there is no offset to carry, raw or not.
    old_es = write_scene(world, dt.date(2021, 7, 15), tmp_path / "o1", lc=lc, boa_offset_applied=True)
    old_raw = write_scene(world, dt.date(2021, 7, 15), tmp_path / "o2", lc=lc, boa_offset_applied=False)
    assert old_raw["properties"]["s2:processing_baseline"] == "02.14"
    assert np.array_equal(_read(old_es["assets"]["red"]["href"]), _read(old_raw["assets"]["red"]["href"]))


def test_cloud_blob_makes_its_chip_cloudy_and_leaves_the_other_clear(world, lc, tmp_path):
    cloudy, clear = world.locations
    item = write_scene(world, SUMMER, tmp_path, lc=lc, clouds=[(*utm_chip_centre(cloudy), 1100.0)])
    scl_href = item["assets"]["scl"]["href"]
    scl_cloudy = _read(scl_href, cloudy.utm_bounds)
    scl_clear = _read(scl_href, clear.utm_bounds)
    cloud_frac = np.isin(scl_cloudy, list(SCL_CLOUD)).mean()
    assert cloud_frac > 0.4
    assert np.isin(scl_clear, list(SCL_CLOUD)).mean() < cloud_frac / 4
    assert item["properties"]["eo:cloud_cover"] > 5
    # Cloud is bright in blue over the blob's centre.
    blue = _read(item["assets"]["blue"]["href"], cloudy.utm_bounds)
    assert blue[120:140, 120:140].mean() > 6000


def test_snow_grows_in_winter_and_crops_turn_bare(world, lc, tmp_path):
    winter = write_scene(world, dt.date(2024, 1, 20), tmp_path, lc=lc)
    summer = write_scene(world, SUMMER, tmp_path, lc=lc)
    assert winter["properties"]["s2:snow_ice_percentage"] > summer["properties"]["s2:snow_ice_percentage"] > 0
    assert winter["properties"]["s2:vegetation_percentage"] < summer["properties"]["s2:vegetation_percentage"]


def test_baseline_tile_and_bad_input():
    assert processing_baseline(dt.date(2022, 1, 24)) == "02.14"
    assert processing_baseline(dt.date(2022, 1, 25)) == "05.10"
    assert mgrs_tile(11.4, 47.27, 32632) == "32TPT"  # Innsbruck
    assert mgrs_tile(13.4, 52.52, 32633) == "33UUU"  # Berlin
    w = make_world((10.9, 47.4), 1, 1, seed=0)
    with pytest.raises(ValueError, match="multiple of 60"):
        land_cover_map(w, (w.bounds[0] + 5, *w.bounds[1:]))
    with pytest.raises(ValueError, match="provider"):
        write_scene(w, SUMMER, Path("/nonexistent"), provider="usgs")
    with pytest.raises(ValueError, match="radius_m"):
        write_scene(w, SUMMER, Path("/nonexistent"), clouds=[(0.0, 0.0, -1.0)])
