"""The vector world: deterministic, scaled to its chip grid, with every feature kind the demo relies on."""

from __future__ import annotations

import shapely
from shapely.geometry import Point, box

from sentinel.footprint import SNAP_M
from synthetic.world import CHIP_M, make_world, seasonal_snow_growth_m

ORIGIN = (10.9, 47.4)


def _signature(world):
    return [(f.id, f.theme, f.type, f.subtype, f.cls, f.name, shapely.to_wkb(f.geometry)) for f in world.features]


def test_same_seed_same_world_and_other_seed_differs():
    a, b = make_world(ORIGIN, 2, 2, seed=3), make_world(ORIGIN, 2, 2, seed=3)
    assert _signature(a) == _signature(b)
    c = make_world(ORIGIN, 2, 2, seed=4)
    assert _signature(a) != _signature(c)


def test_chip_grid_is_snapped_edge_to_edge_and_ids_are_stable():
    w = make_world(ORIGIN, 3, 2, seed=0)
    locs = w.locations
    assert len(locs) == 6 and len({loc.location_id for loc in locs}) == 6
    assert w.epsg == 32632
    for loc in locs:
        assert loc.x0 % SNAP_M == 0 and loc.y0 % SNAP_M == 0
        assert loc.location_id == f"{loc.epsg}_{int(loc.x0)}_{int(loc.y0)}"
        assert loc.size_px == 264 and loc.res_m == 10.0
    # Neighbours share an edge; the grid covers exactly chip_bounds.
    assert locs[1].x0 - locs[0].x0 == CHIP_M and locs[0].y0 - locs[3].y0 == CHIP_M
    union = shapely.union_all([loc.utm_polygon for loc in locs])
    assert abs(union.area - box(*w.chip_bounds).area) < 1.0
    assert make_world(ORIGIN, 3, 2, seed=9).locations == locs  # ids depend on the origin only
    # The lon/lat bbox holds every chip centre and lies near the origin.
    W, S, E, N = w.bbox
    for loc in locs:
        lon, lat = loc.center_lonlat
        assert W < lon < E and S < lat < N
    assert abs(W - ORIGIN[0]) < 0.01 and abs(N - ORIGIN[1]) < 0.01


def test_every_feature_kind_is_present_and_inside_the_world():
    w = make_world(ORIGIN, 3, 2, seed=0)
    kinds = {(f.theme, f.type, f.subtype, f.cls) for f in w.features}
    for k in [("base", "water", "lake", "lake"), ("base", "water", "river", "river"),
              ("base", "land_cover", "forest", None), ("base", "land_use", "managed", "forest"),
              ("base", "land_use", "agriculture", "farmland"), ("base", "land_use", "residential", "residential"),
              ("base", "land_cover", "snow", None), ("base", "land", "glacier", "glacier"),
              ("base", "land", "rock", "bare_rock"), ("base", "land_use", "agriculture", "meadow"),
              ("transportation", "segment", "road", "primary"), ("transportation", "segment", "road", "secondary"),
              ("transportation", "segment", "road", "residential")]:
        assert k in kinds, k
    buildings = w.of_type("buildings", "building")
    assert len(buildings) > 50
    assert all(50 <= b.geometry.area <= 300 for b in buildings)  # small house footprints
    places = w.of_type("places", "place")
    assert places and all(p.name and p.category and p.basic_category for p in places)
    assert all(isinstance(p.geometry, Point) for p in places)
    lakes = [f for f in w.features if f.subtype == "lake"]
    assert all(f.name.startswith("Lake ") for f in lakes)
    frame = box(*w.bounds).buffer(1.0)
    assert all(frame.contains(f.geometry) for f in w.features)
    ids = [f.id for f in w.features]
    assert len(set(ids)) == len(ids)
    # Painted land features do not overlap each other (water, town, fields, forests claim their own ground).
    land = [f.geometry for f in w.features if f.theme == "base" and f.type in ("land_cover",) and f.cover]
    assert shapely.union_all(land).area >= 0.99 * sum(g.area for g in land)


def test_buildings_avoid_water_and_sit_in_the_town():
    w = make_world(ORIGIN, 3, 2, seed=1)
    water = shapely.union_all([f.geometry for f in w.of_type("base", "water")])
    town = shapely.union_all([f.geometry for f in w.features if f.subtype == "residential" and f.type == "land_use"])
    for b in w.of_type("buildings", "building"):
        assert not b.geometry.intersects(water)
        assert town.contains(b.geometry.centroid)


def test_seasonal_snow_grows_in_winter_only():
    assert seasonal_snow_growth_m(20) > 1000
    assert seasonal_snow_growth_m(200) == 0.0
    w = make_world(ORIGIN, 2, 2, seed=0)
    assert w.snow_extent(200) is None
    assert w.snow_extent(30).area > w.glacier_core.area


def test_bad_input_gets_a_clear_error():
    import pytest

    with pytest.raises(ValueError, match="at least 1x1"):
        make_world(ORIGIN, 0, 2)
    with pytest.raises(ValueError, match="origin_lonlat"):
        make_world((200.0, 47.0), 1, 1)
    with pytest.raises(ValueError, match="margin_m"):
        make_world(ORIGIN, 1, 1, margin_m=50)
