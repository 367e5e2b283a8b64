"""Tags from facts: plain words, deduplicated, ordered by the share of the footprint they cover."""

from __future__ import annotations

from pathlib import Path

import pytest

from overture import tags as tagmod
from overture.model import ClassArea, Facts, NamedFeature, RoadLength
from overture.tags import plain_word, render_vocabulary_md, tags_from_facts

A = 2640.0 * 2640.0


def _facts() -> Facts:
    return Facts(
        footprint_m2=A,
        classes=[
            ClassArea("land_use", "residential", "residential", 0.40 * A, 0.40),
            ClassArea("land_cover", "forest", "", 0.30 * A, 0.30),
            ClassArea("land_use", "forest", "forest", 0.10 * A, 0.10),  # same word as land_cover forest
            ClassArea("water", "river", "river", 0.05 * A, 0.05),
            ClassArea("land_use", "agriculture", "farmland", 0.01 * A, 0.01),  # below MIN_AREA_FRACTION
        ],
        building_count=120,
        building_fraction=0.08,
        roads=[RoadLength("primary", 2640.0), RoadLength("footway", 100.0), RoadLength("residential", 5000.0)],
        named=[NamedFeature("Rhein", "water", "river", "river"), NamedFeature("Stadtpark", "land_use", "park", "park"),
               NamedFeature("Rhein", "water", "river", "river"), NamedFeature("Cafe X", "place", "", "cafe")],
        place_count=3,
    )


def test_order_dedup_and_thresholds() -> None:
    tags = tags_from_facts(_facts())
    # residential street: 5000 m x 6 m / A = 0.0043; main road 2640 x 12 / A = 0.0045
    assert tags == ["residential area", "forest", "buildings", "river", "main road", "residential street",
                    "Rhein (river)", "Stadtpark (park)", "Cafe X (cafe)"]
    assert "farmland" not in tags and "footpath" not in tags  # under their thresholds
    assert len(tags) == len(set(tags))


def test_max_tags_keeps_named_slots() -> None:
    tags = tags_from_facts(_facts(), max_tags=5)
    assert tags == ["residential area", "forest", "Rhein (river)", "Stadtpark (park)", "Cafe X (cafe)"]
    assert tags_from_facts(_facts(), max_tags=0) == []
    with pytest.raises(ValueError, match="max_tags"):
        tags_from_facts(_facts(), max_tags=-1)


def test_dense_buildings_and_empty() -> None:
    f = Facts(footprint_m2=A, building_count=900, building_fraction=0.3)
    assert tags_from_facts(f) == ["dense buildings"]
    assert tags_from_facts(Facts(footprint_m2=A)) == []


@pytest.mark.parametrize(("type_", "subtype", "cls", "word"), [
    ("land_use", "residential", "residential", "residential area"),
    ("land_cover", "forest", "", "forest"),
    ("water", "river", "river", "river"),
    ("segment", "road", "residential", "residential street"),
    ("land_use", "agriculture", "", "farmland"),
    ("land_use", "recreation", "some_new_class", "recreation area"),  # unknown class: the subtype's word
    ("land_use", "new_subtype", "some_new_class", "some new class"),  # neither known: the raw class
    ("land", "physical", "", "land"),
])
def test_plain_word(type_: str, subtype: str, cls: str, word: str) -> None:
    assert plain_word(type_, subtype, cls) == word


def test_vocabulary_md_is_in_sync() -> None:
    md = Path(tagmod.__file__).with_name("VOCABULARY.md")
    assert md.read_text() == render_vocabulary_md(), "regenerate overture/VOCABULARY.md with render_vocabulary_md()"
