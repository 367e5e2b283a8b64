"""build_dataset over three demo regions (each its own world and STAC API) on a local Dask cluster."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

from flowdemo import FACTS, SOURCES, assert_complete_run, demo_region, latest_artifact


def test_build_dataset_over_three_regions_with_dask(prefect_server: str, tmp_path: Path) -> None:
    from flows.build import build_dataset

    with ExitStack() as stack:
        regions = [stack.enter_context(demo_region(tmp_path, name, seed, nx, ny))
                   for name, seed, nx, ny in [("alpha", 11, 1, 1), ("beta", 12, 2, 1), ("gamma", 13, 1, 2)]]
        state = build_dataset(regions=regions, output=str(tmp_path / "dataset"), sources=SOURCES,
                              captioning=FACTS, return_state=True,
                              execution={"task_runner": "dask", "dask_workers": 2, "shard_size": 4,
                                         "shards_in_flight": 4})
    assert state.is_completed(), state.message
    summaries = state.result()
    assert [s["region"] for s in summaries] == ["alpha", "beta", "gamma"]
    for s, region in zip(summaries, regions, strict=True):
        run_dir = tmp_path / "dataset" / region["name"]
        rows = assert_complete_run(run_dir)
        assert s["rows written"] == len(rows) == 4 * len(region["locations"])
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["sources"]["stac_url"] == region["stac_url"], "each region keeps its own endpoints"
    table = latest_artifact("dataset-summary")
    assert [r["region"] for r in json.loads(table["data"])] == ["alpha", "beta", "gamma"]
