"""Where chips go: a regular grid over a region, or SSL4EO-S12's Gaussian scatter around city points.

All chips are `ChipLocation`s: squares in the UTM zone of their centre with the upper-left corner on the 60 m
grid that Sentinel-2 tiles share, so the 10, 20 and 60 m pixels of a scene align with the chip.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import box

from sentinel.footprint import CHIP_PX, RES_M, SNAP_M, ChipLocation, utm_epsg

BBox = tuple[float, float, float, float]
_METRES_PER_DEG = 111_320.0
_MAX_ABS_LAT = 84.0  # UTM is defined up to 84 N / 80 S; Sentinel-2 stops there too


def validate_bbox(bbox: Sequence[float]) -> BBox:
    """A lon/lat box W,S,E,N as floats, or a one-line error naming what is wrong."""
    if len(bbox) != 4:
        raise ValueError(f"bbox {tuple(bbox)}: give 4 numbers W,S,E,N in degrees")
    w, s, e, n = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise ValueError(f"bbox {(w, s, e, n)}: all four values must be finite numbers")
    if not (-180 <= w <= 180 and -180 <= e <= 180):
        raise ValueError(f"bbox {(w, s, e, n)}: longitudes W and E must lie in [-180, 180]")
    if not (-90 <= s <= 90 and -90 <= n <= 90):
        raise ValueError(f"bbox {(w, s, e, n)}: latitudes S and N must lie in [-90, 90] (did you swap lon and lat?)")
    if w >= e:
        raise ValueError(f"bbox {(w, s, e, n)}: W must be less than E (boxes across the antimeridian are not "
                         "supported; split them in two)")
    if s >= n:
        raise ValueError(f"bbox {(w, s, e, n)}: S must be less than N")
    return w, s, e, n


def _zone_cells(bbox: BBox) -> list[tuple[int, BBox]]:
    """The bbox split at UTM zone edges and the equator: (epsg, part) pairs, each part inside one zone."""
    w, s, e, n = bbox
    cells = []
    first, last = int((w + 180) // 6), min(int((e + 180) // 6), 59)
    for z in range(first, last + 1):
        zw, ze = max(w, -180 + 6 * z), min(e, -180 + 6 * (z + 1))
        if zw >= ze:
            continue
        for hs, hn in ((s, min(n, 0.0)), (max(s, 0.0), n)):
            if hs < hn:
                cells.append((utm_epsg((zw + ze) / 2, (hs + hn) / 2), (zw, hs, ze, hn)))
    return cells


def grid_locations(bbox: tuple[float, float, float, float], spacing_m: float = 2640.0,
                   size_px: int = CHIP_PX, res_m: float = RES_M) -> list[ChipLocation]:
    """Chips on a regular grid (`spacing_m` between chip corners) whose whole footprint lies in `bbox`.

    Each UTM zone the box touches gets its own grid, anchored on the 60 m snap grid; a chip belongs to the zone
    of its centre. Ids are `{epsg}_{x0}_{y0}`, so the same box always gives the same ids.
    """
    bbox = validate_bbox(bbox)
    if not spacing_m > 0:
        raise ValueError(f"spacing_m {spacing_m}: must be a positive number of metres between chips")
    region = box(*bbox)
    size_m = size_px * res_m
    step = max(SNAP_M, round(spacing_m / SNAP_M) * SNAP_M)
    out: list[ChipLocation] = []
    for epsg, cell in _zone_cells(bbox):
        to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
        region_utm = shapely.transform(region.segmentize(0.05), to_utm.transform, interleaved=False)
        cell_utm = shapely.transform(box(*cell).segmentize(0.05), to_utm.transform, interleaved=False)
        minx, miny, maxx, maxy = cell_utm.bounds
        xs = np.arange(math.floor(minx / step) * step - size_m, maxx + step, step)
        ys = np.arange(math.ceil(maxy / step) * step + size_m, miny - step, -step)
        x0, y0 = (a.ravel() for a in np.meshgrid(xs, ys))
        chips = shapely.box(x0, y0 - size_m, x0 + size_m, y0)
        centres = shapely.points(x0 + size_m / 2, y0 - size_m / 2)
        shapely.prepare(region_utm)
        keep = shapely.contains(region_utm, chips) & shapely.covers(cell_utm, centres)
        for x, y in zip(x0[keep], y0[keep], strict=True):
            out.append(ChipLocation(f"{epsg}_{int(x)}_{int(y)}", epsg, float(x), float(y), size_px, res_m))
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "city"


def gaussian_locations(cities: Sequence[tuple[str, float, float]], n_per_city: int, sigma_km: float = 50.0,
                       seed: int = 0, size_px: int = CHIP_PX, res_m: float = RES_M,
                       max_tries: int = 100) -> list[ChipLocation]:
    """SSL4EO-S12's scheme: `n_per_city` chip centres drawn from a 2-D Gaussian (sigma `sigma_km`) around each
    (name, lon, lat) city, rejecting draws whose chip overlaps one already taken.

    Each city draws from its own generator seeded by (seed, name, position), so a city's chips do not change when
    other cities are added; overlap rejection across cities is the only coupling. Ids are
    `{city}_{epsg}_{x0}_{y0}`: stable for the same inputs and unique.
    """
    if n_per_city < 1:
        raise ValueError(f"n_per_city {n_per_city}: must be at least 1")
    if not sigma_km > 0:
        raise ValueError(f"sigma_km {sigma_km}: must be positive")
    size_m = size_px * res_m
    # (epsg, cell column, cell row) -> corner of the chip there; one chip-size cell holds at most one chip
    taken: dict[tuple[int, int, int], tuple[float, float]] = {}
    out: list[ChipLocation] = []
    for name, lon, lat in cities:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"city {name!r} at ({lon}, {lat}): not a lon/lat position (lon in [-180, 180], "
                             "lat in [-90, 90]; did you swap them?)")
        key = f"{seed}|{name}|{lon:.6f}|{lat:.6f}".encode()
        rng = np.random.default_rng(zlib.crc32(key))
        got = 0
        for _ in range(n_per_city * max_tries):
            if got == n_per_city:
                break
            dx, dy = rng.normal(0.0, sigma_km * 1000.0, size=2)
            plat = float(np.clip(lat + dy / _METRES_PER_DEG, -_MAX_ABS_LAT + 4, _MAX_ABS_LAT))
            plon = lon + dx / (_METRES_PER_DEG * max(math.cos(math.radians(plat)), 0.05))
            plon = (plon + 180.0) % 360.0 - 180.0
            loc = ChipLocation.around(plon, plat, size_px=size_px, res_m=res_m)
            cx, cy = int(loc.x0 // size_m), int(loc.y0 // size_m)
            if any(_overlaps(taken.get((loc.epsg, cx + i, cy + j)), loc, size_m)
                   for i in (-1, 0, 1) for j in (-1, 0, 1)):
                continue
            taken[(loc.epsg, cx, cy)] = (loc.x0, loc.y0)
            out.append(ChipLocation(f"{_slug(name)}_{loc.epsg}_{int(loc.x0)}_{int(loc.y0)}", loc.epsg, loc.x0,
                                    loc.y0, size_px, res_m))
            got += 1
    return out


def _overlaps(other: tuple[float, float] | None, loc: ChipLocation, size_m: float) -> bool:
    if other is None:
        return False
    return abs(other[0] - loc.x0) < size_m and abs(other[1] - loc.y0) < size_m
