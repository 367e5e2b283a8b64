"""`s2cap caption-region` through the real entry point: a grid over a bbox or a GeoJSON region, a real local STAC
API, a local Overture mirror, and the failure modes of its endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sentinel.stac_server import free_port, serve_stac
from synthetic.demo import DemoRegion, build_demo
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DemoRegion:
    return build_demo(tmp_path_factory.mktemp("world"), seed=3, n_chips_x=3, n_chips_y=2)


@pytest.fixture(scope="module")
def stac_url(world: DemoRegion) -> Iterator[str]:
    with serve_stac(world.collection_json, world.items_ndjson) as url:
        yield url


def _common(world: DemoRegion, url: str, out: Path) -> list[str]:
    return ["--start", world.start.isoformat(), "--end", world.end.isoformat(), "--out", str(out),
            "--stac-url", url, "--overture-path", str(world.overture_root), "--overture-release",
            world.overture_release, "--captioner", "facts", "--shard-size", "8", "--quiet"]


def test_bbox_grid_region(world: DemoRegion, stac_url: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    w, s, e, n = world.bbox
    proc = run_cli("caption-region", "--bbox", f"{w},{s},{e},{n}", *_common(world, stac_url, out))
    assert "s2cap run summary" in proc.stderr
    rows = pq.read_table(out / "shards").to_pylist()
    plan = json.loads((out / "plan.json").read_text())
    assert len(rows) == sum(len(sh) for sh in plan["shards"]) == 4 * len(plan["locations"])
    assert len({r["id"] for r in rows}) == len(rows)
    assert len(plan["locations"]) >= 2, "the grid over the world's bbox holds several chips"
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["caption"] and r["overture_release"] == world.overture_release for r in ok)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["stac_url"] == stac_url and manifest["status"] == "complete"

    # a second run of the same command does no work and changes nothing
    before = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    run_cli("caption-region", "--bbox", f"{w},{s},{e},{n}", *_common(world, stac_url, out))
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == before


def test_geojson_region_keeps_only_chips_touching_the_polygon(world: DemoRegion, stac_url: str,
                                                                tmp_path: Path) -> None:
    w, s, e, n = world.bbox
    # a triangle over the western part of the world
    poly = [[w, s], [w + (e - w) * 0.6, s], [w, n], [w, s]]
    path = tmp_path / "region.geojson"
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon",
                                                                                   "coordinates": [poly]}}))
    out = tmp_path / "run"
    run_cli("caption-region", "--geojson", str(path), *_common(world, stac_url, out))
    plan = json.loads((out / "plan.json").read_text())
    assert 1 <= len(plan["locations"]) < 6


def test_unreachable_stac_api_is_one_line(world: DemoRegion, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    w, s, e, n = world.bbox
    proc = run_cli("caption-region", "--bbox", f"{w},{s},{e},{n}", *_common(world, url, tmp_path / "run"),
                   check=False, timeout=240)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and url in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "run" / "shards").glob("*.parquet")), "no shard of failures is written"


def test_missing_overture_mirror_is_one_line(world: DemoRegion, stac_url: str, tmp_path: Path) -> None:
    w, s, e, n = world.bbox
    args = _common(world, stac_url, tmp_path / "run")
    args[args.index("--overture-path") + 1] = str(tmp_path / "no-such-mirror")
    proc = run_cli("caption-region", "--bbox", f"{w},{s},{e},{n}", *args, check=False)
    assert proc.returncode in (1, 2)
    assert "no-such-mirror" in proc.stderr and "Traceback" not in proc.stderr
