"""A seeded synthetic region in one UTM zone, described as Overture-style vector features.

Everything else in `synthetic/` is derived from these features (pixels by rasterizing them, GeoParquet by
writing them), so captions built from Overture facts, the facts themselves and the pixels agree.

The world covers `n_chips_x` x `n_chips_y` chips of 264 px x 10 m laid edge to edge from a 60 m-snapped UTM
origin (the north-west corner of the chip grid), plus a margin. Feature counts scale with the area, so a 50x50
chip world is generated the same way as the 3x2 demo.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from sentinel.footprint import CHIP_PX, RES_M, SNAP_M, ChipLocation, utm_epsg

CHIP_M = CHIP_PX * RES_M  # 2640 m, a multiple of the 60 m snap
DEFAULT_MARGIN_M = 600.0
_ID_NAMESPACE = uuid.UUID("5e1b2c3a-7d4f-4b8e-9a60-2a1c0ffee000")

# Land-cover classes painted into the pixels (see synthetic.spectra for their reflectance).
COVERS: tuple[str, ...] = ("water", "forest", "crops", "grass", "built", "bare", "snow")


@dataclass(frozen=True, slots=True)
class Feature:
    """One Overture-style feature; geometry in the world's UTM metres."""

    id: str
    theme: str
    type: str
    subtype: str | None
    cls: str | None
    name: str | None
    geometry: BaseGeometry
    cover: str | None = None  # land-cover class it paints into the pixels; None: not painted (places)
    category: str | None = None  # places: categories.primary
    basic_category: str | None = None  # places
    height: float | None = None  # buildings


@dataclass
class World:
    """A generated region: its chip grid, its features and the glacier core whose snow grows in winter."""

    seed: int
    epsg: int
    x0: float  # north-west corner of the chip grid (UTM m, 60 m-snapped)
    y0: float
    n_chips_x: int
    n_chips_y: int
    margin_m: float
    features: list[Feature] = field(default_factory=list)
    glacier_core: BaseGeometry | None = None

    @property
    def chip_bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of the chip grid in UTM metres."""
        return (self.x0, self.y0 - self.n_chips_y * CHIP_M, self.x0 + self.n_chips_x * CHIP_M, self.y0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """UTM bounds of the whole world (chip grid plus margin), multiples of 60 m."""
        minx, miny, maxx, maxy = self.chip_bounds
        m = self.margin_m
        return (minx - m, miny - m, maxx + m, maxy + m)

    @cached_property
    def locations(self) -> tuple[ChipLocation, ...]:
        """The chips of the grid, row by row from the north-west; ids are `<epsg>_<x0>_<y0>` (stable)."""
        out = []
        for j in range(self.n_chips_y):
            for i in range(self.n_chips_x):
                x = self.x0 + i * CHIP_M
                y = self.y0 - j * CHIP_M
                out.append(ChipLocation(f"{self.epsg}_{int(x)}_{int(y)}", self.epsg, x, y))
        return tuple(out)

    def to_lonlat(self, geom: BaseGeometry) -> BaseGeometry:
        tr = Transformer.from_crs(CRS.from_epsg(self.epsg), CRS.from_epsg(4326), always_xy=True)
        return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """Lon/lat bbox (W, S, E, N) of the chip grid."""
        poly = box(*self.chip_bounds).segmentize(CHIP_M / 4)
        return tuple(float(v) for v in self.to_lonlat(poly).bounds)  # type: ignore[return-value]

    @property
    def full_bbox(self) -> tuple[float, float, float, float]:
        """Lon/lat bbox of the whole world including the margin (what scenes cover)."""
        poly = box(*self.bounds).segmentize(CHIP_M / 4)
        return tuple(float(v) for v in self.to_lonlat(poly).bounds)  # type: ignore[return-value]

    def of_type(self, theme: str, type_: str) -> list[Feature]:
        return [f for f in self.features if f.theme == theme and f.type == type_]

    def snow_extent(self, doy: int) -> BaseGeometry | None:
        """Seasonal snow beyond the glacier on day-of-year `doy`: widest in mid-winter, none in summer."""
        if self.glacier_core is None:
            return None
        growth = seasonal_snow_growth_m(doy)
        if growth <= 0:
            return None
        return self.glacier_core.buffer(growth, quad_segs=4)


def seasonal_snow_growth_m(doy: int) -> float:
    """How far (m) seasonal snow reaches beyond the glacier: ~1500 m in mid-January, 0 from June to October."""
    # Cosine peaking on Jan 20; values below zero (late spring to autumn) mean no extra snow.
    c = math.cos(2.0 * math.pi * (doy - 20) / 365.0)
    return max(0.0, 1500.0 * (c - 0.1) / 0.9)


# ----------------------------------------------------------------------------------------------- names

_ONSETS = ("Av", "Bren", "Cal", "Dor", "Ell", "Fen", "Gar", "Hol", "Isen", "Kell", "Lor", "Mar", "Nor", "Oster",
           "Pell", "Ros", "Stein", "Tal", "Ul", "Vell", "Wend", "Ald", "Birk", "Eich", "Lind", "Sel")
_CODAS = ("erly", "wick", "dorf", "ach", "bach", "ingen", "au", "berg", "feld", "holm", "mere", "stead", "ton",
          "heim", "brook", "ford", "moor", "leigh", "rain", "wald")
_SAINTS = ("Anna", "Martin", "Georg", "Ulrich", "Nikolaus", "Michael", "Jakob", "Leonhard")


class _Names:
    """Plausible made-up place names, unique within one world."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.order = [_ONSETS[i // len(_CODAS)] + _CODAS[i % len(_CODAS)]
                      for i in rng.permutation(len(_ONSETS) * len(_CODAS))]
        self.next = 0

    def stem(self) -> str:
        k, self.next = self.next, self.next + 1
        if k < len(self.order):
            return self.order[k]
        # The two-part stems ran out (very large worlds): add a numeral.
        return f"{self.order[k % len(self.order)]} {k // len(self.order) + 1}"

    def saint(self) -> str:
        return _SAINTS[int(self.rng.integers(len(_SAINTS)))]


