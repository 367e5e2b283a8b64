from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Transformer
from shapely.geometry import box

from sentinel.footprint import SNAP_M
from sentinel.sampling import gaussian_locations, grid_locations


def test_grid_chips_lie_in_the_bbox_on_the_snap_grid_at_the_spacing() -> None:
    bbox = (11.30, 47.20, 11.50, 47.32)
    locs = grid_locations(bbox)
    assert len(locs) >= 12
    region = box(*bbox)
    for loc in locs:
        assert loc.epsg == 32632 and loc.size_px == 264
        assert region.contains(loc.lonlat_polygon)
        assert loc.x0 % SNAP_M == 0 and loc.y0 % SNAP_M == 0
        assert loc.location_id == f"32632_{int(loc.x0)}_{int(loc.y0)}"
    xs = sorted({loc.x0 for loc in locs})
    assert set(np.diff(xs)) == {2640.0}  # touching chips, no gaps, no overlap
    assert len({loc.location_id for loc in locs}) == len(locs)
    # the grid covers the box: ~ area / chip area chips (edges lose part of a row/column)
    to_utm = Transformer.from_crs(4326, 32632, always_xy=True)
    x0, y0 = to_utm.transform(bbox[0], bbox[1])
    x1, y1 = to_utm.transform(bbox[2], bbox[3])
    assert len(locs) >= 0.6 * abs((x1 - x0) * (y1 - y0)) / 2640**2
    assert grid_locations(bbox) == locs  # deterministic


def test_grid_across_a_utm_zone_edge_uses_each_zone() -> None:
    locs = grid_locations((5.85, 47.0, 6.15, 47.1))
    zones = {loc.epsg for loc in locs}
    assert zones == {32631, 32632}
    for loc in locs:
        lon, _ = loc.center_lonlat
        assert (loc.epsg == 32631) == (lon < 6.0)


def test_grid_spacing_and_small_boxes() -> None:
    sparse = grid_locations((11.30, 47.20, 11.50, 47.32), spacing_m=5280)
    dense = grid_locations((11.30, 47.20, 11.50, 47.32))
    assert 0.15 < len(sparse) / len(dense) < 0.4
    assert grid_locations((11.30, 47.20, 11.301, 47.201)) == []  # smaller than a chip


@pytest.mark.parametrize(("bbox", "msg"), [
    ((11.5, 47.0, 11.3, 47.3), "W must be less than E"),
    ((11.3, 47.3, 11.5, 47.0), "S must be less than N"),
    ((47.0, 11.3, 47.3, 191.0), "longitudes|latitudes"),
    ((11.3, 95.0, 11.5, 96.0), "latitudes S and N must lie in"),
    ((11.3, 47.0, 11.5), "give 4 numbers"),
    ((11.3, math.nan, 11.5, 47.0), "finite"),
])
def test_bad_bbox_is_named(bbox: tuple[float, ...], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        grid_locations(bbox)  # type: ignore[arg-type]


def test_bad_spacing() -> None:
    with pytest.raises(ValueError, match="spacing_m"):
        grid_locations((11.3, 47.2, 11.5, 47.3), spacing_m=0)


CITIES = [("Berlin", 13.405, 52.52), ("São Paulo", -46.63, -23.55), ("Nairobi", 36.82, -1.29)]


def test_gaussian_is_reproducible_and_stable_per_city() -> None:
    a = gaussian_locations(CITIES, 20, seed=7)
    assert a == gaussian_locations(CITIES, 20, seed=7)
    assert a != gaussian_locations(CITIES, 20, seed=8)
    assert len(a) == 60 and len({loc.location_id for loc in a}) == 60
    assert a[0].location_id.startswith("berlin_326") and a[20].location_id.startswith("s-o-paulo_327")
    # adding a city does not move the others' chips
    more = gaussian_locations([*CITIES, ("Lima", -77.04, -12.05)], 20, seed=7)
    assert more[:60] == a


def test_gaussian_spread_matches_sigma_and_chips_do_not_overlap() -> None:
    locs = gaussian_locations([("Paris", 2.35, 48.86)], 300, sigma_km=50, seed=1)
    assert len(locs) == 300
    lon, lat = np.array([loc.center_lonlat for loc in locs]).T
    dy_km = (lat - 48.86) * 111.32
    dx_km = (lon - 2.35) * 111.32 * math.cos(math.radians(48.86))
    assert 40 < np.std(dy_km) < 60 and 40 < np.std(dx_km) < 60
    assert abs(np.mean(dy_km)) < 10
    by_zone: dict[int, list] = {}
    for loc in locs:
        by_zone.setdefault(loc.epsg, []).append(loc.utm_polygon)
    for polys in by_zone.values():
        for i, p in enumerate(polys):
            assert not any(p.intersection(q).area > 0 for q in polys[i + 1:])


def test_gaussian_bad_input() -> None:
    with pytest.raises(ValueError, match="swap"):
        gaussian_locations([("X", 52.5, 191.0)], 3)
    with pytest.raises(ValueError, match="n_per_city"):
        gaussian_locations(CITIES, 0)
    with pytest.raises(ValueError, match="sigma_km"):
        gaussian_locations(CITIES, 1, sigma_km=0)
