"""The batched Overture query: facts for every chip of a shard with one DuckDB query per theme/type.

How one theme/type is read for N chips:
1. The chip footprints (lon/lat, split at +-180 when a chip crosses the antimeridian) go into a DuckDB table.
2. Chips are grouped into clusters of nearby chips; each cluster's bbox becomes constant filters on the
   Overture `bbox` struct, which DuckDB pushes into the Parquet scan (row groups outside are never read).
3. `ST_Intersects` joins the surviving features with the footprints (DuckDB's spatial join) and the
   intersections are cut out in lon/lat; they are densified and projected into each chip's own UTM zone with
   pyproj (always_xy). DuckDB's `ST_Transform` per vertex was measured too (`projector="duckdb"`): it turns
   long lon/lat-straight edges into chords (~1e-5 relative area error), see bench/bench_overture.py.
4. Areas and lengths are measured in metres with shapely on the projected pieces; pieces of one
   (chip, type, subtype, class) that overlap are unioned first so overlapping features are not counted twice.

All clusters of a theme/type are one SQL statement (UNION ALL), so a shard costs one query per type, never one
per chip. Per-chip problems (an invalid footprint) become `FactsError`; problems of the source itself (a corrupt
file, a missing column) raise `OvertureSourceError`, because they would affect every chip.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import duckdb
import numpy as np
import pyarrow as pa
import shapely
from pyproj import Transformer
from shapely.affinity import translate
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from overture.connect import ensure_source
from overture.model import ClassArea, Facts, NamedFeature, RoadLength
from overture.source import FACT_TYPES, OvertureSource, OvertureSourceError
from sentinel.footprint import ChipLocation

log = logging.getLogger(__name__)

# Base types whose polygons become ClassArea rows, and those whose names become NamedFeature rows.
AREA_TYPES = ("land_use", "land_cover", "water", "land", "infrastructure")
NAMED_TYPES = ("water", "land_use", "land", "place")
# Chips whose footprint centres fall in one CLUSTER_DEG x CLUSTER_DEG cell share one bbox filter.
CLUSTER_DEG = 1.0
# Added around each cluster's bbox: Overture's bbox struct is float32 (~1e-5 deg rounding).
BBOX_MARGIN_DEG = 1e-4
# Named features kept per chip (largest first; places after areas and lines, by confidence).
MAX_NAMED = 24
# Pieces smaller than this (m2 / m) are slivers from touching geometries and are dropped.
MIN_AREA_M2 = 1e-6
MIN_LENGTH_M = 1e-6
# The lon/lat footprint is grown by this much (~1 m) for the DuckDB cut; the exact cut is the UTM square.
FOOTPRINT_PAD_DEG = 1e-5
# Lon/lat pieces are densified to this step (~50 m) before projection to UTM.
DENSIFY_DEG = 0.0005

# Columns every file of a type must have; optional columns (names, class, categories...) are used if present.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "land_use": ("id", "geometry", "bbox", "subtype", "class"),
    "land_cover": ("id", "geometry", "bbox", "subtype"),
    "water": ("id", "geometry", "bbox", "subtype", "class"),
    "land": ("id", "geometry", "bbox", "subtype", "class"),
    "infrastructure": ("id", "geometry", "bbox", "subtype", "class"),
    "building": ("id", "geometry", "bbox"),
    "place": ("id", "geometry", "bbox", "names"),
    "segment": ("id", "geometry", "bbox", "subtype", "class"),
}
BBOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class FactsError:
    """Why one chip has no facts (the other chips of the shard are unaffected)."""

    reason: str  # invalid_footprint | antimeridian
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass
class _Footprint:
    location_id: str
    crs: str
    parts: list[Polygon]  # lon/lat, padded by FOOTPRINT_PAD_DEG, split at +-180
    square: Polygon  # the exact chip square in its UTM zone: pieces are clipped to it after projection


@dataclass
class _Hits:
    """The intersected pieces of one theme/type, projected to each chip's UTM zone."""

    chip: list[str] = field(default_factory=list)
    fid: list[str | None] = field(default_factory=list)
    subtype: list[str | None] = field(default_factory=list)
    cls: list[str | None] = field(default_factory=list)
    name: list[str | None] = field(default_factory=list)
    score: list[float | None] = field(default_factory=list)
    geom: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))


