"""Write a synthetic world's features as an Overture Maps-style GeoParquet mirror.

Layout and columns follow the real release: `<root>/theme=<t>/type=<y>/part-00000.parquet`, geometry in lon/lat
(EPSG:4326) as WKB with GeoParquet 1.1 `geo` metadata (the `bbox` struct declared as its covering), rows sorted
by bbox in small row groups so DuckDB can prune them the way it does on the S3 release.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS, Transformer

from overture.source import FACT_TYPES
from synthetic.world import Feature, World

# Every (theme, type) the facts query reads is written, empty if the world has none, so globs always match.
TYPES: tuple[tuple[str, str], ...] = FACT_TYPES
ROW_GROUP_SIZE = 2000

_BBOX = pa.struct([("xmin", pa.float32()), ("ymin", pa.float32()), ("xmax", pa.float32()), ("ymax", pa.float32())])
_SOURCES = pa.list_(pa.struct([("property", pa.string()), ("dataset", pa.string()), ("record_id", pa.string())]))
_COMMON = [
    ("id", pa.string()),
    ("geometry", pa.binary()),
    ("bbox", _BBOX),
    ("version", pa.int32()),
    ("sources", _SOURCES),
    ("subtype", pa.string()),
    ("class", pa.string()),
    ("names", pa.struct([("primary", pa.string())])),
]
_EXTRA: dict[str, list[tuple[str, pa.DataType]]] = {
    "place": [("categories", pa.struct([("primary", pa.string()), ("alternate", pa.list_(pa.string()))])),
              ("basic_category", pa.string()), ("confidence", pa.float64())],
    "building": [("height", pa.float64())],
    "water": [("is_salt", pa.bool_()), ("is_intermittent", pa.bool_())],
}


def schema_for(type_: str) -> pa.Schema:
    """The explicit Arrow schema of one Overture type's file."""
    return pa.schema([pa.field(n, t) for n, t in _COMMON + _EXTRA.get(type_, [])])


def _float32_outward(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round bbox edges to float32 so the box still contains the geometry (as Overture does)."""
    lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    lo32 = np.where(lo32 > lo, np.nextafter(lo32, np.float32(-np.inf)), lo32)
    hi32 = np.where(hi32 < hi, np.nextafter(hi32, np.float32(np.inf)), hi32)
    return lo32, hi32


def _table(world: World, type_: str, feats: Sequence[Feature], to_lonlat: Transformer) -> pa.Table:
    schema = schema_for(type_)
    if not feats:
        return schema.empty_table()
    geoms = np.array([f.geometry for f in feats], dtype=object)
    geoms = shapely.transform(geoms, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))
    b = shapely.bounds(geoms)
    xmin, xmax = _float32_outward(b[:, 0], b[:, 2])
    ymin, ymax = _float32_outward(b[:, 1], b[:, 3])
    # Sort by a coarse north-south band, then west to east: neighbours share row groups (bbox pruning).
    order = np.lexsort((b[:, 0], np.floor(b[:, 1] / 0.01)))
    feats = [feats[i] for i in order]
    geoms, xmin, ymin, xmax, ymax = geoms[order], xmin[order], ymin[order], xmax[order], ymax[order]
    dataset = {"buildings": "OpenStreetMap", "places": "meta", "base": "OpenStreetMap",
               "transportation": "OpenStreetMap"}
    cols: dict[str, object] = {
        "id": [f.id for f in feats],
        "geometry": shapely.to_wkb(geoms),
        "bbox": pa.StructArray.from_arrays([pa.array(a) for a in (xmin, ymin, xmax, ymax)],
                                           names=["xmin", "ymin", "xmax", "ymax"]),
        "version": [1] * len(feats),
        "sources": [[{"property": "", "dataset": dataset[f.theme], "record_id": f"synthetic-{world.seed}/{f.id}"}]
                    for f in feats],
        "subtype": [f.subtype for f in feats],
        "class": [f.cls for f in feats],
        "names": [{"primary": f.name} if f.name else None for f in feats],
    }
    if type_ == "place":
        cols["categories"] = [{"primary": f.category, "alternate": []} for f in feats]
        cols["basic_category"] = [f.basic_category for f in feats]
        cols["confidence"] = [0.9] * len(feats)
    elif type_ == "building":
        cols["height"] = [f.height for f in feats]
    elif type_ == "water":
        cols["is_salt"] = [False] * len(feats)
        cols["is_intermittent"] = [False] * len(feats)
    return pa.table({name: pa.array(cols[name], type=schema.field(name).type) if name != "bbox" else cols[name]
                     for name in schema.names}, schema=schema)


def _geo_metadata(table: pa.Table) -> bytes:
    geom_types: list[str] = []
    bbox = [-180.0, -90.0, 180.0, 90.0]
    if table.num_rows:
        geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
        names = {0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString",
                 6: "MultiPolygon", 7: "GeometryCollection"}
        geom_types = sorted({names[int(t)] for t in np.unique(shapely.get_type_id(geoms))})
        bbox = [float(v) for v in shapely.total_bounds(geoms)]
    meta = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {"geometry": {
            "encoding": "WKB", "geometry_types": geom_types, "bbox": bbox,
            "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
        }},
    }
    return json.dumps(meta).encode()


def write_overture(world: World, root: Path) -> dict[str, Path]:
    """Write the world's features under `root` in the Overture layout; returns {"theme/type": file}."""
    root = Path(root)
    to_lonlat = Transformer.from_crs(CRS.from_epsg(world.epsg), CRS.from_epsg(4326), always_xy=True)
    by_type: dict[tuple[str, str], list[Feature]] = {tt: [] for tt in TYPES}
    for f in world.features:
        by_type.setdefault((f.theme, f.type), []).append(f)
    out: dict[str, Path] = {}
    for (theme, type_), feats in by_type.items():
        table = _table(world, type_, feats, to_lonlat)
        table = table.replace_schema_metadata({b"geo": _geo_metadata(table)})
        folder = root / f"theme={theme}" / f"type={type_}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "part-00000.parquet"
        tmp = folder / ".part-00000.parquet.tmp"
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_SIZE, compression="zstd", write_statistics=True)
        tmp.replace(path)
        out[f"{theme}/{type_}"] = path
    return out
