"""Fixtures of the sentinel tests: the real sample data, tiny scenes on disk, a real STAC API (rustac serve)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from s2_helpers import LOC_A, LOC_C, LOC_FAR, World
from s2_scenes import scl_box, write_scene

from sentinel.stac_server import serve_stac, write_collection_json, write_items_ndjson


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("s2world")
    items = [
        # clear, scene cloud cover 8 %
        write_scene(root, "S1_clear", cloud_cover=8.0, boa_offset_applied=True, datetime="2024-05-02T10:00:00Z"),
        # 2 % scene cloud cover, but a cloud sits exactly on chip A
        write_scene(root, "S2_cloud_on_A", cloud_cover=2.0, boa_offset_applied=True,
                    datetime="2024-05-12T10:00:00Z", scl=scl_box(*LOC_A.utm_bounds, cls=9)),
        # too cloudy for max_cloud_cover 20: filtered client-side
        write_scene(root, "S3_cloudy", cloud_cover=55.0, boa_offset_applied=True, datetime="2024-05-22T10:00:00Z"),
        # best cloud cover but no nir09 asset: skipped with a problem
        write_scene(root, "S4_no_b09", cloud_cover=1.0, boa_offset_applied=True, datetime="2024-06-01T10:00:00Z",
                    drop_assets=("nir09",)),
        # other season: never returned for Q2
        write_scene(root, "S5_winter", cloud_cover=0.5, boa_offset_applied=True, datetime="2024-01-15T10:00:00Z"),
        # Planetary Computer naming, raw DN (+1000), same surface
        write_scene(root, "S6_pc_raw", provider="planetary-computer", cloud_cover=12.0, baseline="05.10",
                    dn_offset=1000, datetime="2024-06-11T10:00:00Z"),
    ]
    write_items_ndjson(items, root / "items.ndjson")
    write_collection_json(root / "collection.json", "sentinel-2-l2a", (-180, -90, 180, 90), dt.date(2015, 6, 23),
                          dt.date(2030, 1, 1))
    with serve_stac(root / "collection.json", root / "items.ndjson") as url:
        yield World(url, root, {it["id"]: it for it in items}, {"A": LOC_A, "C": LOC_C, "FAR": LOC_FAR})


class _Handler(BaseHTTPRequestHandler):
    behave: Callable[[BaseHTTPRequestHandler], None]
    hits: list[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.hits.append(self.path)
        type(self).behave(self)

    do_POST = do_HEAD = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], tuple[str, list[str]]]]:
    """Start real HTTP servers on 127.0.0.1 whose handler calls `behave(handler)`; yields (url, hits)."""
    servers: list[ThreadingHTTPServer] = []

    def start(behave: Callable[[BaseHTTPRequestHandler], None]) -> tuple[str, list[str]]:
        hits: list[str] = []
        handler = type("H", (_Handler,), {"behave": staticmethod(behave), "hits": hits})
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_port}", hits

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


