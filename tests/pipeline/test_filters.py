"""Each caption filter on hand-written captions, including the seed study's real failures."""

from __future__ import annotations

import numpy as np
import pytest

from overture.model import ClassArea, Facts, NamedFeature, RoadLength
from pipeline.errors import InputError
from pipeline.filters import (
    CloudFilter,
    FilterConfig,
    LanguageFilter,
    LengthFilter,
    NearDuplicateIndex,
    RefusalFilter,
    RepetitionFilter,
    apply_filters,
    build_filters,
)
from pipeline.grounding import GroundingConfig

GOOD = "A patchwork of green agricultural fields crossed by a narrow road with a few farm buildings in the north."


def danish_facts(**overrides: object) -> Facts:
    """Facts of a farmland chip with one named lake, a village and roads."""
    d: dict[str, object] = {
        "footprint_m2": 2640.0**2,
        "classes": [
            ClassArea("land_use", "agriculture", "farmland", 5.2e6, 0.75),
            ClassArea("water", "lake", "lake", 1.4e5, 0.02),
        ],
        "building_count": 40,
        "building_fraction": 0.01,
        "roads": [RoadLength("secondary", 3100.0), RoadLength("track", 1800.0)],
        "named": [NamedFeature("Tranum Sø", "water", "lake", "lake")],
        "place_count": 2,
    }
    d.update(overrides)
    return Facts(**d)  # type: ignore[arg-type]


def farmland_scl() -> np.ndarray:
    """SCL of a farmland chip: vegetation with one small lake in a corner (one water body)."""
    scl = np.full((264, 264), 4, dtype=np.uint8)
    scl[:, 200:] = 5
    scl[10:30, 10:40] = 6
    return scl


def test_config_validates_itself() -> None:
    with pytest.raises(InputError, match="min_words"):
        FilterConfig(min_words=50, max_words=10)
    with pytest.raises(InputError, match="language"):
        FilterConfig(language="de")
    with pytest.raises(InputError, match="disabled"):
        FilterConfig(disabled=("no_such_filter",))
    with pytest.raises(InputError, match="dedup_bands"):
        FilterConfig(dedup_permutations=100, dedup_bands=32)
    with pytest.raises(InputError, match="max_cloud_fraction"):
        FilterConfig(max_cloud_fraction=1.5)
    with pytest.raises(InputError, match="grounding rules"):
        GroundingConfig(rules=("grounding_colour",))
    with pytest.raises(InputError, match="filters.grounding keys"):
        FilterConfig(grounding={"absent": 0.1})  # type: ignore[arg-type]


def test_config_from_plain_values() -> None:
    cfg = FilterConfig(
        grounding={"absent_max": 0.01, "rules": ["grounding_water"]},  # type: ignore[arg-type]
        disabled=["cloudy"],  # type: ignore[arg-type]
    )
    assert cfg.grounding == GroundingConfig(absent_max=0.01, rules=("grounding_water",))
    assert cfg.disabled == ("cloudy",)
    names = [f.name for f in build_filters(cfg)]
    assert "grounding_water" in names and "grounding_urban" not in names and "cloudy" not in names


@pytest.mark.parametrize(
    ("caption", "reason"),
    [
        (None, "empty"),
        ("   ", "empty"),
        ("Green fields.", "too_short"),
        (" ".join(["field"] * 121), "too_long"),
        (GOOD, None),
    ],
)
def test_length(sample_factory, caption: str | None, reason: str | None) -> None:
    r = LengthFilter(8, 120)(sample_factory(caption=caption))
    assert r.keep is (reason is None)
    assert r.reason == reason


@pytest.mark.parametrize(
    "caption",
    [
        "As an AI language model, I cannot see satellite images.",
        "I cannot determine what is shown in this picture.",
        "I’m sorry, but the image is too blurry to describe.",
        "The image does not contain enough detail to identify any features.",
        "Sure! Here is a caption: fields and a road.",
        "Caption: green fields and a small road.",
        "It is not possible to determine the land use from this image.",
    ],
)
def test_refusal_and_boilerplate(sample_factory, caption: str) -> None:
    r = RefusalFilter()(sample_factory(caption=caption))
    assert not r.keep and r.reason == "refusal" and r.detail


def test_refusal_keeps_plain_caption(sample_factory) -> None:
    assert RefusalFilter()(sample_factory(caption=GOOD)).keep


def test_repetition(sample_factory) -> None:
    looping = "A river runs through the fields and the river runs through the fields and the river runs through."
    r = RepetitionFilter(3, 2)(sample_factory(caption=looping))
    assert not r.keep and r.reason == "repetition"
    assert "x3" in r.detail
    assert RepetitionFilter(3, 2)(sample_factory(caption=GOOD)).keep


