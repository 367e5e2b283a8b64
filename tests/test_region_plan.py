"""Region parsing, the work plan and its resume check."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.plan import load_plan, make_plan, save_or_check_plan
from pipeline.region import load_geojson, parse_bbox
from sentinel.footprint import ChipLocation
from sentinel.seasons import Season


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("10,10,5,5", "west (10.0) must be less than east (5.0)"),
        ("10,10,11", "four numbers"),
        ("a,b,c,d", "not four numbers"),
        ("10,50,11,40", "south (50.0) must be less than north (40.0)"),
        ("200,0,201,1", "longitudes"),
    ],
)
def test_bad_bbox_names_the_problem(text: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        parse_bbox(text)


def test_geojson_region(tmp_path: Path) -> None:
    path = tmp_path / "r.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                    "geometry": {"type": "Polygon", "coordinates": [[[10, 47], [10.1, 47], [10.1, 47.1],
                                                                      [10, 47]]]}}]}))
    region = load_geojson(path)
    assert region.bbox == pytest.approx((10, 47, 10.1, 47.1))
    with pytest.raises(InputError, match="file not found"):
        load_geojson(tmp_path / "missing.geojson")
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_geojson(tmp_path / "bad.geojson")


def _locs(n: int) -> list[ChipLocation]:
    return [ChipLocation.around(10.0 + 0.04 * i, 47.0) for i in range(n)]


def test_plan_is_location_major_and_round_trips(tmp_path: Path) -> None:
    seasons = [Season("2024-Q1", dt.date(2024, 1, 1), dt.date(2024, 3, 31)),
               Season("2024-Q2", dt.date(2024, 4, 1), dt.date(2024, 6, 30))]
    plan = make_plan(_locs(5), seasons, shard_size=4)
    assert plan.n_samples == 10 and len(plan.shards) == 3
    assert plan.shards[0] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    ids = [s.id for i in range(len(plan.shards)) for s in plan.samples(i)]
    assert len(set(ids)) == 10
    save_or_check_plan(tmp_path, plan)
    assert load_plan(tmp_path).fingerprint() == plan.fingerprint()
    other = make_plan(_locs(5), seasons, shard_size=3)
    with pytest.raises(InputError, match="--shard-size"):
        save_or_check_plan(tmp_path, other)


def test_sample_footprint_matches_location() -> None:
    from shapely import wkb

    loc = ChipLocation.around(10.9, 47.4)
    plan = make_plan([loc], [Season("2024-Q3", dt.date(2024, 7, 1), dt.date(2024, 9, 30))], 8)
    s = plan.samples(0)[0]
    poly = wkb.loads(s.footprint_wkb)
    assert poly.equals_exact(loc.lonlat_polygon, 1e-9)
    assert s.id == f"{loc.location_id}_2024-Q3"
    assert loc.x0 % 60 == 0 and loc.y0 % 60 == 0
