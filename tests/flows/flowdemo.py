"""Small synthetic demo regions, each served by its own real STAC API, as flow parameters."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from flows.settings import LocationSpec

FACTS = {"captioner": "facts"}
SOURCES = {"provider": "earth-search", "collection": "sentinel-2-l2a"}


@contextmanager
def demo_region(root: Path, name: str, seed: int, nx: int, ny: int) -> Iterator[dict[str, Any]]:
    """A `RegionSpec` dict for a fresh synthetic world, valid while its STAC server runs."""
    from sentinel.stac_server import serve_stac
    from synthetic.demo import build_demo

    world = build_demo(root / f"world-{name}", seed=seed, n_chips_x=nx, n_chips_y=ny)
    with serve_stac(world.collection_json, world.items_ndjson) as url:
        yield region_spec(name, world, url)


def region_spec(name: str, world: Any, stac_url: str) -> dict[str, Any]:
    return {"name": name, "bbox": list(world.bbox),
            "locations": [LocationSpec.of(loc).model_dump() for loc in world.locations],
            "start": world.start.isoformat(), "end": world.end.isoformat(), "stac_url": stac_url,
            "overture_path": str(world.overture_root), "overture_release": world.overture_release}


def planned_ids(run_dir: Path) -> list[str]:
    plan = json.loads((run_dir / "plan.json").read_text())
    return [f"{plan['locations'][li][0]}_{plan['seasons'][si][0]}"
            for shard in plan["shards"] for li, si in shard]


def written_rows(run_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted((run_dir / "shards").glob("*.parquet")):
        rows += pq.read_table(path, columns=["id", "status", "caption", "keep"]).to_pylist()
    return rows


def assert_complete_run(run_dir: Path) -> list[dict[str, Any]]:
    """The CLI's contract: every planned sample once, every shard with its marker, nothing half-written."""
    rows = written_rows(run_dir)
    ids = Counter(r["id"] for r in rows)
    planned = planned_ids(run_dir)
    assert sorted(ids) == sorted(planned), "every planned sample is written"
    assert set(ids.values()) == {1}, "no sample twice"
    n_shards = len(json.loads((run_dir / "plan.json").read_text())["shards"])
    assert len(list((run_dir / "shards").glob("*.done.json"))) == n_shards
    assert not [p for p in (run_dir / "shards").iterdir() if ".tmp" in p.name], "no temporaries left"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    return rows


def latest_artifact(key: str) -> dict[str, Any]:
    """The newest artifact with this key on the current Prefect server, via the REST API (the 3.8.8 client's
    read_artifacts sends null filters that the server rejects)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 10, "offset": 0}
        resp = client._client.post("/artifacts/filter", json=body)
    resp.raise_for_status()
    found = resp.json()
    assert found, f"no artifact {key!r}"
    return found[0]
