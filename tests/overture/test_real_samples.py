"""The real Overture samples in ../shared/data/overture read without error and give the expected classes."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely
from conftest import SHARED_OVERTURE

from overture.model import Facts
from overture.query import chip_facts
from overture.source import OvertureSource
from sentinel.footprint import ChipLocation

BUILDINGS = SHARED_OVERTURE / "geoarrow-rs_overture_buildings_2024-07-22.parquet"
INFRA = SHARED_OVERTURE / "geoarrow-rs_overture_infrastructure_2024-07-22.parquet"


def _mirror(tmp_path: Path, sample: Path, theme: str, type_: str) -> OvertureSource:
    if not sample.is_file():
        pytest.skip(f"real Overture sample {sample.name} is absent (../shared/data not beside the checkout)")
    d = tmp_path / "mirror" / f"theme={theme}" / f"type={type_}"
    d.mkdir(parents=True)
    (d / "part-00000.parquet").symlink_to(sample.resolve())
    return OvertureSource.local(tmp_path / "mirror", release="2024-07-22.0")


def test_real_buildings_near_koblenz(con, tmp_path) -> None:
    src = _mirror(tmp_path, BUILDINGS, "buildings", "building")
    chip = ChipLocation.around(7.3961, 50.3462, location_id="koblenz")
    f = chip_facts(con, src, [chip])["koblenz"]
    assert isinstance(f, Facts)
    # every one of the 100 real buildings lies inside this 2.64 km chip
    rows = con.execute(f"SELECT count(*), sum(ST_Intersects(geometry, ST_GeomFromWKB(?))::INT) "
                       f"FROM read_parquet('{BUILDINGS}')", [shapely.to_wkb(chip.lonlat_polygon)]).fetchone()
    assert rows == (100, f.building_count)
    assert f.building_count > 90
    # ~9,400 m2 of footprints (measured in UTM 32N) of a 6.97 km2 chip
    assert 9_000 < f.building_fraction * f.footprint_m2 < 10_000
    assert f.classes == [] and f.roads == []


def test_real_infrastructure_in_dalkey(con, tmp_path) -> None:
    src = _mirror(tmp_path, INFRA, "base", "infrastructure")
    chip = ChipLocation.around(-6.1018, 53.2723, location_id="dalkey")
    f = chip_facts(con, src, [chip])["dalkey"]
    assert isinstance(f, Facts)
    # the sample's two polygons: a pier and a parking lot; points and lines have no area
    assert {(c.type, c.subtype, c.cls) for c in f.classes} == {("infrastructure", "pier", "pier"),
                                                                 ("infrastructure", "transit", "parking")}
    assert all(0 < c.fraction < 0.01 for c in f.classes)
    # infrastructure names are not in NAMED_TYPES (bridges, bus stops would crowd the tags)
    assert f.named == []