# -- footprints ---------------------------------------------------------------------------------------------------


def split_antimeridian(poly: Polygon, pad_deg: float = 0.0) -> list[Polygon]:
    """A lon/lat polygon as parts inside [-180, 180], grown by `pad_deg`; a polygon whose longitudes jump
    across +-180 is unwrapped (negative longitudes + 360) and cut at 180."""
    minx, _, maxx, _ = poly.bounds
    if maxx - minx > 180.0:
        poly = shapely.transform(poly, lambda xy: np.column_stack(
            [np.where(xy[:, 0] < 0, xy[:, 0] + 360, xy[:, 0]), xy[:, 1]]))
        if not poly.is_valid or poly.bounds[2] - poly.bounds[0] > 180.0:
            raise ValueError(f"footprint bounds {poly.bounds} cannot be unwrapped across the antimeridian")
    if not poly.is_valid:
        raise ValueError(f"footprint bounds {poly.bounds}: not a valid polygon")
    if pad_deg > 0:
        poly = poly.buffer(pad_deg, join_style="mitre")
    east = poly.intersection(box(-180.0, -90.0, 180.0, 90.0))
    west = translate(poly.intersection(box(180.0, -90.0, 540.0, 90.0)), xoff=-360.0)
    parts = [p for g in (east, west) for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon) and p.area > 0]
    if not parts:
        raise ValueError(f"footprint bounds {poly.bounds}: splitting at the antimeridian left nothing")
    return parts


def _footprint(loc: ChipLocation) -> _Footprint | FactsError:
    try:
        poly = loc.lonlat_polygon
    except Exception as e:  # pyproj raises several types for impossible positions
        return FactsError("invalid_footprint", f"chip {loc.location_id}: cannot project its footprint ({e})")
    if poly.is_empty or not np.isfinite(poly.bounds).all() or loc.size_m <= 0:
        return FactsError("invalid_footprint",
                          f"chip {loc.location_id}: lon/lat footprint is empty or not finite "
                          f"(epsg {loc.epsg}, bounds {poly.bounds})")
    try:
        parts = split_antimeridian(poly, FOOTPRINT_PAD_DEG)
    except ValueError as e:
        reason = "antimeridian" if poly.bounds[2] - poly.bounds[0] > 180.0 else "invalid_footprint"
        return FactsError(reason, f"chip {loc.location_id}: {e}")
    return _Footprint(loc.location_id, f"EPSG:{loc.epsg}", parts, loc.utm_polygon)


def _register_chips(con: duckdb.DuckDBPyConnection, footprints: list[_Footprint]) -> list[tuple[int, tuple]]:
    """Write the footprint table `_ov_chips`; return (cluster, (xmin, ymin, xmax, ymax)) per cluster."""
    rows: dict[str, list] = defaultdict(list)
    clusters: dict[tuple[int, int], int] = {}
    cbounds: dict[int, list[float]] = {}
    for fp in footprints:
        for part in fp.parts:
            x0, y0, x1, y1 = part.bounds
            key = (math.floor((x0 + x1) / 2 / CLUSTER_DEG), math.floor((y0 + y1) / 2 / CLUSTER_DEG))
            k = clusters.setdefault(key, len(clusters))
            b = cbounds.setdefault(k, [x0, y0, x1, y1])
            b[:] = [min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)]
            rows["chip"].append(fp.location_id)
            rows["crs"].append(fp.crs)
            rows["cluster"].append(k)
            rows["wkb"].append(shapely.to_wkb(part))
    con.register("_ov_chips_arrow", pa.table(rows) if rows else pa.table(
        {"chip": pa.array([], pa.string()), "crs": pa.array([], pa.string()),
         "cluster": pa.array([], pa.int64()), "wkb": pa.array([], pa.binary())}))
    con.execute("CREATE OR REPLACE TEMP TABLE _ov_chips AS "
                "SELECT chip, crs, cluster, ST_GeomFromWKB(wkb) AS geom FROM _ov_chips_arrow")
    con.unregister("_ov_chips_arrow")
    m = BBOX_MARGIN_DEG
    return [(k, (b[0] - m, b[1] - m, b[2] + m, b[3] + m)) for k, b in sorted(cbounds.items())]


