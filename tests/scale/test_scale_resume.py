"""The scale plan at CI size: build_dataset on 2 Dask workers, the flow process SIGKILLed midway, resumed:
every planned id exactly once, no shard rewritten, and a second run of the finished plan writes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from synthetic.large import LargeRegion

ROOT = Path(__file__).resolve().parents[2]
SHARD_SIZE = 3
CHILD = (
    "import json, sys\n"
    "from flows.build import build_dataset\n"
    "state = build_dataset(**json.load(open(sys.argv[1])), return_state=True)\n"
    "sys.exit(0 if state.is_completed() else 3)\n"
)


def _params(world: LargeRegion, stac_url: str, out: Path) -> dict[str, Any]:
    """build_dataset on a stored plan (as `s2cap plan` writes one): the flow's parameters hold a folder name,
    not the location list."""
    from pipeline.plan import make_plan, save_or_check_plan
    from sentinel.seasons import season_windows

    plan_dir = out.parent / "plan"
    save_or_check_plan(plan_dir, make_plan(list(world.locations), season_windows(world.start, world.end,
                                                                                 "quarters"), SHARD_SIZE))
    return {
        "regions": [
            {
                "name": "tiled",
                "plan": str(plan_dir),
                "stac_url": stac_url,
                "overture_path": str(world.overture_root),
                "overture_release": world.overture_release,
            }
        ],
        "start": world.start.isoformat(),
        "end": world.end.isoformat(),
        "output": str(out),
        "sources": {"provider": "earth-search", "collection": "sentinel-2-l2a"},
        "captioning": {"captioner": "facts"},
        "execution": {
            "task_runner": "dask",
            "dask_workers": 2,
            "shard_size": SHARD_SIZE,
            "shards_in_flight": 4,
            "shards_per_runner": 7,  # 16 shards: three waves, each on a fresh Dask cluster
            "retry_delay_seconds": 0.5,
        },
    }


def _markers(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "shards").glob("*.done.json")) if (run_dir / "shards").is_dir() else []


def _index(path: Path) -> str:
    """`00003` of `00003.parquet` and of its marker `_00003.done.json` (hidden from dataset readers)."""
    return path.name.split(".")[0].lstrip("_")


def _files(run_dir: Path, names: set[str] | None = None) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) per shard file: os.replace of a rewrite changes both."""
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted((run_dir / "shards").iterdir())
        if names is None or p.name in names
    }


def _kill_midway(params: dict[str, Any], run_dir: Path, tmp_path: Path, server: str, n_shards: int) -> int:
    """Run the flow in its own process group and SIGKILL the group (flow process and Dask workers) once a few
    shards are written; returns how many were done."""
    (tmp_path / "params.json").write_text(json.dumps(params))
    env = {**os.environ, "PREFECT_API_URL": server, "PREFECT_LOGGING_LEVEL": "WARNING"}
    log = tmp_path / "child.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "params.json")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    try:
        while len(_markers(run_dir)) < 3:
            assert proc.poll() is None, (
                f"the flow ended before the kill (rc {proc.returncode}): {log.read_text()}"
            )
            assert time.monotonic() < deadline, f"no progress in 90 s: {log.read_text()[-3000:]}"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return len(_markers(run_dir))


def _shard_files(run_dir: Path) -> dict[str, tuple[int, int]]:
    return {k: v for k, v in _files(run_dir).items() if k.endswith((".parquet", ".done.json"))}


def _assert_every_id_once(run_dir: Path) -> None:
    plan = json.loads((run_dir / "plan.json").read_text())
    planned = [
        f"{plan['locations'][li][0]}_{plan['seasons'][si][0]}" for sh in plan["shards"] for li, si in sh
    ]
    ids: Counter[str] = Counter()
    shards = sorted((run_dir / "shards").glob("*.parquet"))
    for path in shards:
        ids.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())  # a corrupt shard raises
    assert sorted(ids) == sorted(planned), "every planned sample is written"
    assert set(ids.values()) == {1}, "no sample twice"
    assert [_index(p) for p in shards] == [_index(p) for p in _markers(run_dir)], "a marker per shard"
    assert len(shards) == len(plan["shards"])
    assert not [p for p in (run_dir / "shards").iterdir() if ".tmp" in p.name], "no temporaries left"


@pytest.mark.slow  # ~70 s on 2 loaded cores: three flow runs, each with a 2-worker Dask cluster
def test_killed_flow_resumes_every_id_once_and_rerun_does_nothing(
    prefect_server: str, small_tiled_world: LargeRegion, tmp_path: Path
) -> None:
    from flows.build import build_dataset
    from flows.tasks import close_thread_runs
    from sentinel.stac_server import serve_stac

    world = small_tiled_world
    n_shards = -(-world.n_samples // SHARD_SIZE)
    run_dir = tmp_path / "out" / "tiled"
    with serve_stac(world.collection_json, world.items_ndjson) as url:
        params = _params(world, url, tmp_path / "out")
        done = _kill_midway(params, run_dir, tmp_path, prefect_server, n_shards)
        assert 0 < done < n_shards, "killed midway"
        survivors = {_index(p) + ".parquet" for p in _markers(run_dir)}
        before = _files(run_dir, survivors)

        state = build_dataset(**params, return_state=True)
        assert state.is_completed(), state.message
        _assert_every_id_once(run_dir)
        assert _files(run_dir, survivors) == before, "shards written before the kill are kept, not redone"
        summary = state.result()[0]
        assert summary["rows written"] == world.n_samples
        assert summary["ok"] >= world.n_samples - 4, summary["status"]

        finished = _shard_files(run_dir)
        again = build_dataset(**params, return_state=True)
        close_thread_runs()
    assert again.is_completed(), again.message
    assert again.result()[0]["rows written"] == world.n_samples
    assert _shard_files(run_dir) == finished, "the second run rewrote no shard and no marker"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    from pipeline.filters import NearDuplicateIndex
    from pipeline.runner import NEAR_DUPLICATES

    kept = sum(pq.read_table(p, columns=["keep"]).column("keep").to_pylist().count(True)
               for p in (run_dir / "shards").glob("*.parquet"))
    index = NearDuplicateIndex(path=run_dir / NEAR_DUPLICATES)
    assert len(index) == kept, "the shared near-duplicate index holds the kept captions, none of the killed run"
    index.close()
