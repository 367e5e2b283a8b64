"""Orchestration overhead of the Prefect flow per chip, against calling the same stages directly.

One synthetic demo world (served by a real local STAC API, `facts` captioner: the cheapest per-chip work,
so the worst case for the overhead ratio) is run twice side by side in one process:

- direct: `pipeline.execute.execute(cfg)`, the CLI's path (one shard after the other);
- flow: `caption_region` on a Prefect server (an ephemeral one unless PREFECT_API_URL is set), thread runner,
  one shard in flight so both sides do the same work in the same order.

Both pay the same per-run costs (plan, Run.open, finish); the difference is what Prefect adds: a flow run,
three task runs per shard, artifacts and the worker `Run` opened once. Fixed costs and per-shard costs are
separated by running two plan sizes; the projection to 1,000 chips uses the measured per-shard cost.

    python bench/bench_flows.py            # 4x2 chips x 4 seasons = 32 samples, ~1 min
    python bench/bench_flows.py --chips-x 8 --chips-y 6
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _direct(region: dict[str, Any], out: Path, shard_size: int) -> float:
    from flows.settings import Captioning, Execution, RegionSpec, Sources, run_config
    from pipeline.execute import execute

    cfg = run_config(RegionSpec.model_validate(region), region["start"], region["end"], str(out),
                     Sources(provider="earth-search"), Captioning(captioner="facts"),
                     Execution(shard_size=shard_size))
    t0 = time.perf_counter()
    execute(cfg, progress=False)
    return time.perf_counter() - t0


def _flow(region: dict[str, Any], out: Path, shard_size: int) -> float:
    from flows.caption import caption_region

    t0 = time.perf_counter()
    state = caption_region(region=region, output=str(out), sources={"provider": "earth-search"},
                           captioning={"captioner": "facts"}, return_state=True,
                           execution={"shard_size": shard_size, "shards_in_flight": 1})
    wall = time.perf_counter() - t0
    if not state.is_completed():
        raise SystemExit(f"flow run failed: {state.message}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chips-x", type=int, default=4)
    ap.add_argument("--chips-y", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="s2cap-bench-flows-"))
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect-home"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from contextlib import ExitStack

    from flows.settings import LocationSpec
    from sentinel.stac_server import serve_stac
    from synthetic.demo import build_demo

    with ExitStack() as stack:
        if not os.environ.get("PREFECT_API_URL"):
            from prefect.testing.utilities import prefect_test_harness

            t0 = time.perf_counter()
            stack.enter_context(prefect_test_harness(server_startup_timeout=120))
            print(f"ephemeral Prefect server started in {time.perf_counter() - t0:.1f} s (not counted)")
        world = build_demo(tmp / "world", seed=args.seed, n_chips_x=args.chips_x, n_chips_y=args.chips_y)
        url = stack.enter_context(serve_stac(world.collection_json, world.items_ndjson))
        locs = [LocationSpec.of(loc).model_dump() for loc in world.locations]

        def region(name: str, n: int) -> dict[str, Any]:
            return {"name": name, "bbox": list(world.bbox), "locations": locs[:n],
                    "start": world.start.isoformat(), "end": world.end.isoformat(), "stac_url": url,
                    "overture_path": str(world.overture_root), "overture_release": world.overture_release}

        # warm-up: imports, file cache, DuckDB extension load, the first flow run's client set-up
        _direct(region("warm", 1), tmp / "warm-direct", args.shard_size)
        _flow(region("warm", 1), tmp / "warm-flow", args.shard_size)

        rows = []
        for n in (max(1, len(locs) // 3), len(locs)):
            samples = n * 4
            shards = -(-samples // args.shard_size)
            d = _direct(region(f"n{n}", n), tmp / "direct", args.shard_size)
            f = _flow(region(f"n{n}", n), tmp / "flow", args.shard_size)
            rows.append((samples, shards, d, f))
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'samples':>8} {'shards':>7} {'direct s':>9} {'flow s':>8} {'ratio':>6} "
          f"{'overhead/chip ms':>17}")
    for samples, shards, d, f in rows:
        print(f"{samples:>8} {shards:>7} {d:>9.2f} {f:>8.2f} {f / d:>6.3f} {1000 * (f - d) / samples:>17.1f}")
    (s1, k1, d1, f1), (s2, k2, d2, f2) = rows
    per_shard = ((f2 - d2) - (f1 - d1)) / (k2 - k1) if k2 != k1 else (f2 - d2) / k2
    fixed = (f2 - d2) - per_shard * k2
    per_chip_work = d2 / s2
    print(f"\nflow overhead: fixed {fixed:.2f} s per run, {1000 * per_shard:.0f} ms per shard "
          f"(3 task runs); direct work {1000 * per_chip_work:.0f} ms per chip (facts captioner)")
    for shard_size in (args.shard_size, 64):
        n = 1000
        shards = -(-n // shard_size)
        over = max(fixed, 0.0) + max(per_shard, 0.0) * shards
        print(f"projected at {n} chips, shard size {shard_size}: overhead {over:.1f} s on "
              f"{per_chip_work * n:.0f} s of work = {100 * over / (per_chip_work * n):.1f} % "
              f"(goal < 5 %; a VLM captioner adds ~0.5-2 s of work per chip, shrinking the ratio further)")


if __name__ == "__main__":
    main()
