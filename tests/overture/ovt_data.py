"""Writers for GeoParquet in the real Overture schema (DuckDB spatial, known geometry), used by the tests
and by bench/bench_overture.py."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from overture.connect import connect


def utm_to_lonlat(geom: BaseGeometry, epsg: int, step_m: float = 50.0) -> BaseGeometry:
    """A geometry drawn in UTM metres, densified and projected to lon/lat (as Overture stores it)."""
    t = Transformer.from_crs(epsg, 4326, always_xy=True)
    dense = geom.segmentize(step_m) if geom.geom_type != "Point" else geom
    return shapely.transform(dense, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


@lru_cache(maxsize=1)
def _writer_con() -> duckdb.DuckDBPyConnection:
    return connect(threads=1)


def write_overture(root: Path, theme: str, type_: str, features: list[dict[str, Any]],
                   name: str = "part-00000.parquet", drop: tuple[str, ...] = (),
                   place_style: str = "categories") -> Path:
    """Write one Overture GeoParquet file: id, geometry (WKB + GeoParquet metadata), bbox struct (float),
    subtype, class, names struct, sources list; places get `categories` (pre-2026) or
    `basic_category`/`taxonomy` (2026) or neither. `drop` removes columns (for the missing-column test)."""
    d = root / f"theme={theme}" / f"type={type_}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    geoms = [f["geometry"] for f in features]
    table = pa.table({
        "id": [f.get("id", f"{type_}-{i}") for i, f in enumerate(features)],
        "wkb": pa.array(shapely.to_wkb(geoms) if geoms else [], pa.binary()),
        "subtype": pa.array([f.get("subtype") for f in features], pa.string()),
        "class": pa.array([f.get("class") for f in features], pa.string()),
        "name": pa.array([f.get("name") for f in features], pa.string()),
        "category": pa.array([f.get("category") for f in features], pa.string()),
        "confidence": pa.array([f.get("confidence", 0.9) for f in features], pa.float64()),
    })
    place_cols = {
        "categories": ", struct_pack(\"primary\" := t.category, alternate := [t.category]) AS categories",
        "basic_category": ", t.category AS basic_category, struct_pack(\"primary\" := t.category, "
                          "hierarchy := [t.category]) AS taxonomy",
        "none": "",
    }[place_style] if type_ == "place" else ""
    extra = ", t.confidence AS confidence" if type_ == "place" else ""
    c = _writer_con().cursor()
    try:
        c.register("t", table)
        c.execute(
            "CREATE OR REPLACE TEMP TABLE feats AS SELECT t.id, ST_GeomFromWKB(t.wkb) AS geometry, t.subtype, "
            "t.class, t.name, t.category, t.confidence FROM t"
        )
        cols = {
            "id": "id",
            "geometry": "geometry",
            "bbox": "struct_pack(xmin := ST_XMin(geometry)::FLOAT, xmax := ST_XMax(geometry)::FLOAT, "
                    "ymin := ST_YMin(geometry)::FLOAT, ymax := ST_YMax(geometry)::FLOAT) AS bbox",
            "version": "0 AS version",
            "sources": "[struct_pack(property := '', dataset := 'test', record_id := id)] AS sources",
            "subtype": "subtype",
            "class": "class",
            "names": "struct_pack(\"primary\" := name, common := NULL::MAP(VARCHAR, VARCHAR)) AS names",
        }
        select = ", ".join(v for k, v in cols.items() if k not in drop)
        c.execute(f"COPY (SELECT {select}{place_cols.replace('t.', '')}{extra.replace('t.', '')} FROM feats) "
                  f"TO '{path}' (FORMAT parquet)")
    finally:
        c.close()
    return path
