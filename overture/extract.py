"""Write a bbox-pruned local mirror of an Overture source once, for repeated runs over one region.

The mirror has the release layout (`theme=<t>/type=<y>/part-00000.parquet`), keeps every column (GeoParquet
geometry + bbox struct), and is sorted along a Hilbert curve so the bbox filter of the facts query skips most
row groups. `_extract.json` beside it records the release, the bbox and where it came from.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import duckdb

from overture.connect import connect, ensure_source
from overture.source import FACT_TYPES, OvertureSource, OvertureSourceError

log = logging.getLogger(__name__)

ROW_GROUP_SIZE = 20_000


def check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees; west > east means the box crosses the antimeridian."""
    if len(bbox) != 4 or not all(isinstance(v, int | float) and math.isfinite(v) for v in bbox):
        raise ValueError(f"bbox {bbox!r}: give four finite numbers (west, south, east, north) in degrees")
    w, s, e, n = (float(v) for v in bbox)
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s < n <= 90) or w == e:
        raise ValueError(f"bbox {bbox!r}: need -180 <= west, east <= 180, west != east and -90 <= south < north "
                         f"<= 90 (west > east crosses the antimeridian)")
    return w, s, e, n


def _bbox_filter(w: float, s: float, e: float, n: float) -> str:
    lat = f"bbox.ymin <= {n!r} AND bbox.ymax >= {s!r}"
    if w <= e:
        return f"bbox.xmin <= {e!r} AND bbox.xmax >= {w!r} AND {lat}"
    return f"(bbox.xmax >= {w!r} OR bbox.xmin <= {e!r}) AND {lat}"


def extract_region(source: OvertureSource, bbox: Sequence[float], dest: Path,
                   types: Sequence[tuple[str, str]] = FACT_TYPES, con: duckdb.DuckDBPyConnection | None = None,
                   row_group_size: int = ROW_GROUP_SIZE) -> OvertureSource:
    """Copy the features whose bbox meets `bbox` into the mirror `dest`; return it as a local source."""
    w, s, e, n = check_bbox(bbox)
    if row_group_size < 1:
        raise ValueError(f"row_group_size={row_group_size}: give a positive row count")
    dest = Path(dest)
    if not source.is_remote and Path(source.root).resolve() == dest.resolve():
        raise ValueError(f"extract destination {dest} is the source itself: choose another folder")
    dest.mkdir(parents=True, exist_ok=True)
    own = con is None
    con = con or connect()
    try:
        ensure_source(con, source)
        written: dict[str, int] = {}
        for theme, type_ in types:
            files = source.files(theme, type_)
            if not files:
                log.info("Overture %s has no %s/%s files: nothing to extract", source.root, theme, type_)
                continue
            out_dir = dest / f"theme={theme}" / f"type={type_}"
            tmp = out_dir.with_name(out_dir.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            src = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
            hx0, hx1 = (w, e) if w <= e else (-180.0, 180.0)
            sql = (
                f"COPY (SELECT * FROM read_parquet({src}, union_by_name=true, hive_partitioning=false) "
                f"WHERE {_bbox_filter(w, s, e, n)} "
                f"ORDER BY ST_Hilbert(ST_Point((bbox.xmin + bbox.xmax) / 2, (bbox.ymin + bbox.ymax) / 2), "
                f"ST_MakeBox2D(ST_Point({hx0!r}, {s!r}), ST_Point({hx1!r}, {n!r})))) "
                f"TO '{tmp / 'part-00000.parquet'}' (FORMAT parquet, ROW_GROUP_SIZE {row_group_size}, "
                f"COMPRESSION zstd)"
            )
            try:
                con.execute(sql)
            except duckdb.Error as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                first = str(exc).strip().splitlines()[0]
                raise OvertureSourceError(f"extracting Overture {theme}/{type_} from {source.root}: {first}") from None
            rows = con.execute(f"SELECT count(*) FROM read_parquet('{tmp / 'part-00000.parquet'}')").fetchone()
            written[f"{theme}/{type_}"] = int(rows[0]) if rows else 0
            shutil.rmtree(out_dir, ignore_errors=True)
            os.replace(tmp, out_dir)
        meta = {"release": source.release, "source": source.root, "bbox": [w, s, e, n], "rows": written}
        (dest / "_extract.json").write_text(json.dumps(meta, indent=2) + "\n")
    finally:
        if own:
            con.close()
    return OvertureSource.local(dest, source.release)
