"""Windowed chip reads from real COGs written at native 10/20/60 m resolution."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from s2_helpers import LOC_A, LOC_C, World
from s2_scenes import expected_chip, scl_box, truncate, write_scene

from sentinel.bands import BAND_INDEX
from sentinel.footprint import ChipLocation
from sentinel.read import ChipReadError, ReadConfig, read_best, read_chip
from sentinel.stac import scene_from_item


def test_chip_is_exact_nearest_replication_of_native_pixels(world: World) -> None:
    scene = scene_from_item(world.items["S1_clear"])
    chip = read_chip(LOC_A, scene, ReadConfig())
    assert chip.data.shape == (12, 264, 264) and chip.data.dtype == np.uint16
    assert chip.scl.shape == (264, 264) and chip.scl.dtype == np.uint8
    np.testing.assert_array_equal(chip.data, expected_chip(LOC_A))
    # a 20 m band is made of 2x2 blocks, a 60 m band of 6x6 blocks
    b11, b01 = chip.data[BAND_INDEX["B11"]], chip.data[BAND_INDEX["B01"]]
    assert (b11[::2, ::2] == b11[1::2, 1::2]).all() and (b01[::6, ::6] == b01[5::6, 5::6]).all()
    assert len(np.unique(b11[:2, :2])) == 1 and len(np.unique(b01[:6, :6])) == 1
    assert chip.epsg == 32632 and chip.transform.c == LOC_A.x0 and chip.transform.f == LOC_A.y0
    assert (chip.offset, chip.cloud_fraction, chip.nodata_fraction) == (0, 0.0, 0.0)
    assert (chip.scl == 4).all()


def test_window_off_the_scene_edge_is_nodata(world: World) -> None:
    # a chip hanging 1.2 km over the east edge (x 506040) of the scene
    loc = ChipLocation("edge", 32632, 504600.0, 5298000.0)
    chip = read_chip(loc, scene_from_item(world.items["S1_clear"]))
    inside = np.zeros((264, 264), bool)
    inside[:, :144] = True  # (506040 - 504600) / 10 = 144 columns on the scene
    assert (chip.data[:, ~inside] == 0).all() and (chip.scl[~inside] == 0).all()
    np.testing.assert_array_equal(chip.data[:, inside], expected_chip(loc)[:, inside])
    assert chip.nodata_fraction == pytest.approx(120 / 264)
    with pytest.raises(ChipReadError, match="nodata 45.5%") as info:
        read_best(loc, [scene_from_item(world.items["S1_clear"])], ReadConfig())
    assert info.value.reason == "cloudy"


def test_read_best_skips_the_cloudy_candidate(world: World) -> None:
    s1, s2 = (scene_from_item(world.items[k]) for k in ("S1_clear", "S2_cloud_on_A"))
    chip = read_best(LOC_A, [s2, s1], ReadConfig())
    assert chip.scene.item_id == "S1_clear"
    assert read_best(LOC_C, [s2, s1]).scene.item_id == "S2_cloud_on_A"
    with pytest.raises(ChipReadError, match=r"S2_cloud_on_A: cloud/shadow 100.0% .* > 10%") as info:
        read_best(LOC_A, [s2])
    assert info.value.reason == "cloudy"
    # the threshold is configurable: everything goes at 100 %
    assert read_best(LOC_A, [s2], ReadConfig(max_bad_fraction=1.0)).cloud_fraction == 1.0
    # only max_candidates are tried
    with pytest.raises(ChipReadError, match="none of 1 scene"):
        read_best(LOC_A, [s2, s1], ReadConfig(max_candidates=1))


def test_partly_cloudy_chip_fraction(tmp_path: Path) -> None:
    x0, y0 = LOC_A.x0, LOC_A.y0
    # cloud shadow (3) over the top 20 rows of chip A = 20/264 = 7.6 %
    item = write_scene(tmp_path, "part", boa_offset_applied=True, scl=scl_box(x0, y0 - 200, x0 + 2640, y0, cls=3))
    chip = read_best(LOC_A, [scene_from_item(item)])
    assert chip.cloud_fraction == pytest.approx(20 / 264)
    with pytest.raises(ChipReadError, match="cloud/shadow 7.6%"):
        read_best(LOC_A, [scene_from_item(item)], ReadConfig(max_bad_fraction=0.05))


def test_no_candidates_is_no_scene() -> None:
    with pytest.raises(ChipReadError, match="chip A: no candidate scene") as info:
        read_best(LOC_A, [])
    assert info.value.reason == "no_scene"


def test_truncated_cog_is_a_read_error_naming_the_href(tmp_path: Path) -> None:
    item = write_scene(tmp_path, "trunc", boa_offset_applied=True)
    truncate(tmp_path / "trunc" / "B11.tif", keep=0.4)
    with pytest.raises(ChipReadError, match=r"band B11 .*trunc/B11.tif") as info:
        read_best(LOC_A, [scene_from_item(item)])
    assert info.value.reason == "read_error"
    # a good second candidate is used instead
    good = write_scene(tmp_path, "good", boa_offset_applied=True)
    assert read_best(LOC_A, [scene_from_item(item), scene_from_item(good)]).scene.item_id == "good"


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    item = write_scene(tmp_path, "gone", boa_offset_applied=True)
    (tmp_path / "gone" / "SCL.tif").unlink()
    with pytest.raises(ChipReadError, match="cannot read .*gone/SCL.tif") as info:
        read_best(LOC_A, [scene_from_item(item)])
    assert info.value.reason == "read_error"


def test_http_errors_are_retried_then_read_error(http_server, tmp_path: Path) -> None:
    """A COG behind a server that always answers 503: GDAL and our loop retry, then a read_error with the URL."""
    from s2_helpers import reply

    url, hits = http_server(lambda h: reply(h, 503, b"busy", "text/plain"))
    item = write_scene(tmp_path, "remote", boa_offset_applied=True)
    scene = scene_from_item(item)
    scene = dataclasses.replace(scene, scl_href=f"{url}/remote/SCL.tif")
    cfg = ReadConfig(retries=1, backoff_s=0.01)
    with pytest.raises(ChipReadError, match=f"{url}/remote/SCL.tif after 2 attempts.*503") as info:
        read_best(LOC_A, [scene], cfg)
    assert info.value.reason == "read_error" and len(hits) >= 2


def test_scene_in_another_utm_zone_is_warped_onto_the_chip_grid(tmp_path: Path) -> None:
    # a chip in zone 32 just east of 12 E read from a zone-33 scene covering it
    chip_loc = ChipLocation.around(12.02, 47.5, epsg=32632, location_id="z32")
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 32633, always_xy=True).transform(12.02, 47.5)
    x0, y0 = (x // 60) * 60 - 3000, (y // 60) * 60 + 3000
    item = write_scene(tmp_path, "z33", epsg=32633, x0=x0, y0=y0, boa_offset_applied=True)
    chip = read_chip(chip_loc, scene_from_item(item))
    assert chip.epsg == 32632 and chip.nodata_fraction == 0.0
    # values come from the scene's surface (a few hundred DN per band), band order kept
    means = chip.data.reshape(12, -1).mean(axis=1)
    assert (np.diff(means) > 50).all() and 200 <= chip.data.min() and chip.data.max() < 1400


def test_band_threads_give_the_same_chip(world: World) -> None:
    scene = scene_from_item(world.items["S1_clear"])
    one = read_chip(LOC_C, scene, ReadConfig(band_threads=1))
    four = read_chip(LOC_C, scene, ReadConfig(band_threads=4))
    np.testing.assert_array_equal(one.data, four.data)


def test_read_config_validates() -> None:
    with pytest.raises(ValueError, match="max_bad_fraction 10"):
        ReadConfig(max_bad_fraction=10)
    with pytest.raises(ValueError, match="resampling 'smooth'"):
        ReadConfig(resampling="smooth")
    with pytest.raises(ValueError, match="max_candidates 0"):
        ReadConfig(max_candidates=0)
    with pytest.raises(ValueError, match="reason 'oops'"):
        ChipReadError("oops", "x")


def test_copied_scene_folder_reads_the_same(tmp_path: Path, world: World) -> None:
    """Hrefs are plain paths: moving a scene and rewriting hrefs (what tests do with real items) works."""
    shutil.copytree(world.root / "S1_clear", tmp_path / "S1")
    item = {**world.items["S1_clear"]}
    item["assets"] = {k: {**a, "href": a["href"].replace(str(world.root / "S1_clear"), str(tmp_path / "S1"))}
                      for k, a in item["assets"].items()}
    chip = read_chip(LOC_C, scene_from_item(item))
    np.testing.assert_array_equal(chip.data, expected_chip(LOC_C))