# -- schema checks ------------------------------------------------------------------------------------------------


def _columns(con: duckdb.DuckDBPyConnection, path: str) -> dict[str, str]:
    try:
        rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning=false)", [path]).fetchall()
    except duckdb.Error as e:
        raise OvertureSourceError(f"Overture file {path} cannot be read as Parquet: {_first_line(e)}") from None
    return {r[0]: r[1] for r in rows}


def _check_schema(con: duckdb.DuckDBPyConnection, files: list[str], type_: str) -> dict[str, str]:
    """Columns (name -> DuckDB type) shared by the files; raise naming the first file that lacks one we need."""
    common: dict[str, str] | None = None
    for path in files:
        cols = _columns(con, path)
        missing = [c for c in REQUIRED_COLUMNS[type_] if c not in cols]
        if missing:
            raise OvertureSourceError(f"Overture file {path} lacks column(s) {', '.join(missing)} required for "
                                      f"type={type_}: re-extract it from a complete release")
        bbox_type = cols["bbox"].lower()
        if not all(f in bbox_type for f in BBOX_FIELDS):
            raise OvertureSourceError(f"Overture file {path}: column bbox is {cols['bbox']}, expected a struct "
                                      f"{{xmin, ymin, xmax, ymax}}")
        common = cols if common is None else {k: v for k, v in common.items() if k in cols}
    return common or {}


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


# -- the query ----------------------------------------------------------------------------------------------------


def _select_exprs(type_: str, cols: dict[str, str], make_valid: bool) -> tuple[str, str]:
    """(column expressions, extra WHERE) for one type, from the columns the files actually have."""
    geom = "f.geometry" if cols["geometry"].upper().startswith("GEOMETRY") else "ST_GeomFromWKB(f.geometry)"
    if make_valid:
        geom = f"ST_MakeValid({geom})"
    name = 'f.names."primary"' if "primary" in cols.get("names", "").lower() else "NULL"
    subtype = "f.subtype" if "subtype" in cols else "NULL"
    if type_ == "place":
        cands = []
        if "basic_category" in cols:
            cands.append("CAST(f.basic_category AS VARCHAR)")
        if "categories" in cols and "primary" in cols["categories"]:
            cands.append('f.categories."primary"')
        if "taxonomy" in cols and "primary" in cols["taxonomy"]:
            cands.append('CAST(f.taxonomy."primary" AS VARCHAR)')
        cls = f"coalesce({', '.join(cands)})" if cands else "NULL"
        score = "CAST(f.confidence AS DOUBLE)" if "confidence" in cols else "NULL"
    else:
        cls = "f.class" if "class" in cols else "NULL"
        score = "NULL"
    where = "AND f.subtype = 'road'" if type_ == "segment" else ""
    return (f"f.id AS fid, {subtype} AS subtype, {cls} AS cls, {name} AS name, {score} AS score, {geom} AS g",
            where)


