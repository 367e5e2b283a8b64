"""The Overture mirror: real GeoParquet that DuckDB spatial (loaded offline from its wheel) reads."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from synthetic.overture import TYPES, write_overture
from synthetic.world import make_world


def _connect() -> duckdb.DuckDBPyConnection:
    try:
        import duckdb_extension_spatial
    except ImportError:
        pytest.skip("duckdb-extension-spatial is not installed")
    ext = (Path(duckdb_extension_spatial.__file__).parent / "extensions" / f"v{duckdb.__version__}"
           / "spatial.duckdb_extension")
    if not ext.is_file():
        pytest.skip(f"no spatial extension for duckdb {duckdb.__version__} in the wheel")
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    con.execute(f"LOAD '{ext}'")
    return con


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    world = make_world((10.9, 47.4), 3, 2, seed=0)
    root = tmp_path_factory.mktemp("overture")
    return world, root, write_overture(world, root)


def test_layout_is_the_overture_release_layout(mirror):
    world, root, paths = mirror
    for theme, type_ in TYPES:
        p = root / f"theme={theme}" / f"type={type_}" / "part-00000.parquet"
        assert p.is_file() and paths[f"{theme}/{type_}"] == p


def test_columns_and_geo_metadata(mirror):
    _, root, paths = mirror
    for key, path in paths.items():
        f = pq.ParquetFile(path)
        schema = f.schema_arrow
        for col in ("id", "geometry", "bbox", "subtype", "class", "names", "sources", "version"):
            assert col in schema.names, (key, col)
        assert str(schema.field("bbox").type) == "struct<xmin: float, ymin: float, xmax: float, ymax: float>"
        assert str(schema.field("names").type) == "struct<primary: string>"
        assert "dataset: string" in str(schema.field("sources").type)
        geo = json.loads(schema.metadata[b"geo"])
        assert geo["primary_column"] == "geometry"
        assert geo["columns"]["geometry"]["encoding"] == "WKB"
        assert geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    places = pq.read_schema(paths["places/place"])
    assert str(places.field("categories").type).startswith("struct<primary: string")
    assert places.field("basic_category").type == "string"


def test_duckdb_spatial_reads_lonlat_geometries_inside_their_bbox(mirror):
    world, root, _ = mirror
    con = _connect()
    glob = f"{root}/theme=*/type=*/*.parquet"
    rows = con.execute(f"""
        SELECT type, count(*),
               bool_and(ST_XMin(geometry) >= bbox.xmin AND ST_XMax(geometry) <= bbox.xmax
                        AND ST_YMin(geometry) >= bbox.ymin AND ST_YMax(geometry) <= bbox.ymax)
        FROM read_parquet('{glob}', hive_partitioning = true) GROUP BY type""").fetchall()
    counts = {t: (n, inside) for t, n, inside in rows}
    for t in ("land_use", "land_cover", "water", "land", "building", "place", "segment"):
        assert counts[t][0] > 0 and counts[t][1], t
    assert sum(n for n, _ in counts.values()) == len(world.features)
    W, S, E, N = world.full_bbox
    (xmin, ymin, xmax, ymax), = con.execute(
        f"SELECT min(bbox.xmin), min(bbox.ymin), max(bbox.xmax), max(bbox.ymax) FROM read_parquet('{glob}')"
    ).fetchall()
    assert W - 1e-4 <= xmin and xmax <= E + 1e-4 and S - 1e-4 <= ymin and ymax <= N + 1e-4


def test_named_features_and_areas_survive_the_trip(mirror):
    world, root, _ = mirror
    con = _connect()
    lake = next(f for f in world.features if f.subtype == "lake")
    (area,), = con.execute(f"""
        SELECT ST_Area(ST_Transform(geometry, 'EPSG:4326', 'EPSG:{world.epsg}', always_xy := true))
        FROM read_parquet('{root}/theme=base/type=water/*.parquet') WHERE names.primary = ?""",
                           [lake.name]).fetchall()
    assert area == pytest.approx(lake.geometry.area, rel=1e-3)
    places = con.execute(f"""SELECT names.primary, categories.primary, basic_category
        FROM read_parquet('{root}/theme=places/type=place/*.parquet')""").fetchall()
    assert places and all(name and cat and basic for name, cat, basic in places)
    segments = f"{root}/theme=transportation/type=segment/*.parquet"
    roads = dict(con.execute(f"""SELECT class, sum(ST_Length(ST_Transform(geometry, 'EPSG:4326',
        'EPSG:{world.epsg}', always_xy := true))) FROM read_parquet('{segments}')
        WHERE subtype = 'road' GROUP BY class""").fetchall())
    assert set(roads) == {"primary", "secondary", "residential"} and roads["primary"] > 1000
