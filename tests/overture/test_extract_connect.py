"""Region extracts (local source -> local mirror) and the offline DuckDB connection."""

from __future__ import annotations

import json

import duckdb
import pytest
from ovt_data import utm_to_lonlat
from shapely.geometry import box

from overture.connect import connect, ensure_source
from overture.extract import extract_region
from overture.query import chip_facts
from overture.source import OvertureSource, OvertureSourceError
from sentinel.footprint import ChipLocation

CHIP = ChipLocation.around(7.6, 50.35, location_id="c")


def test_extract_region_prunes_and_keeps_facts(con, overture_writer, tmp_path) -> None:
    S = CHIP.size_m
    far = [{"geometry": box(10 + i * 0.01, 40, 10.005 + i * 0.01, 40.005), "subtype": "park", "class": "park"}
           for i in range(50)]
    overture_writer("base", "land_use", far + [
        {"geometry": utm_to_lonlat(box(CHIP.x0, CHIP.y0 - S, CHIP.x0 + S / 2, CHIP.y0), CHIP.epsg),
         "subtype": "residential", "class": "residential"},
    ])
    overture_writer("buildings", "building", [
        {"geometry": utm_to_lonlat(box(CHIP.x0 + 10, CHIP.y0 - 30, CHIP.x0 + 30, CHIP.y0 - 10), CHIP.epsg)},
    ])
    src = OvertureSource.local(overture_writer.root, release="2099-01-01.0")
    w, s, e, n = CHIP.lonlat_bounds
    mirror = extract_region(src, (w - 0.01, s - 0.01, e + 0.01, n + 0.01), tmp_path / "mirror", con=con)
    assert mirror.release == "2099-01-01.0" and not mirror.is_remote
    assert mirror.available_types() == [("base", "land_use"), ("buildings", "building")]
    meta = json.loads((tmp_path / "mirror" / "_extract.json").read_text())
    assert meta["rows"] == {"base/land_use": 1, "buildings/building": 1} and meta["release"] == "2099-01-01.0"
    # the copy is GeoParquet with the bbox struct, and gives the same facts as the source
    path = mirror.glob("base", "land_use")
    kv = dict(con.execute(f"SELECT decode(key), decode(value) FROM parquet_kv_metadata('{path}')").fetchall())
    assert '"primary_column":"geometry"' in kv["geo"]
    assert chip_facts(con, mirror, [CHIP]) == chip_facts(con, src, [CHIP])


def test_extract_bad_bbox(overture_writer, tmp_path) -> None:
    overture_writer("base", "water", [{"geometry": box(0, 0, 1, 1), "subtype": "lake", "class": "lake"}])
    with pytest.raises(ValueError, match="bbox"):
        extract_region(OvertureSource.local(overture_writer.root), (0, 5, 1, 2), tmp_path / "m")


def test_connect_is_offline_with_spatial() -> None:
    c = connect(threads=1)
    try:
        assert c.execute("SELECT ST_Area(ST_GeomFromText('POLYGON((0 0,2 0,2 2,0 2,0 0))'))").fetchone() == (4.0,)
        settings = dict(c.execute("SELECT name, value FROM duckdb_settings() WHERE name LIKE 'auto%extensions'")
                        .fetchall())
        assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    finally:
        c.close()
    with pytest.raises(ValueError, match="threads"):
        connect(threads=0)


def test_s3_source_without_httpfs_says_what_to_do(tmp_path) -> None:
    c = connect(threads=1)
    try:
        c.execute(f"SET extension_directory='{tmp_path}'")  # nothing installed there; never download
        with pytest.raises(OvertureSourceError, match="--overture-path"):
            ensure_source(c, OvertureSource.s3("2025-10-22.0"), allow_install=False)
    finally:
        c.close()


def test_source_paths_and_validation(tmp_path) -> None:
    s3 = OvertureSource.s3("2025-10-22.0")
    assert s3.root == "s3://overturemaps-us-west-2/release/2025-10-22.0"
    assert s3.glob("base", "water") == "s3://overturemaps-us-west-2/release/2025-10-22.0/theme=base/type=water/*.parquet"
    assert OvertureSource.local(tmp_path).available_types() == []
    with pytest.raises(ValueError, match="release"):
        OvertureSource.s3("")
    with pytest.raises(ValueError, match="s3://"):
        OvertureSource(release="x", root="https://example.com/overture")
    assert isinstance(duckdb.__version__, str)