def _sql(files: list[str], type_: str, cols: dict[str, str], clusters: list[tuple[int, tuple]],
         make_valid: bool, projector: str) -> str:
    exprs, where = _select_exprs(type_, cols, make_valid)
    piece = "ST_Intersection(f.g, c.geom)"
    if projector == "duckdb":
        piece = f"ST_Transform({piece}, 'EPSG:4326', c.crs, always_xy := true)"
    src = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    parts = []
    for k, (x0, y0, x1, y1) in clusters:
        parts.append(
            f"SELECT c.chip, f.fid, f.subtype, f.cls, f.name, f.score, "
            f"ST_AsWKB({piece}) AS wkb, c.crs "
            f"FROM (SELECT {exprs} FROM read_parquet({src}, union_by_name=true, hive_partitioning=false) f "
            f"WHERE f.bbox.xmin <= {x1!r} AND f.bbox.xmax >= {x0!r} "
            f"AND f.bbox.ymin <= {y1!r} AND f.bbox.ymax >= {y0!r} {where}) f "
            f"JOIN (SELECT * FROM _ov_chips WHERE cluster = {k}) c ON ST_Intersects(f.g, c.geom)"
        )
    return "\nUNION ALL\n".join(parts)


def _query_type(con: duckdb.DuckDBPyConnection, source: OvertureSource, theme: str, type_: str,
                clusters: list[tuple[int, tuple]], projector: str) -> _Hits:
    files = source.files(theme, type_)
    if not files:
        log.info("Overture %s has no %s/%s files: treated as empty", source.root, theme, type_)
        return _Hits()
    cols = _check_schema(con, files, type_) if not source.is_remote else _columns(con, files[0])
    if source.is_remote:
        missing = [c for c in REQUIRED_COLUMNS[type_] if c not in cols]
        if missing:
            raise OvertureSourceError(f"Overture {files[0]} lacks column(s) {', '.join(missing)}")
    try:
        table = con.execute(_sql(files, type_, cols, clusters, False, projector)).to_arrow_table()
    except duckdb.IOException as e:
        raise OvertureSourceError(f"Overture {theme}/{type_} in {source.root}: {_first_line(e)}") from None
    except duckdb.Error as e:
        if "parquet" in str(e).lower():
            raise OvertureSourceError(f"Overture {theme}/{type_} in {source.root}: {_first_line(e)}") from None
        # A topology error from an invalid feature geometry: repair features and run once more.
        log.warning("Overture %s/%s: %s; retrying with ST_MakeValid", theme, type_, _first_line(e))
        try:
            table = con.execute(_sql(files, type_, cols, clusters, True, projector)).to_arrow_table()
        except duckdb.Error as e2:
            raise OvertureSourceError(f"Overture {theme}/{type_} in {source.root}: {_first_line(e2)}") from None
    d = table.to_pydict()
    geoms = shapely.from_wkb(np.asarray(d["wkb"], dtype=object))
    if projector == "pyproj":
        geoms = to_utm(geoms, np.asarray(d["crs"], dtype=object))
    return _Hits(d["chip"], d["fid"], d["subtype"], d["cls"], d["name"], d["score"], geoms)


