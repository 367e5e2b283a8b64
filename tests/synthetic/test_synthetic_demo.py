"""The demo region: written once, reused, and its truth agrees with its own scene classification."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.windows import from_bounds

from sentinel.bands import SCL_CLOUD
from synthetic.demo import MARKER, build_demo


def _items(region) -> dict[str, dict]:
    items = [json.loads(line) for line in region.items_ndjson.read_text().splitlines()]
    return {it["id"]: it for it in items}


def _scl(item: dict, loc) -> np.ndarray:
    with rasterio.open(item["assets"]["scl"]["href"]) as src:
        return src.read(1, window=from_bounds(*loc.utm_bounds, src.transform))


def test_demo_describes_its_region(demo_region):
    r = demo_region
    assert len(r.locations) == 6 and r.epsg == 32632
    assert r.start == dt.date(2024, 1, 1) and r.end == dt.date(2024, 12, 31)
    assert [d.month for d in r.dates] == [2, 5, 8, 11]
    assert r.overture_release == "synthetic-0"
    assert r.overture_root.is_dir() and any(r.overture_root.glob("theme=base/type=water/*.parquet"))
    W, S, E, N = r.bbox
    assert 10.8 < W < E < 11.1 and 47.3 < S < N < 47.5
    assert set(r.truth) == {loc.location_id for loc in r.locations}
    for fr in r.truth.values():
        assert sum(fr.values()) == pytest.approx(1.0)
    covered = {k for fr in r.truth.values() for k, v in fr.items() if v > 0.01}
    assert {"water", "forest", "crops", "grass", "built", "snow"} <= covered


def test_items_and_collection_are_valid_stac(demo_region):
    items = _items(demo_region)
    assert list(items) == list(demo_region.item_ids) and len(items) == 4
    for d in items.values():
        item = pystac.Item.from_dict(d)
        assert demo_region.start <= item.datetime.date() <= demo_region.end
        assert all(Path(a.href).is_file() for a in item.assets.values())
    coll = pystac.Collection.from_dict(json.loads(demo_region.collection_json.read_text()))
    assert coll.id == "sentinel-2-l2a"


def test_truth_matches_the_scl_for_water_and_snow(demo_region):
    summer = _items(demo_region)[demo_region.item_ids[2]]
    for loc in demo_region.locations:
        scl = _scl(summer, loc)
        truth = demo_region.truth[loc.location_id]
        assert (scl == 6).mean() == pytest.approx(truth["water"], abs=0.03)
        assert (scl == 11).mean() == pytest.approx(truth["snow"], abs=0.03)


def test_one_chip_is_cloudy_in_one_season_only(demo_region):
    items = _items(demo_region)
    cloudy = {}
    for item_id, date in zip(demo_region.item_ids, demo_region.dates, strict=True):
        for loc in demo_region.locations:
            frac = np.isin(_scl(items[item_id], loc), list(SCL_CLOUD)).mean()
            if frac > 0.2:
                cloudy[(loc.location_id, date)] = frac
    assert list(cloudy) == [(demo_region.cloudy_location_id, demo_region.cloudy_date)]
    # The scene as a whole stays usable (a search's cloud-cover filter keeps it).
    assert items[demo_region.item_ids[1]]["properties"]["eo:cloud_cover"] < 20


def test_a_second_build_reuses_the_files(demo_region):
    marker = demo_region.root / MARKER
    before = marker.stat().st_mtime_ns
    scl = Path(_items(demo_region)[demo_region.item_ids[0]]["assets"]["scl"]["href"])
    scl_before = scl.stat().st_mtime_ns
    again = build_demo(demo_region.root, seed=0)
    assert again == demo_region
    assert marker.stat().st_mtime_ns == before and scl.stat().st_mtime_ns == scl_before


def test_changed_arguments_or_missing_files_rebuild(tmp_path):
    a = build_demo(tmp_path, seed=1, n_chips_x=1, n_chips_y=1)
    b = build_demo(tmp_path, seed=1, n_chips_x=2, n_chips_y=1)
    assert len(a.locations) == 1 and len(b.locations) == 2
    first = Path(_items(b)[b.item_ids[0]]["assets"]["red"]["href"])
    first.unlink()
    c = build_demo(tmp_path, seed=1, n_chips_x=2, n_chips_y=1)
    assert first.is_file() and c == b


def test_bad_demo_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="demo size"):
        build_demo(tmp_path, n_chips_x=0)
    with pytest.raises(ValueError, match="year"):
        build_demo(tmp_path, year=2010)
