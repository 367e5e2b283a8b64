"""Asset-key mapping, baseline and offset logic on real Earth Search and Planetary Computer responses."""

from __future__ import annotations

import copy

import pystac
import pytest
from s2_helpers import load_json, shared

from sentinel.bands import BAND_NAMES
from sentinel.harmonize import harmonize_offset
from sentinel.stac import MissingBandError, infer_provider, scene_from_item

ES_L2A = "earthsearch_sentinel-2-l2a_S2B_20EPT_20250731_0_L2A.json"
ES_C1 = "earthsearch_sentinel-2-c1-l2a_S2B_T20EPT_20250731T131905_L2A.json"
ES_BOULDER = "earthsearch_sentinel-2-l2a_S2A_13TDE_20231008_0_L2A.json"
PC_ITEM = "pc_sentinel-2-l2a_S2A_MSIL2A_20190101T000001_R116_T59UMA_20201007T214658.json"


def test_earth_search_l2a_maps_common_names_and_keeps_its_removed_offset() -> None:
    s = scene_from_item(load_json(shared("stac") / ES_L2A))
    assert (s.provider, s.collection, s.epsg) == ("earth-search", "sentinel-2-l2a", 32720)
    assert list(s.band_hrefs) == list(BAND_NAMES)
    assert s.band_hrefs["B8A"].endswith("/B8A.tif") and s.band_hrefs["B01"].endswith("/B01.tif")
    assert s.band_hrefs["B11"].endswith("/B11.tif") and s.scl_href.endswith("/SCL.tif")
    assert s.processing_baseline == "05.11" and s.boa_offset_applied is True
    assert harmonize_offset(s) == 0  # Earth Search already removed the +1000
    assert s.cloud_cover == pytest.approx(26.02542) and s.nodata_pct == pytest.approx(98.002911)
    assert s.geometry.is_valid and s.geometry.bounds[0] < -59


def test_earth_search_collection1_is_raw_and_gets_the_offset() -> None:
    s = scene_from_item(load_json(shared("stac") / ES_C1))
    assert (s.provider, s.collection, s.processing_baseline) == ("earth-search", "sentinel-2-c1-l2a", "05.11")
    assert s.boa_offset_applied is False
    assert harmonize_offset(s) == 1000
    assert "sentinel-2-c1-l2a" in s.band_hrefs["B04"] and s.band_hrefs["B04"].endswith("/B04.tif")


def test_planetary_computer_maps_esa_names_pre_2022_no_offset() -> None:
    d = load_json(shared("stac") / PC_ITEM)
    s = scene_from_item(pystac.Item.from_dict(d))  # a pystac Item works as well as a dict
    assert (s.provider, s.epsg, s.processing_baseline) == ("planetary-computer", 32659, "02.12")
    assert s.band_hrefs["B8A"].endswith("_B8A_20m.tif") and s.band_hrefs["B01"].endswith("_B01_60m.tif")
    assert s.scl_href.endswith("_SCL_20m.tif")
    assert harmonize_offset(s) == 0


def test_planetary_computer_post_2022_raw_pixels_get_the_offset() -> None:
    d = copy.deepcopy(load_json(shared("stac") / PC_ITEM))
    d["properties"]["s2:processing_baseline"] = "04.00"
    d["properties"]["datetime"] = "2022-03-01T10:00:00Z"
    assert harmonize_offset(scene_from_item(d)) == 1000
    # no baseline property at all: the product URI (N0400) tells it
    del d["properties"]["s2:processing_baseline"]
    d["properties"]["s2:product_uri"] = "S2A_MSIL2A_20220301T000001_N0400_R116_T59UMA_20220301T010101.SAFE"
    s = scene_from_item(d)
    assert s.processing_baseline == "04.00" and harmonize_offset(s) == 1000


def test_whole_pc_search_response_parses() -> None:
    fc = load_json(shared("stac") / "pc_sentinel-2-l2a_search_response.json")
    scenes = [scene_from_item(f) for f in fc["features"]]
    assert len(scenes) == 33
    assert {s.provider for s in scenes} == {"planetary-computer"}
    assert all(len(s.band_hrefs) == 12 and s.epsg in range(32601, 32761) for s in scenes)
    assert {harmonize_offset(s) for s in scenes} == {0}  # all baseline 02.12


def test_earth_search_page_mixes_collections() -> None:
    fc = load_json(shared("stac") / "earthsearch_v1_search_cql2filter_page1_response.json")
    offsets = {}
    for f in fc["features"]:
        if f["collection"] in ("sentinel-2-l2a", "sentinel-2-c1-l2a"):
            offsets[f["collection"]] = harmonize_offset(scene_from_item(f))
        elif f["collection"] == "sentinel-1-grd":
            with pytest.raises(ValueError, match="cannot tell the STAC provider"):
                scene_from_item(f)
    assert offsets == {"sentinel-2-l2a": 0, "sentinel-2-c1-l2a": 1000}


def test_boulder_item_epsg_and_ranking_fields() -> None:
    s = scene_from_item(load_json(shared("stac") / ES_BOULDER))
    assert s.epsg == 32613 and s.cloud_cover is not None and s.cloud_cover < 0.01
    assert s.rank[0] == s.cloud_cover
    assert s.datetime.startswith("2023-10-08")


def test_missing_band_names_item_and_asset() -> None:
    d = copy.deepcopy(load_json(shared("stac") / ES_L2A))
    del d["assets"]["nir08"]
    with pytest.raises(MissingBandError, match="S2B_20EPT_20250731_0_L2A.*'nir08'.*B8A") as info:
        scene_from_item(d)
    assert (info.value.item_id, info.value.asset) == ("S2B_20EPT_20250731_0_L2A", "nir08")
    d = copy.deepcopy(load_json(shared("stac") / PC_ITEM))
    del d["assets"]["SCL"]
    with pytest.raises(MissingBandError, match="'SCL'.*cloud mask"):
        scene_from_item(d)


def test_provider_inference_and_explicit_provider() -> None:
    assert infer_provider({"red": {}, "nir": {}}) == "earth-search"
    assert infer_provider({"B04": {}, "SCL": {}}) == "planetary-computer"
    d = load_json(shared("stac") / ES_L2A)
    with pytest.raises(MissingBandError, match="'B01'"):  # forcing the wrong naming finds no ESA keys
        scene_from_item(d, provider="planetary-computer")


def test_epsg_from_mgrs_when_proj_is_absent() -> None:
    d = copy.deepcopy(load_json(shared("stac") / PC_ITEM))
    del d["properties"]["proj:epsg"]
    for a in d["assets"].values():
        a.pop("proj:epsg", None)
    assert scene_from_item(d).epsg == 32659  # from s2:mgrs_tile 59UMA
