"""Chip GeoTIFF encoding and RGB previews, on the real MS-CLIP chips (band order, value ranges) and test chips."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from s2_helpers import LOC_C, World, shared

from sentinel.bands import BAND_INDEX, BAND_NAMES
from sentinel.chipio import decode_geotiff, encode_geotiff
from sentinel.preview import PreviewConfig, png_bytes, render_rgb
from sentinel.read import read_chip
from sentinel.stac import scene_from_item

WATER, SNOW, CROPS = "282D_485L_3_3", "609U_541L_3_0", "637U_59R_1_3"


def msclip(name: str) -> np.ndarray:
    with rasterio.open(shared("s2/msclip") / f"{name}.tif") as src:
        assert src.count == 12
        return src.read().astype(np.int32)


def test_real_chips_band_order_and_value_ranges() -> None:
    chips = {p.stem: msclip(p.stem) for p in sorted(shared("s2/msclip").glob("*.tif"))}
    assert len(chips) == 5
    for name, d in chips.items():
        assert d.shape == (12, 224, 224), name
        assert 0 <= d.min() and d.max() < 20000, name  # L2A reflectance x 10000
    i = BAND_INDEX
    crops = chips[CROPS]
    # vegetation: NIR (B08, B8A) far above red (B04), red edge climbs B05 < B07
    assert np.median(crops[i["B08"]]) > 2 * np.median(crops[i["B04"]])
    assert np.median(crops[i["B07"]]) > np.median(crops[i["B05"]])
    snow = chips[SNOW]
    # snow: bright in the visible, dark in SWIR (B11) -> NDSI > 0.4
    g, s = np.median(snow[i["B03"]]), np.median(snow[i["B11"]])
    assert g > 3000 and (g - s) / (g + s) > 0.4
    water = chips[WATER]
    wet = water[i["B08"]] < water[i["B03"]]  # water absorbs NIR
    assert 0.3 < wet.mean() < 0.8  # lulc says ~52 % water


def test_real_chip_previews_fixed_stretch_keep_absolute_brightness() -> None:
    cfg = PreviewConfig()
    snow = render_rgb(msclip(SNOW).astype(np.uint16), cfg)
    water = render_rgb(msclip(WATER).astype(np.uint16), cfg)
    assert snow.shape == (224, 224, 3) and snow.dtype == np.uint8
    assert snow.mean() > 200 > 120 > water.mean()
    # percentile stretch spreads the snow's narrow range over the whole scale
    pct = render_rgb(msclip(SNOW).astype(np.uint16), PreviewConfig(stretch="percentile"))
    assert pct.std() > snow.std() and pct.max() == 255


def test_preview_png_size_nodata_and_params() -> None:
    data = np.full((12, 64, 64), 1500, np.uint16)
    data[:, :8, :] = 0  # nodata rows
    data[BAND_INDEX["B04"], 40:, :] = 6000  # saturates red
    rgb = render_rgb(data, PreviewConfig())
    assert (rgb[:8] == 0).all()
    assert tuple(rgb[20, 20]) == (int(round(255 * 0.5 ** (1 / 1.8))),) * 3
    assert rgb[50, 0, 0] == 255 and rgb[50, 0, 1] < 255
    png = png_bytes(rgb, 336)
    img = Image.open(io.BytesIO(png))
    assert (img.format, img.size, img.mode) == ("PNG", (336, 336), "RGB")
    params = json.loads(PreviewConfig().to_json())
    assert params["bands"] == ["B04", "B03", "B02"] and params["stretch"] == "fixed" and params["vmax"] == 3000
    # 3-band input is taken as RGB already
    assert (render_rgb(data[[3, 2, 1]]) == rgb).all()


def test_preview_config_validates() -> None:
    with pytest.raises(ValueError, match="stretch 'log'"):
        PreviewConfig(stretch="log")
    with pytest.raises(ValueError, match="vmax must be greater"):
        PreviewConfig(vmin=100, vmax=100)
    with pytest.raises(ValueError, match="bands"):
        PreviewConfig(bands=("B04", "B03", "B10"))
    with pytest.raises(ValueError, match=r"shape \(4, 8, 8\)"):
        render_rgb(np.zeros((4, 8, 8), np.uint16))


def test_geotiff_round_trip_keeps_pixels_names_georef_and_provenance(world: World, tmp_path: Path) -> None:
    chip = read_chip(LOC_C, scene_from_item(world.items["S6_pc_raw"]))
    blob = encode_geotiff(chip)
    assert len(blob) < chip.data.nbytes  # deflate + predictor on the smooth test surface
    data, meta = decode_geotiff(blob)
    np.testing.assert_array_equal(data, chip.data)
    assert data.dtype == np.uint16
    assert meta["band_names"] == list(BAND_NAMES)
    assert meta["epsg"] == 32632 and meta["transform"] == chip.transform and meta["nodata"] == 0
    tags = meta["tags"]
    assert tags["stac_item_id"] == "S6_pc_raw" and tags["datetime"] == "2024-06-11T10:00:00Z"
    assert tags["processing_baseline"] == "05.10" and tags["harmonize_offset"] == "1000"
    assert tags["stac_provider"] == "planetary-computer"
    # the bytes are a normal GeoTIFF any GDAL tool opens
    (tmp_path / "c.tif").write_bytes(blob)
    with rasterio.open(tmp_path / "c.tif") as src:
        assert src.count == 12 and src.descriptions[BAND_INDEX["B8A"]] == "B8A"
        assert src.profile["compress"] == "deflate"