# -------------------------------------------------------------------------------------------- geometry


def _blob(cx: float, cy: float, r: float, rng: np.random.Generator, rough: float = 0.25, n: int = 40) -> Polygon:
    """A smooth irregular closed shape of mean radius r (a few random harmonics on a circle)."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    rad = np.ones_like(t)
    for k in (2, 3, 5):
        rad += rough / k * rng.uniform(0.5, 1.0) * np.sin(k * t + rng.uniform(0, 2 * np.pi))
    poly = Polygon(np.column_stack([cx + r * rad * np.cos(t), cy + r * rad * np.sin(t)]))
    return poly if poly.is_valid else poly.buffer(0)


def _rect(cx: float, cy: float, w: float, h: float, angle: float) -> Polygon:
    return _rects(np.array([cx]), np.array([cy]), np.array([w]), np.array([h]), angle)[0]


def _rects(cx: np.ndarray, cy: np.ndarray, w: np.ndarray, h: np.ndarray, angle: float) -> np.ndarray:
    """Rotated rectangles (vectorized): an object array of Polygons."""
    c, s = math.cos(angle), math.sin(angle)
    ux = np.array([-0.5, 0.5, 0.5, -0.5])[None, :] * w[:, None]
    uy = np.array([-0.5, -0.5, 0.5, 0.5])[None, :] * h[:, None]
    xs = cx[:, None] + ux * c - uy * s
    ys = cy[:, None] + ux * s + uy * c
    return shapely.polygons(np.stack([xs, ys], axis=-1))


def _polygons_only(geom: BaseGeometry, min_area: float) -> BaseGeometry | None:
    """Drop slivers and non-polygon parts a difference may leave; None if nothing substantial is left."""
    parts = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type == "Polygon" and g.area >= min_area]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


class _Occupancy:
    """Polygons already placed, in a coarse grid hash, so new ones can be carved around them quickly."""

    def __init__(self, cell: float = 1000.0) -> None:
        self.cell = cell
        self.geoms: list[BaseGeometry] = []
        self.grid: dict[tuple[int, int], list[int]] = {}

    def _cells(self, bounds: tuple[float, float, float, float]) -> Iterator[tuple[int, int]]:
        minx, miny, maxx, maxy = bounds
        for i in range(int(minx // self.cell), int(maxx // self.cell) + 1):
            for j in range(int(miny // self.cell), int(maxy // self.cell) + 1):
                yield (i, j)

    def add(self, geom: BaseGeometry) -> None:
        idx = len(self.geoms)
        self.geoms.append(geom)
        for c in self._cells(geom.bounds):
            self.grid.setdefault(c, []).append(idx)

    def near(self, geom: BaseGeometry) -> list[BaseGeometry]:
        if geom.is_empty:
            return []
        ids: set[int] = set()
        for c in self._cells(geom.bounds):
            ids.update(self.grid.get(c, ()))
        if not ids:
            return []
        cands = [self.geoms[i] for i in sorted(ids)]
        hit = shapely.intersects(np.array(cands, dtype=object), geom)
        return [g for g, h in zip(cands, hit, strict=True) if h]

    def carve(self, geom: BaseGeometry, max_overlap: float, min_area: float) -> BaseGeometry | None:
        """`geom` minus what is already placed, or None if it overlaps more than `max_overlap` of its area."""
        if geom.is_empty:
            return None
        near = self.near(geom)
        if near:
            occupied = shapely.union_all(near)
            overlap = geom.intersection(occupied).area
            if overlap > max_overlap * geom.area:
                return None
            geom = geom.difference(occupied)
        return _polygons_only(geom, min_area)


# ------------------------------------------------------------------------------------------- generator

_PLACE_KINDS: tuple[tuple[str, str, str], ...] = (
    # (categories.primary, basic_category, name pattern: {T} town, {N} fresh stem, {S} saint)
    ("bakery", "bakery", "{T} Bakery"),
    ("restaurant", "restaurant", "Gasthof {N}"),
    ("cafe", "coffee_shop", "Café {N}"),
    ("elementary_school", "school", "{T} Primary School"),
    ("church", "place_of_worship", "St. {S} Church"),
    ("pharmacy", "pharmacy", "{T} Pharmacy"),
    ("supermarket", "grocery_store", "{N} Market"),
    ("town_hall", "government_office", "{T} Town Hall"),
    ("hotel", "hotel", "Hotel {N}"),
    ("post_office", "post_office", "{T} Post Office"),
    ("gas_station", "gas_station", "{N} Fuel"),
    ("sports_club", "sports_club", "SV {T}"),
)


class _Builder:
    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.world = world
        self.rng = rng
        self.names = _Names(rng)
        self.occ = _Occupancy()
        self.count = 0
        # Ids look like Overture's GERS UUIDs: a per-world prefix plus a counter (uuid5 per feature is slow).
        self.id_prefix = str(uuid.uuid5(_ID_NAMESPACE, f"{world.seed}/{world.epsg}/{world.x0}/{world.y0}"))[:24]
        self.minx, self.miny, self.maxx, self.maxy = world.bounds
        self.frame = box(*world.bounds)

    def add(self, theme: str, type_: str, subtype: str | None, cls: str | None, name: str | None,
            geom: BaseGeometry, cover: str | None = None, **extra: object) -> Feature:
        fid = f"{self.id_prefix}{self.count:012x}"
        self.count += 1
        f = Feature(fid, theme, type_, subtype, cls, name, geom, cover, **extra)  # type: ignore[arg-type]
        self.world.features.append(f)
        return f

    def point_in(self, bounds: tuple[float, float, float, float] | None = None, pad: float = 0.0) -> tuple[float,
                                                                                                          float]:
        minx, miny, maxx, maxy = bounds or (self.minx, self.miny, self.maxx, self.maxy)
        return (float(self.rng.uniform(minx + pad, maxx - pad)), float(self.rng.uniform(miny + pad, maxy - pad)))

    # -- water
    def rivers(self, n: int) -> None:
        cminx, cminy, cmaxx, cmaxy = self.world.chip_bounds
        for _ in range(n):
            y_start = self.rng.uniform(cminy + 0.3 * (cmaxy - cminy), cminy + 0.7 * (cmaxy - cminy))
            xs = np.arange(self.minx - 200.0, self.maxx + 200.0, 150.0)
            wander = np.cumsum(self.rng.normal(0.0, 35.0, xs.size))
            wander -= np.linspace(0.0, wander[-1], xs.size)  # keep the river inside the world
            phase = self.rng.uniform(0, 2 * np.pi)
            ys = y_start + wander + 250.0 * np.sin(xs / 1300.0 + phase)
            line = LineString(np.column_stack([xs, ys]))
            width = float(self.rng.uniform(35.0, 60.0))
            poly = line.buffer(width / 2, quad_segs=4).intersection(self.frame)
            name = f"{self.names.stem()} {'River' if width > 45 else 'Creek'}"
            self.add("base", "water", "river", "river", name, poly, "water")
            self.occ.add(poly.buffer(30.0))

    def lakes(self, n: int) -> None:
        placed = 0
        for _ in range(n * 20):
            if placed >= n:
                break
            r = float(self.rng.uniform(250.0, 650.0))
            cx, cy = self.point_in(self.world.chip_bounds, pad=r)
            poly = _blob(cx, cy, r, self.rng, rough=0.3)
            if self.occ.near(poly.buffer(150.0)):
                continue
            self.add("base", "water", "lake", "lake", f"Lake {self.names.stem()}", poly, "water")
            self.occ.add(poly.buffer(20.0))
            placed += 1

    # -- alpine corner
    def glacier(self) -> None:
        cminx, cminy, cmaxx, cmaxy = self.world.chip_bounds
        r = min(0.42 * CHIP_M, 0.2 * (cmaxx - cminx), 0.3 * (cmaxy - cminy))
        cx, cy = cmaxx - 0.55 * r, cmaxy - 0.55 * r
        core = _blob(cx, cy, r, self.rng, rough=0.2).intersection(self.frame)
        core = self.occ.carve(core, 1.0, 1000.0)
        if core is None:
            return
        stem = self.names.stem()
        self.add("base", "land", "glacier", "glacier", f"{stem} Glacier", core, "snow")
        self.add("base", "land_cover", "snow", None, None, core, "snow")
        self.world.glacier_core = core
        self.occ.add(core)
        rock = _blob(cx, cy, 1.9 * r, self.rng, rough=0.25).intersection(self.frame)
        rock = self.occ.carve(rock, 1.0, 1000.0)
        if rock is not None:
            self.add("base", "land", "rock", "bare_rock", f"{stem} Scree", rock, "bare")
            self.add("base", "land_cover", "barren", None, None, rock, "bare")
            self.occ.add(rock)

    # -- towns
    def towns(self, n: int) -> None:
        cminx, cminy, cmaxx, cmaxy = self.world.chip_bounds
        centres: list[tuple[float, float]] = []
        for k in range(n * 30):
            if len(centres) >= n:
                break
            if k == 0:
                jx, jy = self.rng.uniform(-300, 300, 2)
                c = ((cminx + cmaxx) / 2 + jx, (cminy + cmaxy) / 2 + jy)
            else:
                c = self.point_in(self.world.chip_bounds, pad=500.0)
            if any(math.dist(c, o) < 4500.0 for o in centres):
                continue
            if self.world.glacier_core is not None and self.world.glacier_core.distance(Point(c)) < 2000.0:
                continue
            centres.append(c)
        majors: list[tuple[LineString, str]] = []
        # Primary roads: a single town gets one crossing the whole world; otherwise each town links to its
        # nearest neighbour to the east.
        if len(centres) == 1:
            (cx, cy), = centres
            pts = [(self.minx, cy + self.rng.uniform(-400, 400)), (cx, cy),
                   (self.maxx, cy + self.rng.uniform(-400, 400))]
            majors.append((self._wiggle(pts), "primary"))
        else:
            for a in centres:
                east = [b for b in centres if b[0] > a[0] and math.dist(a, b) < 15000.0]
                if east:
                    majors.append((self._wiggle([a, min(east, key=lambda b: math.dist(a, b))]), "primary"))
        for cx, cy in centres:
            top = (cx + self.rng.uniform(-600, 600), min(self.maxy, cy + 3000.0))
            bottom = (cx + self.rng.uniform(-600, 600), max(self.miny, cy - 3000.0))
            majors.append((self._wiggle([bottom, (cx, cy), top]), "secondary"))
        water = np.array([f.geometry for f in self.world.features if f.type == "water"], dtype=object)
        for line, cls in majors:
            line = line.intersection(self.frame)
            name = f"{self.names.stem()}{'strasse' if cls == 'secondary' else ' Road'}"
            self.add("transportation", "segment", "road", cls, name, line, "built")
            self._bridges(line, water)
        for cx, cy in centres:
            self._town(cx, cy, [m for m, _ in majors], water)

    def _wiggle(self, pts: list[tuple[float, float]]) -> LineString:
        """A road through `pts` with gentle random bends every ~400 m."""
        out: list[tuple[float, float]] = []
        for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:], strict=True):
            n = max(2, int(math.dist((ax, ay), (bx, by)) // 400))
            for t in np.linspace(0.0, 1.0, n, endpoint=False):
                jitter = self.rng.normal(0.0, 40.0, 2) if 0 < t else (0.0, 0.0)
                out.append((ax + t * (bx - ax) + jitter[0], ay + t * (by - ay) + jitter[1]))
        out.append(pts[-1])
        return LineString(out)

    def _bridges(self, line: BaseGeometry, water: np.ndarray) -> None:
        for w in water[shapely.intersects(water, line)]:
            cross = line.intersection(w)
            if not cross.is_empty and cross.length > 5:
                self.add("base", "infrastructure", "bridge", "bridge", None, cross, None)

    def _town(self, cx: float, cy: float, majors: list[LineString], water: np.ndarray) -> None:
        name = self.names.stem()
        r = float(self.rng.uniform(600.0, 900.0))
        area = self.occ.carve(_blob(cx, cy, r, self.rng, rough=0.2).intersection(self.frame), 0.6, 20000.0)
        if area is None:
            return
        self.add("base", "land_use", "residential", "residential", name, area, "built")
        self.add("base", "land_cover", "urban", None, None, area, "built")
        self.occ.add(area)
        # Residential street grid, rotated, clipped to the town.
        angle = float(self.rng.uniform(0, math.pi / 2))
        spacing = 130.0
        c, s = math.cos(angle), math.sin(angle)
        k = int(r * 1.6 // spacing) + 1
        streets: list[LineString] = []
        for i in range(-k, k + 1):
            for horizontal in (True, False):
                a, b = (-r * 1.6, i * spacing), (r * 1.6, i * spacing)
                if not horizontal:
                    a, b = (a[1], a[0]), (b[1], b[0])
                seg = LineString([(cx + x * c - y * s, cy + x * s + y * c) for x, y in (a, b)]).intersection(area)
                for part in getattr(seg, "geoms", [seg]):
                    if part.geom_type == "LineString" and part.length > 60:
                        streets.append(part)
        for st in streets:
            self.add("transportation", "segment", "road", "residential", f"{self.names.stem()}weg"
                     if self.rng.random() < 0.5 else None, st, "built")
        self._buildings(name, area, streets, majors, water, angle)

    def _buildings(self, town: str, area: BaseGeometry, streets: list[LineString], majors: list[LineString],
                   water: np.ndarray, angle: float) -> None:
        cxs, cys, ws, hs = [], [], [], []
        for st in streets:
            (ax, ay), (bx, by) = st.coords[0], st.coords[-1]
            length = math.dist((ax, ay), (bx, by))
            ux, uy = (bx - ax) / length, (by - ay) / length
            along = np.arange(22.0, length - 22.0, 30.0)
            along += self.rng.uniform(-3, 3, along.size)
            for side in (-1.0, 1.0):
                setback = 20.0 + self.rng.uniform(-2, 2, along.size)
                cxs.append(ax + ux * along - side * uy * setback)
                cys.append(ay + uy * along + side * ux * setback)
                ws.append(self.rng.uniform(10.0, 18.0, along.size))
                hs.append(self.rng.uniform(8.0, 13.0, along.size))
        if not cxs:
            return
        x, y, w, h = (np.concatenate(v) for v in (cxs, cys, ws, hs))
        keep = shapely.contains_xy(area, x, y) & (self.rng.random(x.size) < 0.85)
        x, y, w, h = x[keep], y[keep], w[keep], h[keep]
        if x.size == 0:
            return
        polys = _rects(x, y, w, h, angle)
        frame = box(*area.bounds)
        blocked = shapely.union_all([m.intersection(frame).buffer(14.0) for m in majors if m.intersects(frame)]
                                    + [g.buffer(5.0) for g in water if g.intersects(frame)])
        shapely.prepare(blocked)
        polys = polys[~shapely.intersects(blocked, polys)]
        # Long streets parallel to each other can place two rows of houses on one spot: keep the first.
        ok = np.ones(polys.size, dtype=bool)
        tree = shapely.STRtree(polys)
        left, right = tree.query(polys, predicate="intersects")
        ok[right[right > left]] = False
        polys = polys[ok]
        classes = self.rng.choice(["house", "house", "house", "detached", "apartments", "garage"], polys.size)
        heights = self.rng.uniform(4.0, 13.0, polys.size)
        for poly, cls, hgt in zip(polys, classes, heights, strict=True):
            self.add("buildings", "building", "residential", str(cls), None, poly, "built", height=round(float(hgt), 1))
        # Points of interest sit on some of the buildings.
        n_places = min(polys.size, int(self.rng.integers(8, 15)))
        for poly, kind in zip(self.rng.choice(polys, n_places, replace=False),
                              self.rng.permutation(len(_PLACE_KINDS))[:n_places], strict=False):
            category, basic, pattern = _PLACE_KINDS[int(kind)]
            label = pattern.format(T=town, N=self.names.stem(), S=self.names.saint())
            self.add("places", "place", None, None, label, poly.centroid, None, category=category,
                     basic_category=basic)

    # -- vegetation
    def forests(self, n: int) -> None:
        for _ in range(n):
            r = float(self.rng.uniform(250.0, 900.0))
            cx, cy = self.point_in()
            poly = self.occ.carve(_blob(cx, cy, r, self.rng, rough=0.35).intersection(self.frame), 0.8, 5000.0)
            if poly is None:
                continue
            named = self.rng.random() < 0.4
            name = f"{self.names.stem()} {'Forest' if r > 600 else 'Wood'}" if named else None
            self.add("base", "land_cover", "forest", None, None, poly, "forest")
            if self.rng.random() < 0.7:
                self.add("base", "land_use", "managed", "forest", name, poly, "forest")
            self.occ.add(poly)

    def fields(self, n_clusters: int) -> None:
        for _ in range(n_clusters):
            cx, cy = self.point_in()
            angle = float(self.rng.uniform(-0.3, 0.3))
            nx, ny = int(self.rng.integers(3, 7)), int(self.rng.integers(2, 6))
            fw, fh = float(self.rng.uniform(220, 400)), float(self.rng.uniform(180, 320))
            c, s = math.cos(angle), math.sin(angle)
            i, j = (a.ravel() for a in np.meshgrid(np.arange(nx), np.arange(ny)))
            lx, ly = (i - (nx - 1) / 2) * (fw + 12), (j - (ny - 1) / 2) * (fh + 12)
            w, h = fw * self.rng.uniform(0.8, 1.1, i.size), fh * self.rng.uniform(0.8, 1.1, i.size)
            for rect in _rects(cx + lx * c - ly * s, cy + lx * s + ly * c, w, h, angle):
                if not self.frame.contains(rect):
                    rect = rect.intersection(self.frame)
                poly = self.occ.carve(rect, 0.25, 8000.0)
                if poly is None:
                    continue
                self.add("base", "land_use", "agriculture", "farmland", None, poly, "crops")
                self.add("base", "land_cover", "crop", None, None, poly, "crops")
                self.occ.add(poly)

    def meadows(self, n: int) -> None:
        for _ in range(n):
            r = float(self.rng.uniform(200.0, 550.0))
            cx, cy = self.point_in()
            poly = self.occ.carve(_blob(cx, cy, r, self.rng, rough=0.3).intersection(self.frame), 0.4, 5000.0)
            if poly is None:
                continue
            name = f"{self.names.stem()} Alm" if self.rng.random() < 0.25 else None
            self.add("base", "land_use", "agriculture", "meadow", name, poly, "grass")
            self.add("base", "land_cover", "grass", None, None, poly, "grass")
            self.add("base", "land", "grass", "meadow", None, poly, None)
            self.occ.add(poly)


def make_world(origin_lonlat: tuple[float, float], n_chips_x: int, n_chips_y: int, seed: int = 0,
               margin_m: float = DEFAULT_MARGIN_M) -> World:
    """Generate a synthetic region whose chip grid starts (north-west corner) at `origin_lonlat`.

    Deterministic for (origin, size, seed, margin)."""
    lon, lat = origin_lonlat
    if not (-180.0 <= lon <= 180.0 and -80.0 <= lat <= 84.0):
        raise ValueError(f"origin_lonlat={origin_lonlat}: give (lon, lat) inside the UTM range, e.g. (10.9, 47.4)")
    if n_chips_x < 1 or n_chips_y < 1:
        raise ValueError(f"n_chips_x={n_chips_x}, n_chips_y={n_chips_y}: a world needs at least 1x1 chips")
    if margin_m < 0 or margin_m % SNAP_M:
        raise ValueError(f"margin_m={margin_m}: give a non-negative multiple of {SNAP_M:g} m")
    epsg = utm_epsg(lon, lat)
    x, y = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(epsg), always_xy=True).transform(lon, lat)
    x0, y0 = math.floor(x / SNAP_M) * SNAP_M, math.floor(y / SNAP_M) * SNAP_M
    world = World(seed, epsg, float(x0), float(y0), n_chips_x, n_chips_y, float(margin_m))
    b = _Builder(world, np.random.default_rng([seed, n_chips_x, n_chips_y]))
    n_area = n_chips_x * n_chips_y
    # Order matters: earlier features claim their ground first, later ones are carved around them.
    b.rivers(max(1, round(max(n_chips_x, n_chips_y) / 5)))
    b.lakes(max(1, round(n_area / 4)))
    b.glacier()
    b.towns(max(1, round(n_area / 6)))
    b.fields(max(2, round(n_area * 1.2)))
    b.forests(max(4, round(n_area * 3.0)))
    b.meadows(max(1, round(n_area * 1.2)))
    return world


def named_features(features: Iterable[Feature]) -> list[Feature]:
    return [f for f in features if f.name]


__all__ = ["CHIP_M", "COVERS", "Feature", "World", "make_world", "named_features", "seasonal_snow_growth_m"]