@lru_cache(maxsize=64)
def _transformer(crs: str) -> Transformer:
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def to_utm(geoms: np.ndarray, crs: np.ndarray) -> np.ndarray:
    """Lon/lat pieces projected into each row's CRS, densified first so edges that are straight in lon/lat
    (Overture's planar edges) keep their shape in metres."""
    out = np.empty(len(geoms), dtype=object)
    if not len(geoms):
        return out
    dense = shapely.segmentize(geoms, DENSIFY_DEG)
    for c in np.unique(crs):
        sel = crs == c
        t = _transformer(str(c))
        out[sel] = shapely.transform(dense[sel], lambda xy, t=t: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    return out


# -- measuring ----------------------------------------------------------------------------------------------------


UNION_GRID_M = 0.01


def union_area(geoms: Sequence[BaseGeometry]) -> float:
    """Area covered by polygons, overlaps counted once (only the overlapping ones are unioned)."""
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        return 0.0
    if len(geoms) == 1:
        return float(geoms[0].area)
    arr = np.asarray(geoms, dtype=object)
    bad = ~shapely.is_valid(arr)
    if bad.any():  # clipped pieces of real data can self-intersect; GEOS refuses to union those
        arr[bad] = shapely.make_valid(arr[bad])
    tree = shapely.STRtree(arr)
    left, right = tree.query(arr, predicate="intersects")
    touching = np.unique(np.concatenate([left[left != right], right[left != right]]))
    alone = np.setdiff1d(np.arange(len(arr)), touching)
    area = float(shapely.area(arr[alone]).sum())
    if len(touching):
        try:
            merged = shapely.union_all(arr[touching])
        except shapely.errors.GEOSException:
            # snap rounding on a 1 cm grid is robust where floating-point overlay is not; the area moves < 1 m²
            merged = shapely.union_all(arr[touching], grid_size=UNION_GRID_M)
        area += float(merged.area)
    return area


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """The polygonal part of each piece (None where there is none): intersections of polygons can come back
    as collections holding lines or points where the shapes touch."""
    out = np.full(len(geoms), None, dtype=object)
    tid = shapely.get_type_id(geoms)
    keep = np.isin(tid, (3, 6)) & ~shapely.is_empty(geoms)
    out[keep] = geoms[keep]
    for i in np.flatnonzero(tid == 7):
        polys = [p for p in geoms[i].geoms if p.geom_type in ("Polygon", "MultiPolygon") and not p.is_empty]
        out[i] = shapely.union_all(polys) if polys else None
    return out


def _clip(geoms: np.ndarray, chips: list[str], squares: dict[str, Polygon]) -> np.ndarray:
    """Pieces cut to their chip's exact UTM square (only those whose bounds stick out need the cut)."""
    if not len(geoms):
        return geoms
    sq = np.asarray([squares[c] for c in chips], dtype=object)
    gb = shapely.bounds(geoms)
    sb = shapely.bounds(sq)
    out_of = ~((gb[:, 0] >= sb[:, 0]) & (gb[:, 1] >= sb[:, 1]) & (gb[:, 2] <= sb[:, 2]) & (gb[:, 3] <= sb[:, 3]))
    out = geoms.copy()
    out[out_of] = shapely.intersection(geoms[out_of], sq[out_of])
    return out


def _facts_from_hits(fps: list[_Footprint], size_m2: dict[str, float], hits: dict[str, _Hits]) -> dict[str, Facts]:
    facts = {fp.location_id: Facts(footprint_m2=size_m2[fp.location_id]) for fp in fps}
    named: dict[str, dict[tuple[str, str], tuple[float, NamedFeature]]] = defaultdict(dict)

    def add_named(chip: str, name: str | None, type_: str, subtype: str | None, cls: str | None, score: float):
        if not name:
            return
        key = (name, type_)
        old = named[chip].get(key)
        if old is None or old[0] < score:
            named[chip][key] = (score, NamedFeature(name, type_, subtype or "", cls or ""))

    squares = {fp.location_id: fp.square for fp in fps}
    for type_, h in hits.items():
        if not h.chip:
            continue
        h.geom = _clip(h.geom, h.chip, squares)
        inside = ~shapely.is_empty(h.geom)
        area = shapely.area(h.geom)
        length = shapely.length(h.geom)
        polys = _polygonal(h.geom) if type_ in AREA_TYPES or type_ == "building" else None
        if type_ in AREA_TYPES:
            assert polys is not None
            groups: dict[tuple, list] = defaultdict(list)
            for i, chip in enumerate(h.chip):
                poly = polys[i]
                if poly is not None and area[i] > MIN_AREA_M2:
                    groups[(chip, h.subtype[i] or "", h.cls[i] or "")].append(poly)
            for (chip, sub, cls), geoms in groups.items():
                a = union_area(geoms)
                f = facts[chip]
                f.classes.append(ClassArea(type_, sub, cls, a, min(a / f.footprint_m2, 1.0)))
        elif type_ == "building":
            assert polys is not None
            bgroups: dict[str, list] = defaultdict(list)
            ids: dict[str, set] = defaultdict(set)
            for i, chip in enumerate(h.chip):
                if not inside[i]:
                    continue
                ids[chip].add(h.fid[i] if h.fid[i] is not None else f"#{i}")
                poly = polys[i]
                if poly is not None:
                    bgroups[chip].append(poly)
            for chip, idset in ids.items():
                f = facts[chip]
                f.building_count = len(idset)
                f.building_fraction = min(union_area(bgroups[chip]) / f.footprint_m2, 1.0)
        elif type_ == "segment":
            lengths: dict[tuple[str, str], float] = defaultdict(float)
            for i, chip in enumerate(h.chip):
                if length[i] > MIN_LENGTH_M and area[i] == 0:
                    lengths[(chip, h.cls[i] or "unknown")] += float(length[i])
            for (chip, cls), m in lengths.items():
                facts[chip].roads.append(RoadLength(cls, m))
        elif type_ == "place":
            pids: dict[str, set] = defaultdict(set)
            for i, chip in enumerate(h.chip):
                if not inside[i]:
                    continue
                pids[chip].add(h.fid[i] if h.fid[i] is not None else f"#{i}")
                # places rank after every named area or line: score in [0, 1) below any m2 / m value >= 1
                add_named(chip, h.name[i], "place", h.subtype[i], h.cls[i], -1.0 + float(h.score[i] or 0.0) / 2)
            for chip, idset in pids.items():
                facts[chip].place_count = len(idset)
        if type_ in NAMED_TYPES and type_ != "place":
            for i, chip in enumerate(h.chip):
                if inside[i]:
                    add_named(chip, h.name[i], type_, h.subtype[i], h.cls[i], float(max(area[i], length[i])))

    for chip, f in facts.items():
        f.classes.sort(key=lambda c: (-c.area_m2, c.type, c.subtype, c.cls))
        f.roads.sort(key=lambda r: (-r.length_m, r.cls))
        ranked = sorted(named[chip].values(), key=lambda sn: (-sn[0], sn[1].name))
        f.named = [n for _, n in ranked[:MAX_NAMED]]
    return facts


def chip_facts(con: duckdb.DuckDBPyConnection, source: OvertureSource, locations: Sequence[ChipLocation],
               *, projector: str = "pyproj") -> dict[str, Facts | FactsError]:
    """Facts for every chip, keyed by location_id: one batched query per Overture theme/type for all chips.

    `projector` picks where pieces go to UTM: "pyproj" (default: densified, exact to the square metre) or
    "duckdb" (`ST_Transform` per vertex in the query; straight lon/lat edges become chords, ~1e-5 off)."""
    if projector not in ("pyproj", "duckdb"):
        raise ValueError(f"projector={projector!r}: use 'pyproj' or 'duckdb'")
    out: dict[str, Facts | FactsError] = {}
    fps: list[_Footprint] = []
    size_m2: dict[str, float] = {}
    for loc in locations:
        if loc.location_id in out or loc.location_id in size_m2:
            continue
        fp = _footprint(loc)
        if isinstance(fp, FactsError):
            out[loc.location_id] = fp
        else:
            fps.append(fp)
            size_m2[loc.location_id] = loc.size_m ** 2
    if not fps:
        return out
    ensure_source(con, source)
    clusters = _register_chips(con, fps)
    try:
        hits = {type_: _query_type(con, source, theme, type_, clusters, projector)
                for theme, type_ in FACT_TYPES}
    finally:
        con.execute("DROP TABLE IF EXISTS _ov_chips")
    out.update(_facts_from_hits(fps, size_m2, hits))
    return out
