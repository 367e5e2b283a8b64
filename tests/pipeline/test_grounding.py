"""Grounding rules on hand-made SCL scenes and facts, and on the real chips' land-cover rasters."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from overture.model import ClassArea, Facts, NamedFeature, RoadLength
from pipeline.grounding import (
    CHECKS,
    GROUNDING_REASONS,
    GroundingConfig,
    check_grounding,
    count_components,
    find_names,
    ground_sample,
    landcover_evidence,
    parse_measure,
    scene_evidence,
    scl_evidence,
)

EMPTY = Facts(footprint_m2=2640.0**2)


def scl_of(**fractions: float) -> np.ndarray:
    """A 100x100 SCL array filled class by class in row blocks: scl_of(vegetation=0.7, water=0.3)."""
    codes = {"vegetation": 4, "not_vegetated": 5, "water": 6, "snow": 11, "cloud": 9}
    scl = np.full((100, 100), 4, dtype=np.uint8)
    row = 0
    for name, frac in fractions.items():
        n = round(frac * 100)
        scl[row : row + n] = codes[name]
        row += n
    return scl


def reasons(caption: str, facts: Facts | None, evidence: dict[str, float], **kw) -> dict[str, tuple[str, ...]]:
    return {i.reason: i.words for i in check_grounding(caption, facts=facts, evidence=evidence, **kw)}


def test_rule_table_covers_every_reason() -> None:
    assert set(CHECKS) == set(GROUNDING_REASONS)
    assert len(set(GROUNDING_REASONS)) == len(GROUNDING_REASONS) == 8


def test_count_components() -> None:
    m = np.zeros((12, 12), dtype=bool)
    m[0, 0:3] = m[1, 2] = True  # an L: one region of 4 pixels
    m[5, 5:9] = m[6, 5] = m[7, 5:9] = True  # a C shape: one region
    m[11, :] = True
    m[10, 0] = True
    m[3, 10] = True  # a single pixel
    assert count_components(m) == 4
    assert count_components(m, min_pixels=5) == 2
    ring = np.ones((9, 9), dtype=bool)
    ring[2:7, 2:7] = False
    ring[4, 4] = True  # an island inside a ring
    assert count_components(ring) == 2
    assert count_components(np.zeros((5, 5), dtype=bool)) == 0


def _bfs_components(mask: np.ndarray, min_pixels: int) -> int:
    seen = np.zeros_like(mask)
    count = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        stack, size = [start], 0
        seen[start] = True
        while stack:
            r, c = stack.pop()
            size += 1
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1] and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    stack.append((rr, cc))
        count += size >= min_pixels
    return count


@pytest.mark.parametrize("density", [0.1, 0.45, 0.6])
def test_count_components_matches_flood_fill(density: float) -> None:
    mask = np.random.default_rng(int(density * 100)).random((60, 70)) < density
    for min_pixels in (1, 3, 20):
        assert count_components(mask, min_pixels) == _bfs_components(mask, min_pixels)


def test_scl_evidence_fractions() -> None:
    ev = scl_evidence(scl_of(water=0.2, snow=0.1, cloud=0.05, not_vegetated=0.15), water_body_min_pixels=20)
    assert ev["water"] == pytest.approx(0.2)
    assert ev["snow"] == pytest.approx(0.1)
    assert ev["cloud"] == pytest.approx(0.05)
    assert ev["not_vegetated"] == pytest.approx(0.15)
    assert ev["vegetation"] == pytest.approx(0.5)
    assert ev["water_bodies"] == 1


def test_scene_evidence_from_sample(sample_factory) -> None:
    assert scene_evidence(sample_factory(scl=scl_of(snow=1.0)))["snow"] == 1.0
    stored = scene_evidence(sample_factory(cloud_fraction=0.07))
    assert stored == {"cloud": 0.07}  # no SCL array: only what the record keeps


def test_water_rule() -> None:
    dry = scl_evidence(scl_of(vegetation=0.6, not_vegetated=0.4))
    assert reasons("A large lake lies at the centre of the fields.", EMPTY, dry) == {"grounding_water": ("lake",)}
    assert "grounding_water" in reasons("A large lake.", None, dry)  # no facts: the scene decides
    # Overture knows a pond the scene missed (too small / shaded): not contradicted
    pond = Facts(footprint_m2=7e6, classes=[ClassArea("water", "pond", "pond", 900.0, 0.0001)])
    assert reasons("A small pond near the fields.", pond, dry) == {}
    wet = scl_evidence(scl_of(water=0.05))
    assert reasons("A large lake lies at the centre of the fields.", EMPTY, wet) == {}
    # negations are not claims; a clause break ends the negation
    assert reasons("Dry fields with no lakes, rivers or other water.", EMPTY, dry) == {}
    assert reasons("No buildings, but a large lake.", EMPTY, dry) == {"grounding_water": ("lake",)}
    # no scene evidence at all: the facts alone do not convict
    assert reasons("A large lake.", EMPTY, {}) == {}


def test_urban_rule() -> None:
    snow = scl_evidence(scl_of(snow=1.0))
    got = reasons("A dense city with many buildings and busy streets.", EMPTY, snow)
    assert got == {"grounding_urban": ("city", "buildings", "streets")}
    town = Facts(footprint_m2=7e6, building_count=120, roads=[RoadLength("residential", 5000.0)])
    assert reasons("A small town covered by snow.", town, snow) == {}
    fields = scl_evidence(scl_of(vegetation=0.9, not_vegetated=0.1))
    assert reasons("A dense city with many buildings.", EMPTY, fields) == {}  # SCL cannot rule a city out here


def test_snow_rule() -> None:
    green = scl_evidence(scl_of(vegetation=1.0))
    assert reasons("Snow-covered fields and a frozen lake.", None, green) == {
        "grounding_snow": ("Snow-covered", "frozen"),
        "grounding_water": ("lake",),
    }
    glacier = Facts(footprint_m2=7e6, classes=[ClassArea("land", "glacier", "glacier", 1e6, 0.2)])
    assert "grounding_snow" not in reasons("A glacier in the mountains.", glacier, green)
    assert reasons("Snow covers the fields.", None, scl_evidence(scl_of(snow=0.3))) == {}


def test_farmland_rule() -> None:
    bare = scl_evidence(scl_of(not_vegetated=0.97))
    assert reasons("Irrigated farmland and orchards.", EMPTY, bare) == {"grounding_farmland": ("farmland", "orchards")}
    farm = Facts(footprint_m2=7e6, classes=[ClassArea("land_use", "agriculture", "farmland", 5e6, 0.7)])
    assert reasons("Ploughed farmland after the harvest.", farm, bare) == {}  # winter fields are not vegetated
    assert reasons("Irrigated farmland.", EMPTY, scl_evidence(scl_of(vegetation=0.5))) == {}


def test_find_names() -> None:
    assert find_names("Lake Geneva lies to the north. The Danube flows past.") == ["Lake Geneva", "Danube"]
    assert find_names("Fields near the Gulf of Mexico and the Rio de la Plata.") == [
        "Gulf of Mexico",
        "Rio de la Plata",
    ]
    assert find_names("This Sentinel-2 RGB image from June shows fields. Snow covers the north.") == []
    assert find_names("Aerial View Of Green Farmland Near A Winding River") == []  # Title Case carries no signal
    assert find_names("Green fields. Several farms are scattered around.") == []


def test_name_rule() -> None:
    facts = Facts(footprint_m2=7e6, named=[NamedFeature("Lake Geneva", "water", "lake", "lake")])
    ev = scl_evidence(scl_of(water=0.4))
    assert reasons("The shore of Lake Geneva with vineyards.", facts, ev) == {}
    assert reasons("The shore of Lake Constance near Zurich.", facts, ev) == {
        "grounding_name": ("Lake Constance", "Zurich")
    }
    assert reasons("Vineyards above Lausanne.", facts, ev, tags=["Lausanne"]) == {}


def test_count_rule() -> None:
    one_lake = Facts(footprint_m2=7e6, classes=[ClassArea("water", "lake", "lake", 1e5, 0.01)])
    assert reasons("Two bodies of water among fields.", one_lake, {}) == {"grounding_count": ("Two bodies of water",)}
    assert reasons("Three small, dark lakes among fields.", one_lake, {}) == {
        "grounding_count": ("Three small, dark lakes",)
    }
    assert reasons("A lake among fields.", one_lake, {}) == {}
    two_named = Facts(
        footprint_m2=7e6,
        named=[NamedFeature("Nørresø", "water", "lake", "lake"), NamedFeature("Søndersø", "water", "lake", "lake")],
    )
    assert reasons("Two bodies of water among fields.", two_named, {}) == {}
    assert reasons("Two bodies of water among fields.", None, {}) == {}  # nothing known: no claim checked


def test_measure_rule() -> None:
    assert parse_measure("1,200", "hectares") == ("area", 12_000_000.0)
    assert parse_measure("2.5", "km") == ("length", 2500.0)
    chip = (2640.0, 2640.0)
    got = reasons("The river is approximately 500 kilometers long.", None, {}, chip_m=chip)
    assert got == {"grounding_measure": ("500 kilometers",)}
    assert reasons("A 3 km stretch of road and a 200 m wide river.", None, {}, chip_m=chip) == {}
    assert reasons("Fields covering 20 square kilometers.", None, {}, chip_m=chip) == {
        "grounding_measure": ("20 square kilometers",)
    }
    assert reasons("A 12-mile beach.", None, {}, chip_m=chip) == {"grounding_measure": ("12-mile",)}


def test_speculative_rule() -> None:
    got = reasons("Healthy and dying plants, with cars on the roads.", None, {})
    assert got == {"grounding_speculative": ("Healthy", "dying", "cars")}
    off = GroundingConfig(rules=tuple(r for r in GROUNDING_REASONS if r != "grounding_speculative"))
    assert reasons("Healthy and dying plants.", None, {}, cfg=off) == {}


def test_ground_sample_uses_scl_and_chip_size(sample_factory) -> None:
    s = sample_factory(
        caption="A dense city on a frozen plain, about 5 km across.",
        scl=scl_of(snow=1.0),
        facts=EMPTY,
        utm_bounds=(0.0, 0.0, 2640.0, 2640.0),
    )
    assert [i.reason for i in ground_sample(s)] == ["grounding_urban", "grounding_measure"]
    big = sample_factory(caption=s.caption, scl=s.scl, facts=EMPTY, utm_bounds=(0.0, 0.0, 10_000.0, 10_000.0))
    assert [i.reason for i in ground_sample(big)] == ["grounding_urban"]


# --- the real chips and their land-cover rasters (../shared/data/s2) --------------------------------------------

NAMES = {
    "water": "open water",
    "trees": "trees",
    "flooded_vegetation": "wetland",
    "crops": "cropland",
    "built": "built-up areas",
    "bare": "bare ground",
    "snow": "snow and ice",
    "rangeland": "grassland",
}

# a deliberately wrong caption per chip, and the reason it must be flagged with
WRONG = {
    "282D_485L_3_3": ("A dense city with tall buildings and busy streets fills the whole scene.", "grounding_urban"),
    "38D_378R_2_3": ("A large lake with a sandy shore lies in the middle of the scene.", "grounding_water"),
    "433D_629L_3_1": ("Snow-covered mountains and glaciers dominate the whole scene.", "grounding_snow"),
    "609U_541L_3_0": ("A dense city with many buildings and streets seen from above.", "grounding_urban"),
    "637U_59R_1_3": ("A wide river flows into the sea next to a busy harbour.", "grounding_water"),
}


def plain_caption(ev: dict[str, float]) -> str:
    """What a facts captioner says: the land-cover classes over 5 % of the chip, largest first."""
    parts = [NAMES[k] for k, v in sorted(ev.items(), key=lambda kv: -kv[1]) if k in NAMES and v >= 0.05]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"A Sentinel-2 view of an area covered mostly by {listed}."


def chip_m(path) -> tuple[float, float]:
    with rasterio.open(path) as ds:
        return ds.bounds.right - ds.bounds.left, ds.bounds.top - ds.bounds.bottom


@pytest.mark.parametrize("chip", sorted(WRONG))
def test_real_chips_wrong_caption_flagged_plain_caption_kept(shared_data, chip: str) -> None:
    lulc = shared_data / "s2" / "lulc" / f"{chip}.tif"
    if not lulc.is_file():
        pytest.skip(f"{lulc} is absent")
    ev = landcover_evidence(lulc)
    size = chip_m(lulc)
    wrong, reason = WRONG[chip]
    got = reasons(wrong, None, ev, chip_m=size)
    assert reason in got, f"{chip}: {wrong!r} not flagged ({ev})"
    assert got[reason]  # the offending words are named

    plain = plain_caption(ev)
    assert reasons(plain, None, ev, chip_m=size) == {}, f"{chip}: {plain!r} flagged"
    # the seed study's invented measurement is caught on every chip
    assert "grounding_measure" in reasons("The river is approximately 500 kilometers long.", None, ev, chip_m=size)


def test_real_chip_land_cover_fractions(shared_data) -> None:
    lulc = shared_data / "s2" / "lulc"
    if not lulc.is_dir():
        pytest.skip(f"{lulc} is absent")
    snow = landcover_evidence(lulc / "609U_541L_3_0.tif")
    assert snow["snow"] == 1.0 and snow["built"] == 0.0 and snow["water_bodies"] == 0
    bay = landcover_evidence(lulc / "282D_485L_3_3.tif")
    assert bay["water"] == pytest.approx(0.52, abs=0.01) and bay["water_bodies"] >= 1
    tanzania = landcover_evidence(lulc / "38D_378R_2_3.tif")
    assert tanzania["crops"] + tanzania["rangeland"] == pytest.approx(1.0)
    # the farmland and snow claims are checked on the same evidence
    assert "grounding_farmland" in reasons("Irrigated cropland.", None, snow)
    assert "grounding_snow" in reasons("A snowy plain.", None, tanzania)


def _facts_caption(facts: Facts | None, scene: dict[str, float]) -> str:
    from pipeline.captioners.base import CaptionRequest
    from pipeline.captioners.facts import FactsCaptioner

    req = CaptionRequest(sample_id="x", image_png=b"", tags=[], facts=facts, scene_fractions=scene)
    caption = FactsCaptioner().caption_batch([req])[0].caption
    assert caption
    return caption


@pytest.mark.parametrize("chip", sorted(WRONG))
def test_real_chips_facts_captioner_is_not_flagged(shared_data, chip: str) -> None:
    lulc = shared_data / "s2" / "lulc" / f"{chip}.tif"
    if not lulc.is_file():
        pytest.skip(f"{lulc} is absent")
    ev = landcover_evidence(lulc)
    scene = {k: ev[k] for k in ("vegetation", "not_vegetated", "water", "cloud")} | {"snow_ice": ev["snow"]}
    caption = _facts_caption(None, scene)
    assert reasons(caption, None, ev, chip_m=chip_m(lulc)) == {}, caption


def test_facts_captioner_with_facts_is_not_flagged(sample_factory) -> None:
    facts = Facts(
        footprint_m2=2640.0**2,
        classes=[
            ClassArea("land_use", "agriculture", "farmland", 5.2e6, 0.75),
            ClassArea("water", "lake", "lake", 1.4e5, 0.02),
        ],
        building_count=40,
        building_fraction=0.01,
        roads=[RoadLength("secondary", 3100.0), RoadLength("track", 1800.0)],
        named=[NamedFeature("Tranum Sø", "water", "lake", "lake"), NamedFeature("Tranum", "place", "locality", "")],
    )
    scl = np.full((264, 264), 4, dtype=np.uint8)
    scl[10:30, 10:40] = 6
    s = sample_factory(facts=facts, scl=scl)
    s.caption = _facts_caption(facts, {"vegetation": 0.99, "water": 0.01})
    assert ground_sample(s) == [], s.caption
