"""Batched Overture facts query vs the naive per-chip query, on one synthetic region.

    python bench/bench_overture.py            # >= 100k features, 1,000 chips (about a minute on 2 cores)
    python bench/bench_overture.py --quick    # 20k features, 200 chips

The region is a Hilbert-sorted GeoParquet mirror in the Overture schema (land_use, land_cover, water, buildings,
places, road segments). "batched" is `chip_facts` for all chips at once (one query per theme/type); "naive" is
`chip_facts` called once per chip (the same SQL with one footprint, so 8 queries per chip), timed on a subset of
chips and scaled. Rows scanned per chip = rows in the Parquet row groups whose bbox statistics the query's bbox
filter cannot skip, divided by the chips served. Also compares where pieces are projected to UTM: pyproj after
densifying (default) vs DuckDB `ST_Transform` per vertex (speed and the largest area difference).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overture.connect import connect  # noqa: E402
from overture.model import Facts  # noqa: E402
from overture.query import BBOX_MARGIN_DEG, CLUSTER_DEG, chip_facts  # noqa: E402
from overture.source import OvertureSource  # noqa: E402
from sentinel.footprint import ChipLocation  # noqa: E402

LON0, LAT0 = 7.0, 50.0  # south-west corner of the region (UTM 32N)

# (theme, type, share of features, SQL for one feature from random columns r1..r4 in [0, 1))
KINDS = [
    ("base", "land_use", 0.12, "box", 0.002, 0.008,
     "['residential','farmland','industrial','park','meadow'][1 + (i % 5)::INT]", "NULL"),
    ("base", "land_cover", 0.08, "box", 0.004, 0.012, "NULL", "['forest','crop','grass','shrub'][1 + (i % 4)::INT]"),
    ("base", "water", 0.05, "box", 0.001, 0.004, "['lake','pond','reservoir'][1 + (i % 3)::INT]", "NULL"),
    ("buildings", "building", 0.55, "box", 0.0001, 0.0003, "NULL", "NULL"),
    ("places", "place", 0.10, "point", 0, 0, "NULL", "NULL"),
    ("transportation", "segment", 0.10, "line", 0.001, 0.006,
     "['residential','primary','service','track'][1 + (i % 4)::INT]", "NULL"),
]


def build_region(root: Path, n_features: int, span_lon: float, span_lat: float, con: duckdb.DuckDBPyConnection,
                 row_group_size: int = 4_096) -> None:
    for theme, type_, share, shape, dmin, dmax, cls, sub in KINDS:
        n = max(int(n_features * share), 1)
        d = root / f"theme={theme}" / f"type={type_}"
        d.mkdir(parents=True, exist_ok=True)
        x = f"({LON0} + random() * {span_lon})"
        y = f"({LAT0} + random() * {span_lat})"
        size = f"({dmin} + random() * {dmax - dmin})"
        geom = {
            "box": f"ST_MakeEnvelope(x, y, x + {size}, y + {size} * 0.7)",
            "point": "ST_Point(x, y)",
            "line": f"ST_MakeLine(ST_Point(x, y), ST_Point(x + {size}, y + {size} * (random() - 0.5)))",
        }[shape]
        subtype = "'road'" if type_ == "segment" else (sub if sub != "NULL" else cls)
        con.execute(f"""
            COPY (
              SELECT '{type_}-' || i AS id, g AS geometry,
                     struct_pack(xmin := ST_XMin(g)::FLOAT, xmax := ST_XMax(g)::FLOAT,
                                 ymin := ST_YMin(g)::FLOAT, ymax := ST_YMax(g)::FLOAT) AS bbox,
                     0 AS version, {subtype}::VARCHAR AS subtype, {cls}::VARCHAR AS class,
                     struct_pack("primary" := CASE WHEN i % 7 = 0 THEN 'Name ' || i END) AS names,
                     struct_pack("primary" := 'cafe') AS categories, 0.8 AS confidence,
                     [struct_pack(dataset := 'bench')] AS sources
              FROM (SELECT i, {geom} AS g FROM (SELECT range AS i, {x} AS x, {y} AS y FROM range({n})))
              ORDER BY ST_Hilbert(g, ST_MakeBox2D(ST_Point({LON0}, {LAT0}),
                                                  ST_Point({LON0 + span_lon}, {LAT0 + span_lat})))
            ) TO '{d / "part-00000.parquet"}' (FORMAT parquet, ROW_GROUP_SIZE {row_group_size})
        """)


def chip_grid(n_chips: int, span_lon: float, span_lat: float) -> list[ChipLocation]:
    cols = math.ceil(math.sqrt(n_chips * span_lon / span_lat))
    rows = math.ceil(n_chips / cols)
    out = []
    for k in range(n_chips):
        r, c = divmod(k, cols)
        lon = LON0 + (c + 0.5) * span_lon / cols
        lat = LAT0 + (r + 0.5) * span_lat / rows
        out.append(ChipLocation.around(lon, lat, location_id=f"chip{k:05d}", epsg=32632))
    return out


def row_groups(con: duckdb.DuckDBPyConnection, src: OvertureSource) -> list[tuple[int, float, float, float, float]]:
    """(rows, min xmin, max xmax, min ymin, max ymax) of every row group of every file, from Parquet stats."""
    out = []
    for theme, type_, *_ in KINDS:
        rows = con.execute(f"""
            SELECT file_name, row_group_id, any_value(row_group_num_rows),
                   min(CASE WHEN path_in_schema = 'bbox, xmin' THEN stats_min END::DOUBLE),
                   max(CASE WHEN path_in_schema = 'bbox, xmax' THEN stats_max END::DOUBLE),
                   min(CASE WHEN path_in_schema = 'bbox, ymin' THEN stats_min END::DOUBLE),
                   max(CASE WHEN path_in_schema = 'bbox, ymax' THEN stats_max END::DOUBLE)
            FROM parquet_metadata('{src.glob(theme, type_)}') GROUP BY ALL""").fetchall()
        out += [(r[2], r[3], r[4], r[5], r[6]) for r in rows]
    return out


def scanned(groups: list[tuple], boxes: list[tuple[float, float, float, float]]) -> int:
    """Rows DuckDB must read: per query box, the row groups its bbox filter cannot skip."""
    total = 0
    for x0, y0, x1, y1 in boxes:
        total += sum(n for n, gx0, gx1, gy0, gy1 in groups if gx0 <= x1 and gx1 >= x0 and gy0 <= y1 and gy1 >= y0)
    return total


def cluster_boxes(chips: list[ChipLocation]) -> list[tuple[float, float, float, float]]:
    cells: dict[tuple[int, int], list[float]] = {}
    for c in chips:
        x0, y0, x1, y1 = c.lonlat_bounds
        key = (math.floor((x0 + x1) / 2 / CLUSTER_DEG), math.floor((y0 + y1) / 2 / CLUSTER_DEG))
        b = cells.setdefault(key, [x0, y0, x1, y1])
        b[:] = [min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)]
    m = BBOX_MARGIN_DEG
    return [(b[0] - m, b[1] - m, b[2] + m, b[3] + m) for b in cells.values()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20k features, 200 chips")
    ap.add_argument("--features", type=int, default=None)
    ap.add_argument("--chips", type=int, default=None)
    ap.add_argument("--naive-chips", type=int, default=40, help="chips timed one by one (the rest is scaled)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    n_features = args.features or (20_000 if args.quick else 120_000)
    n_chips = args.chips or (200 if args.quick else 1_000)
    # a region of about n_chips chips side by side (2.64 km ~ 0.037 deg lon, 0.024 deg lat at 50 N)
    span_lon = 0.037 * math.sqrt(n_chips) * 1.6
    span_lat = 0.024 * math.sqrt(n_chips)

    con = connect(threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_region(Path(tmp), n_features, span_lon, span_lat, con)
        src = OvertureSource.local(tmp, release="bench")
        chips = chip_grid(n_chips, span_lon, span_lat)
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]  # type: ignore[index]
        print(f"region: {n_features:,} features over {span_lon:.2f} x {span_lat:.2f} deg, {n_chips:,} chips "
              f"(built in {time.perf_counter() - t0:.1f} s, {threads} DuckDB threads)")

        chip_facts(con, src, chips[:4])  # warm-up: file metadata, PROJ
        t0 = time.perf_counter()
        batched = chip_facts(con, src, chips)
        t_batch = time.perf_counter() - t0
        assert all(isinstance(f, Facts) for f in batched.values())

        subset = chips[:: max(len(chips) // args.naive_chips, 1)][: args.naive_chips]
        t0 = time.perf_counter()
        naive = {c.location_id: chip_facts(con, src, [c])[c.location_id] for c in subset}
        t_naive = (time.perf_counter() - t0) / len(subset) * len(chips)
        assert all(naive[k] == batched[k] for k in naive), "batched and per-chip facts differ"

        t0 = time.perf_counter()
        via_duckdb = chip_facts(con, src, chips, projector="duckdb")
        t_duck = time.perf_counter() - t0
        worst = 0.0
        for k, f in batched.items():
            g = via_duckdb[k]
            assert isinstance(f, Facts) and isinstance(g, Facts)
            a = {(c.type, c.subtype, c.cls): c.area_m2 for c in f.classes}
            b = {(c.type, c.subtype, c.cls): c.area_m2 for c in g.classes}
            worst = max([worst] + [abs(a[key] - b.get(key, 0.0)) for key in a])

        groups = row_groups(con, src)
        total_rows = sum(g[0] for g in groups)
        rows_batch = scanned(groups, cluster_boxes(chips)) / len(chips)
        m = BBOX_MARGIN_DEG
        rows_naive = scanned(groups, [(b[0] - m, b[1] - m, b[2] + m, b[3] + m)
                                      for b in (c.lonlat_bounds for c in subset)]) / len(subset)
    con.close()

    print(f"{'query':<34}{'chips/s':>10}{'seconds':>10}{'rows scanned/chip':>20}")
    print(f"{'batched (1 query per type)':<34}{len(chips) / t_batch:>10.1f}{t_batch:>10.2f}{rows_batch:>20,.0f}")
    print(f"{'naive (per chip), scaled':<34}{len(chips) / t_naive:>10.1f}{t_naive:>10.2f}{rows_naive:>20,.0f}")
    print(f"naive timed on {len(subset)} of {len(chips)} chips and scaled; same facts on those chips: yes")
    print(f"speed-up batched / naive: {t_naive / t_batch:.1f}x; rows scanned per chip: "
          f"{rows_naive / max(rows_batch, 1e-9):.1f}x fewer batched (of {total_rows:,} rows in the mirror)")
    print(f"projection: pyproj+densify {len(chips) / t_batch:.1f} chips/s vs DuckDB ST_Transform "
          f"{len(chips) / t_duck:.1f} chips/s; largest class-area difference {worst:.3f} m2")


if __name__ == "__main__":
    main()
