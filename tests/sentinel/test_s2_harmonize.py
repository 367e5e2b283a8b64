"""Processing-baseline harmonization: the same surface gives the same reflectance whatever the provider/date."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from s2_helpers import LOC_C, World
from s2_scenes import expected_chip, write_scene

from sentinel.harmonize import apply_offset, harmonize_offset, parse_baseline
from sentinel.read import read_chip
from sentinel.stac import scene_from_item


@pytest.mark.parametrize(("text", "want"), [("05.11", (5, 11)), ("04.00", (4, 0)), ("02.12", (2, 12)),
                                            ("N0511", (5, 11)), ("5.09", (5, 9))])
def test_parse_baseline(text: str, want: tuple[int, int]) -> None:
    assert parse_baseline(text) == want


def test_parse_baseline_rejects_junk() -> None:
    with pytest.raises(ValueError, match="processing baseline 'v5'"):
        parse_baseline("v5")


def test_apply_offset_keeps_nodata_and_never_creates_it() -> None:
    raw = np.array([0, 1, 999, 1000, 1001, 11000, 65535], dtype=np.uint16)
    out = apply_offset(raw, 1000)
    assert out.dtype == np.uint16
    assert out.tolist() == [0, 1, 1, 1, 1, 10000, 64535]
    assert apply_offset(raw, 0) is raw or (apply_offset(raw, 0) == raw).all()
    with pytest.raises(ValueError, match="offset -5"):
        apply_offset(raw, -5)


CASES = [
    # (provider, collection, date, baseline, boa_offset_applied, DN added in the file, expected offset)
    ("earth-search", "sentinel-2-l2a", "2021-06-01T10:00:00Z", "03.00", None, 0, 0),
    ("earth-search", "sentinel-2-l2a", "2023-06-01T10:00:00Z", "05.09", True, 0, 0),
    ("earth-search", "sentinel-2-c1-l2a", "2021-06-01T10:00:00Z", "05.00", None, 1000, 1000),
    ("earth-search", "sentinel-2-c1-l2a", "2023-06-01T10:00:00Z", "05.09", None, 1000, 1000),
    ("planetary-computer", "sentinel-2-l2a", "2021-06-01T10:00:00Z", "02.14", None, 0, 0),
    ("planetary-computer", "sentinel-2-l2a", "2023-06-01T10:00:00Z", "05.09", None, 1000, 1000),
    # no baseline stated: the acquisition date decides (from 2022-01-25 on, 04.00+)
    ("planetary-computer", "sentinel-2-l2a", "2022-02-01T10:00:00Z", None, None, 1000, 1000),
    ("planetary-computer", "sentinel-2-l2a", "2022-01-20T10:00:00Z", None, None, 0, 0),
]


def test_same_surface_same_reflectance_across_baselines_and_providers(tmp_path: Path) -> None:
    """Pre- and post-2022 items of both providers, written with and without the +1000 in their pixels, read
    back as identical harmonized chips; each harmonized exactly once."""
    want = expected_chip(LOC_C)
    for i, (prov, coll, when, baseline, applied, dn, offset) in enumerate(CASES):
        item = write_scene(tmp_path, f"h{i}", provider=prov, collection=coll, datetime=when, baseline=baseline,
                           boa_offset_applied=applied, dn_offset=dn)
        scene = scene_from_item(item)
        assert harmonize_offset(scene) == offset, CASES[i]
        chip = read_chip(LOC_C, scene)
        assert chip.offset == offset
        np.testing.assert_array_equal(chip.data, want, err_msg=str(CASES[i]))


def test_served_items_of_both_providers_agree(world: World) -> None:
    es = read_chip(LOC_C, scene_from_item(world.items["S1_clear"]))
    pc = read_chip(LOC_C, scene_from_item(world.items["S6_pc_raw"]))
    assert (es.offset, pc.offset) == (0, 1000)
    np.testing.assert_array_equal(es.data, pc.data)