@pytest.mark.parametrize(
    ("caption", "keep"),
    [
        (GOOD, True),
        ("Snow and ice cover the whole chip, with a frozen lake in the middle.", True),
        ("Une mosaïque de champs agricoles verts traversée par une petite route près du village.", False),
        ("Grüne landwirtschaftliche Felder werden von einer schmalen Straße durchquert, Häuser im Norden.", False),
        ("绿色的农田被一条狭窄的道路穿过，北部有一些农舍和一个小湖泊。", False),
    ],
)
def test_language(sample_factory, caption: str, keep: bool) -> None:
    r = LanguageFilter(0.15, 0.10)(sample_factory(caption=caption))
    assert r.keep is keep
    assert "stopwords" in r.detail


def test_cloudy_from_fraction_and_from_scl(sample_factory) -> None:
    f = CloudFilter(0.10)
    assert not f(sample_factory(cloud_fraction=0.35)).keep
    assert f(sample_factory(cloud_fraction=0.02)).keep
    scl = np.full((100, 100), 4, dtype=np.uint8)
    scl[:30] = 9  # 30 % high-probability cloud
    r = f(sample_factory(scl=scl))
    assert not r.keep and r.reason == "cloudy" and "0.300" in r.detail
    assert f(sample_factory()).detail == "no cloud mask"


def test_near_duplicate_index_first_wins_and_is_deterministic() -> None:
    a = "A patchwork of green agricultural fields crossed by a narrow river, with a small village in the north."
    a_variant = "a patchwork of green agricultural fields crossed by a narrow river with a small village in the north!"
    other = "Snow and ice cover the whole chip; no buildings, roads or open water can be seen anywhere in it."
    idx = NearDuplicateIndex(threshold=0.9)
    assert idx.query(a) is None
    idx.add("first", a)
    hit = idx.query(a_variant)
    assert hit is not None and hit[0] == "first" and hit[1] >= 0.9
    assert idx.query(other) is None
    # one changed word in a 17-word caption is not a near duplicate at Jaccard 0.9 on 5-gram shingles
    assert idx.query(a.replace("village", "town")) is None
    # a second index built from the same captions answers identically
    seeded = NearDuplicateIndex.from_captions([("first", a), None, ("second", other)])
    assert len(seeded) == 2
    assert seeded.query(a_variant) == hit
    assert np.array_equal(seeded.signature(a), idx.signature(a))


def test_apply_filters_keeps_every_result_and_counts_reasons(sample_factory) -> None:
    samples = [
        sample_factory(0, caption=GOOD, cloud_fraction=0.01),
        sample_factory(1, caption="I'm sorry, I cannot.", cloud_fraction=0.01),  # refusal AND too short
        sample_factory(2, caption=GOOD.replace("north.", "north!"), cloud_fraction=0.01),  # duplicate of #0
        sample_factory(3, caption=GOOD, cloud_fraction=0.5),  # cloudy
        sample_factory(4, status="no_scene", error="no item"),
    ]
    counts = apply_filters(samples, build_filters(FilterConfig()))
    assert counts["checked"] == 4
    assert counts["kept"] == 1 and samples[0].keep
    assert counts["dropped_refusal"] == 1 and counts["dropped_too_short"] == 1
    assert counts["dropped_near_duplicate"] == 2  # #2 and #3 repeat #0
    assert counts["dropped_cloudy"] == 1
    assert counts["failed_no_scene"] == 1
    assert counts["dropped"] == 3
    # not first-fail: every filter ran and left its result
    names = [r.name for r in samples[1].filters]
    assert names[:5] == ["length", "refusal", "repetition", "language", "cloudy"]
    assert names[-1] == "near_duplicate"
    assert {r.reason for r in samples[1].filters if not r.keep} == {"too_short", "refusal"}
    assert samples[4].filters == [] and samples[4].keep is False
    assert "loc0000_2024-Q2" in next(r.detail for r in samples[2].filters if r.name == "near_duplicate")


def test_near_duplicate_of_a_dropped_caption_is_kept(sample_factory) -> None:
    """The index only takes captions every earlier filter kept, so the first *kept* caption wins."""
    cloudy = sample_factory(0, caption=GOOD, cloud_fraction=0.9)
    clear = sample_factory(1, caption=GOOD, cloud_fraction=0.0)
    counts = apply_filters([cloudy, clear], build_filters(FilterConfig()))
    assert not cloudy.keep and clear.keep
    assert counts == {"checked": 2, "kept": 1, "dropped": 1, "dropped_cloudy": 1}


def test_resume_with_seeded_index(sample_factory) -> None:
    index = NearDuplicateIndex.from_captions([("loc0000_2024-Q2", GOOD)])
    s = sample_factory(7, caption=GOOD)
    apply_filters([s], build_filters(FilterConfig(), index=index))
    assert not s.keep
    assert [r.reason for r in s.filters if not r.keep] == ["near_duplicate"]


