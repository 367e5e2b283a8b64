"""Chip footprints on a UTM grid.

A chip is `size_px` x `size_px` pixels of `res_m` metres in a UTM zone. Its upper-left corner is snapped to a
60 m grid: Sentinel-2 tile origins are multiples of 60 m, so the 10, 20 and 60 m pixels of a scene then align
with the chip exactly and a 20 m band maps to whole 2x2 blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import shapely
from pyproj import CRS, Transformer
from shapely.geometry import Polygon, box

SNAP_M = 60.0
CHIP_PX = 264
RES_M = 10.0


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone holding (lon, lat)."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise ValueError(f"({lon}, {lat}) is not a lon/lat position: lon must be in [-180, 180], lat in [-90, 90]")
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(src), CRS.from_epsg(dst), always_xy=True)


@dataclass(frozen=True)
class ChipLocation:
    """Where one chip lies: a stable id, a UTM zone and the chip's upper-left corner in it."""

    location_id: str
    epsg: int
    x0: float  # upper-left easting (m)
    y0: float  # upper-left northing (m)
    size_px: int = CHIP_PX
    res_m: float = RES_M

    @classmethod
    def around(cls, lon: float, lat: float, location_id: str | None = None, size_px: int = CHIP_PX,
               res_m: float = RES_M, epsg: int | None = None) -> ChipLocation:
        """The chip centred (to the 60 m snap) on a lon/lat point, in that point's UTM zone unless given."""
        epsg = epsg or utm_epsg(lon, lat)
        x, y = _transformer(4326, epsg).transform(lon, lat)
        half = size_px * res_m / 2.0
        x0 = math.floor((x - half) / SNAP_M + 0.5) * SNAP_M
        y0 = math.floor((y + half) / SNAP_M + 0.5) * SNAP_M
        loc_id = location_id or f"{epsg}_{int(x0)}_{int(y0)}"
        return cls(loc_id, epsg, x0, y0, size_px, res_m)

    @property
    def size_m(self) -> float:
        return self.size_px * self.res_m

    @property
    def utm_bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in the chip's UTM zone."""
        return (self.x0, self.y0 - self.size_m, self.x0 + self.size_m, self.y0)

    @property
    def utm_polygon(self) -> Polygon:
        return box(*self.utm_bounds)

    @cached_property
    def lonlat_polygon(self) -> Polygon:
        """The footprint in lon/lat (EPSG:4326), densified so its edges follow the UTM square."""
        poly = self.utm_polygon.segmentize(self.size_m / 8.0)
        return shapely.transform(poly, _transformer(self.epsg, 4326).transform, interleaved=False)

    @property
    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        return tuple(self.lonlat_polygon.bounds)  # type: ignore[return-value]

    @property
    def center_lonlat(self) -> tuple[float, float]:
        cx = self.x0 + self.size_m / 2.0
        cy = self.y0 - self.size_m / 2.0
        lon, lat = _transformer(self.epsg, 4326).transform(cx, cy)
        return float(lon), float(lat)
