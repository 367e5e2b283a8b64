"""The batched facts query on GeoParquet in the real Overture schema with known geometry (asserted to 1 m2)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ovt_data import utm_to_lonlat
from shapely.geometry import LineString, Point, box

from overture.model import Facts
from overture.query import FactsError, chip_facts
from overture.source import OvertureSource, OvertureSourceError
from sentinel.footprint import ChipLocation

CHIP = ChipLocation.around(7.6, 50.35, location_id="koblenz")
S = CHIP.size_m
EMPTY = ChipLocation.around(8.5, 51.5, location_id="empty")


def _u(geom, loc: ChipLocation = CHIP):
    return utm_to_lonlat(geom, loc.epsg)


def _fixture(write) -> OvertureSource:
    x0, y0 = CHIP.x0, CHIP.y0
    write("base", "land_use", [
        {"geometry": _u(box(x0 - 500, y0 - S, x0 + S / 2, y0 + 500)), "subtype": "residential",
         "class": "residential"},
        # overlaps the first one: the union, not the sum, is counted
        {"geometry": _u(box(x0 + S / 4, y0 - S / 2, x0 + 3 * S / 4, y0)), "subtype": "residential",
         "class": "residential"},
        {"geometry": _u(box(x0 - 900, y0 - 900, x0 - 600, y0 - 600)), "subtype": "park", "class": "park",
         "name": "Outside Park"},
    ])
    write("base", "land_cover", [
        {"geometry": _u(box(x0 + 3 * S / 4, y0 - S - 1000, x0 + S + 1000, y0 - S / 2)), "subtype": "forest"},
    ])
    write("base", "water", [
        {"geometry": _u(box(x0 + 100, y0 - 300, x0 + 400, y0 - 100)), "subtype": "lake", "class": "lake",
         "name": "Testsee"},
        {"geometry": _u(LineString([(x0 + 1000, y0 + 200), (x0 + 1000, y0 - S - 200)])), "subtype": "river",
         "class": "river", "name": "Testbach"},
    ])
    write("buildings", "building", [
        {"geometry": _u(box(x0 + 500 + 100 * i, y0 - 500, x0 + 520 + 100 * i, y0 - 480)), "subtype": "residential",
         "class": "house"} for i in range(3)
    ] + [
        {"geometry": _u(box(x0 + S - 10, y0 - 50, x0 + S + 10, y0 - 30))},  # half inside: 10 x 20 m
        {"geometry": _u(box(x0 - 300, y0 - 300, x0 - 280, y0 - 280))},  # outside
    ])
    write("transportation", "segment", [
        {"geometry": _u(LineString([(x0 - 100, y0 - S / 2 + 1), (x0 + S + 100, y0 - S / 2 + 1)])), "subtype": "road",
         "class": "primary", "name": "B9"},
        {"geometry": _u(LineString([(x0 + 100, y0 - 100), (x0 + 100, y0 - 600)])), "subtype": "road",
         "class": "residential"},
        {"geometry": _u(LineString([(x0 - 100, y0 - 7), (x0 + S + 100, y0 - 7)])), "subtype": "rail",
         "class": "standard_gauge"},
    ])
    write("places", "place", [
        {"geometry": _u(Point(x0 + 50, y0 - 50)), "name": "Cafe Test", "category": "cafe", "confidence": 0.8},
        {"geometry": _u(Point(x0 + 60, y0 - 50)), "name": "Bakery Test", "category": "bakery", "confidence": 0.95},
        {"geometry": _u(Point(x0 - 60, y0 + 50)), "name": "Far Away", "category": "bar"},
    ])
    return OvertureSource.local(write.root, release="test-release")


def _area(f: Facts, type_: str, cls: str) -> float:
    return sum(c.area_m2 for c in f.classes if c.type == type_ and c.cls == cls)


def test_known_geometry_to_the_square_metre(con, overture_writer) -> None:
    src = _fixture(overture_writer)
    out = chip_facts(con, src, [CHIP, EMPTY])
    f = out["koblenz"]
    assert isinstance(f, Facts)
    assert f.footprint_m2 == pytest.approx(S * S)
    # residential: left half + the overlapping box's extra quarter-strip, overlap counted once
    assert _area(f, "land_use", "residential") == pytest.approx(5 / 8 * S * S, abs=1.0)
    assert f.fraction("land_use", "residential") == pytest.approx(5 / 8, abs=1e-6)
    assert _area(f, "land_cover", "") == pytest.approx(S * S / 8, abs=1.0)
    forest = next(c for c in f.classes if c.type == "land_cover")
    assert forest.subtype == "forest"
    assert _area(f, "water", "lake") == pytest.approx(60_000.0, abs=1.0)
    assert not any(c.cls == "park" for c in f.classes)  # outside the chip
    assert not any(c.cls == "river" for c in f.classes)  # a line has no area
    # classes are ordered by area, largest first
    assert [c.cls for c in f.classes] == ["residential", "", "lake"]

    assert f.building_count == 4
    assert f.building_fraction * S * S == pytest.approx(3 * 400 + 200, abs=1.0)

    roads = {r.cls: r.length_m for r in f.roads}
    assert roads == {"primary": pytest.approx(S, abs=0.01), "residential": pytest.approx(500.0, abs=0.01)}
    assert f.roads[0].cls == "primary"

    assert f.place_count == 2
    names = [(n.name, n.type, n.subtype, n.cls) for n in f.named]
    assert names[:2] == [("Testsee", "water", "lake", "lake"), ("Testbach", "water", "river", "river")]
    assert ("Bakery Test", "place", "", "bakery") in names and ("Cafe Test", "place", "", "cafe") in names
    assert names.index(("Bakery Test", "place", "", "bakery")) < names.index(("Cafe Test", "place", "", "cafe"))
    assert all(n.name != "Outside Park" and n.name != "Far Away" for n in f.named)

    e = out["empty"]
    assert isinstance(e, Facts)
    assert e == Facts(footprint_m2=pytest.approx(S * S))
    assert (e.classes, e.roads, e.named, e.building_count, e.place_count) == ([], [], [], 0, 0)


def test_batched_equals_per_chip(con, overture_writer) -> None:
    src = _fixture(overture_writer)
    inner = ChipLocation.around(*CHIP.center_lonlat, location_id="shifted")  # same grid, same chip
    batched = chip_facts(con, src, [CHIP, EMPTY, inner])
    for loc in (CHIP, EMPTY):
        alone = chip_facts(con, src, [loc])[loc.location_id]
        assert alone == batched[loc.location_id]
    assert batched["shifted"] == batched["koblenz"]


@pytest.mark.parametrize("style", ["categories", "basic_category", "none"])
def test_place_category_schemas(con, overture_writer, style: str) -> None:
    overture_writer("places", "place", [
        {"geometry": _u(Point(CHIP.x0 + 50, CHIP.y0 - 50)), "name": "Cafe Test", "category": "cafe"},
    ], place_style=style)
    f = chip_facts(con, OvertureSource.local(overture_writer.root), [CHIP])["koblenz"]
    assert isinstance(f, Facts) and f.place_count == 1
    assert f.named[0].cls == ("" if style == "none" else "cafe")


def test_antimeridian_chip(con, overture_writer) -> None:
    loc = ChipLocation.around(179.99, -16.5, location_id="fiji")
    assert loc.epsg == 32760
    fp = loc.lonlat_polygon
    assert fp.bounds[2] - fp.bounds[0] > 180  # the raw footprint wraps: it must be split
    # Overture splits features at +-180: one land_cover polygon on each side, together covering the chip
    overture_writer("base", "land_cover", [
        {"geometry": box(179.9, -16.6, 180.0, -16.4), "subtype": "forest"},
        {"geometry": box(-180.0, -16.6, -179.9, -16.4), "subtype": "forest"},
    ])
    overture_writer("base", "water", [
        {"geometry": box(-180.0, -16.6, -179.9, -16.4), "subtype": "ocean", "class": "ocean", "name": "Pacific"},
    ])
    overture_writer("buildings", "building", [
        {"id": "b-across", "geometry": _u(box(loc.x0 + 10, loc.y0 - 30, loc.x0 + 30, loc.y0 - 10), loc)},
    ])
    f = chip_facts(con, OvertureSource.local(overture_writer.root), [loc])["fiji"]
    assert isinstance(f, Facts)
    assert f.fraction("land_cover") == pytest.approx(1.0, abs=1e-6)
    assert _area(f, "land_cover", "") == pytest.approx(S * S, abs=1.0)
    # the west part (lon < -180 + ...): measured independently with pyproj/shapely in the chip's zone
    import shapely
    from pyproj import Transformer

    to_utm = Transformer.from_crs(4326, loc.epsg, always_xy=True).transform
    west = shapely.transform(box(180.0, -16.6, 180.1, -16.4).segmentize(0.0002), lambda x, y: to_utm(x, y),
                             interleaved=False).intersection(loc.utm_polygon)
    assert 0 < west.area < S * S
    assert _area(f, "water", "ocean") == pytest.approx(west.area, rel=1e-6)
    assert f.building_count == 1


def test_utm_zone_edge_chip_measured_in_its_own_zone(con, overture_writer) -> None:
    # centre just west of 6 E: zone 31, but the footprint spills into zone 32; the same place in zone 32 too
    z31 = ChipLocation.around(5.995, 50.0, location_id="z31")
    z32 = ChipLocation.around(5.995, 50.0, location_id="z32", epsg=32632)
    assert (z31.epsg, z32.epsg) == (32631, 32632)
    assert z31.lonlat_bounds[2] > 6.0
    overture_writer("base", "land_use", [
        {"geometry": _u(box(z31.x0, z31.y0 - S, z31.x0 + S, z31.y0 - S / 2), z31), "subtype": "agriculture",
         "class": "farmland"},
    ])
    overture_writer("transportation", "segment", [
        {"geometry": _u(LineString([(z32.x0 - 50, z32.y0 - 100), (z32.x0 + S + 50, z32.y0 - 100)]), z32),
         "subtype": "road", "class": "secondary"},
    ])
    out = chip_facts(con, OvertureSource.local(overture_writer.root), [z31, z32])
    a, b = out["z31"], out["z32"]
    assert isinstance(a, Facts) and isinstance(b, Facts)
    assert _area(a, "land_use", "farmland") == pytest.approx(S * S / 2, abs=1.0)
    assert b.roads[0].length_m == pytest.approx(S, abs=0.01)
    assert 0 < _area(b, "land_use", "farmland") < S * S  # the zone-31 rectangle seen from zone 32: rotated


def test_invalid_footprint_is_a_per_chip_error(con, overture_writer) -> None:
    overture_writer("base", "land_use", [
        {"geometry": _u(box(CHIP.x0, CHIP.y0 - S, CHIP.x0 + S, CHIP.y0)), "subtype": "park", "class": "park"},
    ])
    bad = ChipLocation("bad", 32632, float("nan"), 5_000_000.0)
    out = chip_facts(con, OvertureSource.local(overture_writer.root), [bad, CHIP])
    assert isinstance(out["bad"], FactsError) and out["bad"].reason == "invalid_footprint"
    assert "bad" in str(out["bad"])
    assert isinstance(out["koblenz"], Facts) and out["koblenz"].fraction("land_use", "park") == pytest.approx(1.0)


def test_missing_type_is_empty_with_a_note(con, overture_writer, caplog) -> None:
    overture_writer("base", "water", [
        {"geometry": _u(box(CHIP.x0, CHIP.y0 - S, CHIP.x0 + S, CHIP.y0)), "subtype": "lake", "class": "lake"},
    ])
    with caplog.at_level(logging.INFO, logger="overture.query"):
        f = chip_facts(con, OvertureSource.local(overture_writer.root), [CHIP])["koblenz"]
    assert isinstance(f, Facts) and f.fraction("water") == pytest.approx(1.0)
    assert f.building_count == 0 and f.roads == []
    assert "buildings/building" in caplog.text and "treated as empty" in caplog.text


def test_missing_column_names_the_file(con, overture_writer) -> None:
    path = overture_writer("base", "land_use", [
        {"geometry": _u(box(CHIP.x0, CHIP.y0 - S, CHIP.x0 + S, CHIP.y0)), "subtype": "park", "class": "park"},
    ], drop=("class",))
    with pytest.raises(OvertureSourceError, match=r"lacks column\(s\) class") as ei:
        chip_facts(con, OvertureSource.local(overture_writer.root), [CHIP])
    assert str(path) in str(ei.value) and "\n" not in str(ei.value)


def test_corrupt_parquet_names_the_file(con, overture_writer) -> None:
    overture_writer("base", "water", [
        {"geometry": _u(box(CHIP.x0, CHIP.y0 - S, CHIP.x0 + S, CHIP.y0)), "subtype": "lake", "class": "lake"},
    ])
    bad = Path(overture_writer.root) / "theme=base" / "type=water" / "part-00001.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet file at all" * 10)
    with pytest.raises(OvertureSourceError) as ei:
        chip_facts(con, OvertureSource.local(overture_writer.root), [CHIP])
    assert str(bad) in str(ei.value) and "\n" not in str(ei.value)


def test_missing_mirror_folder_says_the_fix(tmp_path) -> None:
    with pytest.raises(OvertureSourceError, match="does not exist: write one with overture.extract"):
        OvertureSource.local(tmp_path / "nope")


def test_union_area_survives_invalid_pieces() -> None:
    """A self-intersecting clipped piece (seen in a 10k-chip run) must not fail the chip or the shard."""
    from shapely.geometry import Polygon, box

    from overture.query import union_area

    bowtie = Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])  # invalid: two triangles of area 1 touching at (1, 1)
    assert not bowtie.is_valid
    assert union_area([bowtie, box(0, 0, 1, 1)]) == pytest.approx(2.5)
    assert union_area([box(0, 0, 1, 1), box(0.5, 0, 1.5, 1)]) == pytest.approx(1.5)
