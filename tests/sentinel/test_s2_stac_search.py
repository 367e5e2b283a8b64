"""search_scenes against a real STAC API (rustac serve) and against broken APIs on localhost."""

from __future__ import annotations

import dataclasses
import time
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from s2_helpers import LOC_A, LOC_C, LOC_FAR, Q2, World, reply, sleepy

from sentinel.seasons import Season
from sentinel.stac import StacConfig, StacUnavailableError, search_scenes
from sentinel.stac_server import StacServerError, serve_stac


def test_candidates_per_chip_best_first_cloud_filtered_client_side(world: World) -> None:
    cfg = StacConfig(world.url, page_size=2)  # several pages
    found = search_scenes(cfg, [LOC_A, LOC_C, LOC_FAR], Q2)
    assert found.n_items == 5  # all Q2 items, over three pages; the January one is outside the window
    ids = [s.item_id for s in found["A"]]
    # S3 (55 % cloud) filtered out; S4 lacks a band; best scene cloud cover first
    assert ids == ["S2_cloud_on_A", "S1_clear", "S6_pc_raw"]
    assert [s.item_id for s in found["C"]] == ids
    assert found["FAR"] == []
    assert found["A"][2].provider == "planetary-computer" and found["A"][0].provider == "earth-search"
    # the item without nir09 is a per-location problem with a reason, not a crash
    assert any("S4_no_b09" in p and "nir09" in p for p in found.problems["A"])
    assert "FAR" not in found.problems


def test_cloud_threshold_and_season_window(world: World) -> None:
    found = search_scenes(StacConfig(world.url, max_cloud_cover=60), [LOC_C], Q2)
    assert [s.item_id for s in found["C"]][-1] == "S3_cloudy"
    winter = Season("2024-Q1", Q2.start.replace(month=1), Q2.start.replace(month=3, day=31))
    assert [s.item_id for s in search_scenes(StacConfig(world.url), [LOC_C], winter)["C"]] == ["S5_winter"]
    assert search_scenes(StacConfig(world.url), [], Q2) == {}


def test_max_items_caps_the_search(world: World) -> None:
    found = search_scenes(StacConfig(world.url, max_items=2, page_size=1), [LOC_A], Q2)
    assert found.n_items == 2


def test_api_returning_500_is_retried_then_unavailable(http_server) -> None:
    url, hits = http_server(lambda h: reply(h, 500, b'{"code":"boom"}'))
    cfg = StacConfig(url, retries=2, backoff_s=0.01)
    with pytest.raises(StacUnavailableError, match=f"{url}.*after 3 attempts.*500") as info:
        search_scenes(cfg, [LOC_A], Q2)
    assert len(hits) == 3
    assert "\n" not in str(info.value)


def test_api_timeout_is_retried_then_unavailable(http_server) -> None:
    url, hits = http_server(sleepy(1.0))
    cfg = StacConfig(url, timeout_s=0.2, retries=1, backoff_s=0.01)
    t = time.monotonic()
    with pytest.raises(StacUnavailableError, match="after 2 attempts.*(?i:timed? ?out)"):
        search_scenes(cfg, [LOC_A], Q2)
    assert len(hits) == 2 and time.monotonic() - t < 3


def test_unreachable_api_names_the_url_and_fix() -> None:
    from sentinel.stac_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StacUnavailableError, match=f"STAC API {url} .*check the network"):
        search_scenes(StacConfig(url, retries=1, backoff_s=0.01), [LOC_A], Q2)


def test_client_error_is_not_retried(http_server) -> None:
    url, hits = http_server(lambda h: reply(h, 404, b'{"code":"NotFound"}'))
    with pytest.raises(StacUnavailableError, match="HTTP 404.*check the URL"):
        search_scenes(StacConfig(url, retries=3, backoff_s=0.01), [LOC_A], Q2)
    assert len(hits) == 1


def test_transient_503_recovers_on_retry(world: World, http_server) -> None:
    """The first call fails with 503, the retry goes through (to the real API behind a tiny proxy)."""
    state = {"n": 0}

    def flaky(h: BaseHTTPRequestHandler) -> None:
        state["n"] += 1
        if state["n"] == 1:
            reply(h, 503, b"{}")
            return
        r = httpx.get(world.url + h.path, trust_env=False)
        reply(h, r.status_code, r.content)

    url, _ = http_server(flaky)
    found = search_scenes(StacConfig(url, retries=2, backoff_s=0.01), [LOC_C], Q2)
    assert state["n"] >= 2 and found["C"][0].item_id == "S2_cloud_on_A"


def test_stac_config_validates() -> None:
    with pytest.raises(ValueError, match="give the API root"):
        StacConfig("earth-search")
    with pytest.raises(ValueError, match="provider 'aws'"):
        StacConfig("http://x", provider="aws")
    with pytest.raises(ValueError, match="max_cloud_cover 120"):
        StacConfig("http://x", max_cloud_cover=120)
    cfg = StacConfig("http://x")
    assert dataclasses.replace(cfg, retries=0).retries == 0


def test_serve_stac_errors(tmp_path, world: World) -> None:
    with pytest.raises(StacServerError, match="no such file"), serve_stac(tmp_path / "c.json", tmp_path / "i.ndjson"):
        pass
    busy = int(world.url.rsplit(":", 1)[1])
    with pytest.raises(StacServerError, match=f"port {busy} .*already in use"), \
            serve_stac(world.root / "collection.json", world.root / "items.ndjson", port=busy):
        pass
    assert httpx.get(world.url + "/", trust_env=False).json()["type"] == "Catalog"


def test_only_planetary_computer_is_signed() -> None:
    from sentinel.stac import _needs_signing

    assert _needs_signing(StacConfig("https://planetarycomputer.microsoft.com/api/stac/v1"))
    assert _needs_signing(StacConfig("http://127.0.0.1:1", provider="planetary-computer"))
    assert not _needs_signing(StacConfig("https://earth-search.aws.element84.com/v1"))
    assert not _needs_signing(StacConfig("http://127.0.0.1:1"))