def test_index_sync_follows_the_written_shards(tmp_path, sample_factory) -> None:
    """The run's index file: captions of a shard that was never written are dropped, written shards the index
    has not seen (an index deleted or made by an older version) are indexed, and a second sync does nothing."""
    from pipeline.shards import write_shard

    kept = sample_factory(0, caption=GOOD, keep=True)
    dropped = sample_factory(1, caption="A second caption that was dropped by a filter before it was written.")
    write_shard(tmp_path, 0, [kept, dropped], {})
    path = tmp_path / "cache" / "near_duplicates.sqlite"
    index = NearDuplicateIndex(path=path)
    unwritten = "Rows of greenhouses beside a motorway junction, with a quarry to the south and no water."
    index.add("loc0009_2024-Q2", unwritten, shard=3)  # filtered by an attempt killed before its write
    assert index.sync(tmp_path) == (1, 1)
    assert index.query(unwritten) is None
    assert index.query(GOOD) == ("loc0000_2024-Q2", 1.0)
    assert index.query(str(dropped.caption)) is None
    assert index.sync(tmp_path) == (0, 0) and len(index) == 1
    index.close()
    again = [sample_factory(5, caption=GOOD), sample_factory(6, caption=dropped.caption)]
    reopened = NearDuplicateIndex(path=path)
    apply_filters(again, build_filters(FilterConfig(), index=reopened))
    assert [r.detail for r in again[0].filters if r.reason == "near_duplicate"] == ["loc0000_2024-Q2 (similarity 1.00)"]
    assert not any(r.reason == "near_duplicate" for r in again[1].filters)


def test_index_file_is_shared_and_a_sample_never_duplicates_itself(tmp_path) -> None:
    path = tmp_path / "near_duplicates.sqlite"
    worker_a, worker_b = NearDuplicateIndex(path=path), NearDuplicateIndex(path=path)
    worker_a.add("loc0000_2024-Q2", GOOD, shard=0)
    assert worker_b.query(GOOD) == ("loc0000_2024-Q2", 1.0)  # seen by another connection at once
    assert worker_b.query(GOOD, exclude="loc0000_2024-Q2") is None  # a retried shard meets its own caption
    worker_b.add("loc0000_2024-Q2", GOOD.replace("north", "south"), shard=0)  # a retry replaces, not duplicates
    assert len(worker_a) == 1
    with pytest.raises(InputError, match="delete the file"):
        NearDuplicateIndex(permutations=64, bands=16, path=path)


def test_disabled_filters_are_not_built() -> None:
    names = [f.name for f in build_filters(FilterConfig(disabled=("grounding_speculative", "cloudy"), language=None))]
    assert "grounding_speculative" not in names and "cloudy" not in names and "language" not in names
    assert names[-1] == "near_duplicate" and "grounding_water" in names


# --- the seed study's real failures, through the whole filter chain -------------------------------------------


def _run(sample) -> set[str]:
    apply_filters([sample], build_filters(FilterConfig()))
    return {r.reason for r in sample.filters if not r.keep}


def test_seed_failure_river_500_km(sample_factory) -> None:
    s = sample_factory(
        caption="Green farmland surrounds a small lake, and the river is approximately 500 kilometers long.",
        facts=danish_facts(),
        scl=farmland_scl(),
    )
    assert _run(s) == {"grounding_measure"}
    detail = next(r.detail for r in s.filters if r.reason == "grounding_measure")
    assert detail == "500 kilometers"


def test_seed_failure_healthy_and_dying_plants(sample_factory) -> None:
    s = sample_factory(
        caption="The fields show a mix of healthy and dying plants next to a small lake and a country road.",
        facts=danish_facts(),
        scl=farmland_scl(),
    )
    assert _run(s) == {"grounding_speculative"}
    assert next(r.detail for r in s.filters if not r.keep) == "healthy, dying"


def test_seed_failure_two_bodies_of_water(sample_factory) -> None:
    s = sample_factory(
        caption="Two bodies of water are visible among the green agricultural fields and the scattered farms.",
        facts=danish_facts(),
        scl=farmland_scl(),
    )
    assert _run(s) == {"grounding_count"}
    # the same claim is fine where the scene shows two separate lakes
    scl = farmland_scl()
    scl[100:130, 100:140] = 6
    s2 = sample_factory(caption=s.caption, facts=danish_facts(), scl=scl)
    assert _run(s2) == set()


def test_grounded_caption_passes_every_filter(sample_factory) -> None:
    s = sample_factory(
        caption="Green agricultural fields with a small lake, farm buildings and a secondary road near Tranum Sø.",
        facts=danish_facts(),
        scl=farmland_scl(),
        cloud_fraction=0.0,
    )
    assert _run(s) == set() and s.keep
    assert len(s.filters) == len(build_filters(FilterConfig()))
