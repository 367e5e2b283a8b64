"""Scale benchmark: the synthetic plan through `build_dataset` on a local Dask cluster, at two sizes.

For each size N (samples = locations x 4 quarters) it runs the flow in a child process, samples the RSS
of the child's whole process tree (flow process + Dask nanny/workers), optionally SIGKILLs one Dask worker
process midway, reruns if the flow did not complete, checks that every planned id is written exactly once and
every shard is readable, then runs the finished plan once more and checks that no shard file was rewritten.
The plan's cost estimate (`pipeline.planning.estimate`) is printed beside the measured figures, and the peak
memory of the large size is compared with the small one (the baseline measured in the same run).

    python bench/bench_scale.py                       # quick: 40 and 200 samples, 10x5-chip world (~3 min)
    python bench/bench_scale.py --full --kill-worker  # 1,000 and 10,000 samples on a 50x50-chip world
    python bench/bench_scale.py --full --inprocess    # also the in-process runner (pipeline.execute)

The world is built once under --root (reused by later runs); run folders are fresh each time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.plan import load_plan, make_plan, save_or_check_plan  # noqa: E402
from pipeline.planning import CostModel, estimate  # noqa: E402
from sentinel.seasons import season_windows  # noqa: E402
from synthetic.large import LargeRegion, build_large  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The child process: build_dataset with parameters from a JSON file; exit 0 only if the flow completed.
CHILD = (
    "import json, sys\n"
    "from flows.build import build_dataset\n"
    "state = build_dataset(**json.load(open(sys.argv[1])), return_state=True)\n"
    "sys.exit(0 if state.is_completed() else 3)\n"
)


class TreeSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants every `every` seconds (peak of the sum), and the
    bytes each process read through read() calls (/proc/<pid>/io rchar, last value seen per process)."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.every = every
        self.peak_rss = 0
        self.last_rss = 0
        self.last_by_role: dict[str, int] = {}
        self.peak_by_role: dict[str, int] = {}
        self.rchar: dict[int, int] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            now: dict[str, int] = {}
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    role = "flow" if p.pid == self.root.pid else _role(p)
                    self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), rss)
                    now[role] = max(now.get(role, 0), rss)
                    total += rss
                    self.rchar[p.pid] = p.io_counters().read_chars
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.last_rss = total
            self.last_by_role = now
            self.peak_rss = max(self.peak_rss, total)
            self.stop_event.wait(self.every)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


def _role(p: psutil.Process) -> str:
    cmd = " ".join(p.cmdline())
    if "resource_tracker" in cmd:
        return "resource_tracker"
    if "spawn_main" in cmd or "forkserver" in cmd:
        return "dask_worker"
    return "other"


def dask_workers(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if _role(p) == "dask_worker"]
    except psutil.NoSuchProcess:
        return []


def done_markers(run_dir: Path) -> int:
    shards = run_dir / "shards"
    return len(list(shards.glob("*.done.json"))) if shards.is_dir() else 0


def start_child(code: str, params: dict[str, Any], log: Path, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    """`python -c code PARAMS.json` in its own session, its output in `log` (parameters beside it)."""
    pfile = log.with_suffix(".params.json")
    pfile.write_text(json.dumps(params))
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-c", code, str(pfile)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def run_flow(
    params: dict[str, Any],
    env: dict[str, str],
    log: Path,
    run_dir: Path,
    n_shards: int,
    kill_worker_at: float | None = None,
) -> dict[str, Any]:
    """One build_dataset run in a child process, its tree sampled; SIGKILL one Dask worker once
    `kill_worker_at` of the shards are written."""
    t0 = time.perf_counter()
    proc = start_child(CHILD, params, log, env)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    killed: dict[str, Any] | None = None
    next_report = time.perf_counter() + 60
    timeline: list[dict[str, Any]] = []
    try:
        while proc.poll() is None:
            if time.perf_counter() >= next_report:  # memory over time: flat or growing, even if cut short
                next_report += 60
                timeline.append({"s": round(time.perf_counter() - t0), "shards": done_markers(run_dir),
                                 "tree_mb": round(sampler.last_rss / 2**20),
                                 **{f"{k}_mb": round(v / 2**20) for k, v in sampler.last_by_role.items()}})
                print(
                    f"  {time.perf_counter() - t0:6.0f} s: {done_markers(run_dir)}/{n_shards} shards, "
                    f"tree RSS now {sampler.last_rss / 2**20:.0f} MB, peak {sampler.peak_rss / 2**20:.0f} MB",
                    flush=True,
                )
            if (
                kill_worker_at is not None
                and killed is None
                and done_markers(run_dir) >= kill_worker_at * n_shards
            ):
                workers = dask_workers(proc.pid)
                if workers:
                    victim = workers[0]
                    victim.send_signal(signal.SIGKILL)
                    killed = {
                        "pid": victim.pid,
                        "after_shards": done_markers(run_dir),
                        "at_s": round(time.perf_counter() - t0, 1),
                    }
                    print(
                        f"  SIGKILLed Dask worker {victim.pid} after {killed['after_shards']} of {n_shards} "
                        f"shards ({killed['at_s']} s)",
                        flush=True,
                    )
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        sampler.stop()
    wall = time.perf_counter() - t0
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
        "peak_rss_by_role_mb": {k: round(v / 2**20, 1) for k, v in sampler.peak_by_role.items()},
        "read_chars_gb": round(sum(sampler.rchar.values()) / 2**30, 3),
        "killed": killed,
        "timeline": timeline,
    }


def snapshot(run_dir: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime_ns) of every shard file: a rewrite changes the inode (os.replace) and the mtime."""
    return {
        p.name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted((run_dir / "shards").iterdir())
    }


def check_complete(run_dir: Path) -> dict[str, Any]:
    """Every planned id exactly once, every shard readable and marked, no temporaries."""
    plan = load_plan(run_dir)
    planned = [
        f"{plan.locations[li].location_id}_{plan.seasons[si].name}" for sh in plan.shards for li, si in sh
    ]
    ids: Counter[str] = Counter()
    status: Counter[str] = Counter()
    shards = sorted((run_dir / "shards").glob("*.parquet"))
    for path in shards:
        table = pq.read_table(path, columns=["id", "status"])  # raises on a corrupt shard
        ids.update(table.column("id").to_pylist())
        status.update(table.column("status").to_pylist())
    markers = {p.name.split(".")[0].lstrip("_") for p in (run_dir / "shards").glob("*.done.json")}
    problems = []
    if sorted(ids) != sorted(planned):
        problems.append(
            f"{len(set(planned) - set(ids))} planned ids missing, {len(set(ids) - set(planned))} extra"
        )
    if any(n != 1 for n in ids.values()):
        problems.append(f"{sum(1 for n in ids.values() if n != 1)} ids written more than once")
    if markers != {p.name.split(".")[0] for p in shards} or len(shards) != len(plan.shards):
        problems.append(f"{len(shards)} shards, {len(markers)} done-markers, {len(plan.shards)} planned")
    if [p for p in (run_dir / "shards").iterdir() if ".tmp" in p.name]:
        problems.append("temporaries left")
    return {"rows": sum(ids.values()), "planned": len(planned), "status": dict(status), "problems": problems}


def region_params(
    region: LargeRegion, n_samples: int, stac_url: str, out: Path, workers: int, shard_size: int
) -> dict[str, Any]:
    n_loc = n_samples // len(region.dates)
    if not 1 <= n_loc <= len(region.locations):
        raise SystemExit(
            f"--sizes {n_samples}: the world holds {region.n_samples} samples; build a larger one"
        )
    # a stored plan, as `s2cap plan` writes one: the flow's parameters name a folder, not 250k locations
    plan_dir = out / f"plan-{n_samples}"
    seasons = season_windows(region.start, region.end, "quarters")
    save_or_check_plan(plan_dir, make_plan(list(region.locations[:n_loc]), seasons, shard_size))
    return {
        "regions": [
            {
                "name": f"n{n_samples}",
                "plan": str(plan_dir),
                "stac_url": stac_url,
                "overture_path": str(region.overture_root),
                "overture_release": region.overture_release,
            }
        ],
        "start": region.start.isoformat(),
        "end": region.end.isoformat(),
        "output": str(out),
        "sources": {"provider": "earth-search", "collection": "sentinel-2-l2a"},
        "captioning": {"captioner": "facts"},
        "execution": {
            "task_runner": "dask",
            "dask_workers": workers,
            "shard_size": shard_size,
            "shards_in_flight": 2 * workers,
            "retries": 2,
            "retry_delay_seconds": 1.0,
        },
    }


def inprocess(
    region: LargeRegion, n_samples: int, stac_url: str, out: Path, shard_size: int
) -> dict[str, Any]:
    """The same plan with the in-process runner (pipeline.execute), in a child process, sampled alike."""
    code = (
        "import json, sys\n"
        "from flows.settings import RegionSpec, Sources, Captioning, Execution, run_config\n"
        "from pipeline.execute import execute\n"
        "p = json.load(open(sys.argv[1]))\n"
        "r = RegionSpec.model_validate(p['regions'][0])\n"
        "cfg = run_config(r, p['start'], p['end'], p['output'], Sources(**p['sources']), "
        "Captioning(**p['captioning']), Execution(shard_size=p['execution']['shard_size']))\n"
        "execute(cfg, progress=False)\n"
    )
    params = region_params(region, n_samples, stac_url, out, 1, shard_size)
    t0 = time.perf_counter()
    proc = start_child(code, params, out.parent / f"inproc-{n_samples}.log", None)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    proc.wait()
    sampler.stop()
    wall = time.perf_counter() - t0
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
        "chips_per_s": round(n_samples / wall, 2),
    }


def bench_size(
    region: LargeRegion,
    n: int,
    url: str,
    work: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    kill: bool,
) -> dict[str, Any]:
    out = work / f"runs-{n}"
    run_dir = out / f"n{n}"
    params = region_params(region, n, url, out, args.workers, args.shard_size)
    n_shards = -(-n // args.shard_size)
    print(f"[{n} samples] build_dataset, {args.workers} Dask workers, {n_shards} shards", flush=True)
    first = run_flow(
        params, env, work / f"run-{n}-a.log", run_dir, n_shards, kill_worker_at=args.kill_at if kill else None
    )
    print(
        f"  first run: rc {first['rc']}, {first['wall_s']} s, peak RSS {first['peak_rss_mb']} MB "
        f"{first['peak_rss_by_role_mb']}",
        flush=True,
    )
    resumed = None
    if first["rc"] != 0:
        done_before = done_markers(run_dir)
        resumed = run_flow(params, env, work / f"run-{n}-b.log", run_dir, n_shards)
        resumed["done_before"] = done_before
        print(
            f"  resumed: rc {resumed['rc']}, {resumed['wall_s']} s ({done_before} shards were done)",
            flush=True,
        )
    check = check_complete(run_dir)
    before = snapshot(run_dir)
    again = run_flow(params, env, work / f"run-{n}-again.log", run_dir, n_shards)
    rewritten = sorted(
        k for k, v in snapshot(run_dir).items() if k.endswith(".parquet") and before.get(k) != v
    )
    print(
        f"  second run of the finished plan: rc {again['rc']}, {again['wall_s']} s, "
        f"{len(rewritten)} shards rewritten",
        flush=True,
    )
    plan = load_plan(run_dir)
    est = estimate(plan, CostModel(cores=args.workers))
    wall = first["wall_s"] + (resumed["wall_s"] if resumed else 0.0)
    stats = json.loads((run_dir / "stats.json").read_text())
    stage_s = {k: v for k, v in (stats.get("stage_seconds") or {}).items()} if isinstance(stats, dict) else {}
    result = {
        "samples": n,
        "shards": len(plan.shards),
        "first": first,
        "resumed": resumed,
        "again": again,
        "check": check,
        "rewritten_on_second_run": rewritten,
        "wall_s": round(wall, 2),
        "chips_per_s": round(n / wall, 2),
        "chips_per_s_per_core": round(n / wall / args.workers, 2),
        "estimate": est,
        "stage_seconds": stage_s,
    }
    if args.inprocess:
        shutil.rmtree(work / f"inproc-{n}", ignore_errors=True)
        result["inprocess"] = inprocess(region, n, url, work / f"inproc-{n}" / "out", args.shard_size)
        print(f"  in-process runner: {result['inprocess']}", flush=True)
    print(
        f"  check: {check['rows']} rows of {check['planned']} planned; "
        f"problems: {check['problems'] or 'none'}",
        flush=True,
    )
    return result


def print_table(results: list[dict[str, Any]], load: tuple[float, float, float]) -> None:
    print(f"\nload average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    head = (
        f"{'samples':>8} {'shards':>6} {'wall s':>8} {'chips/s':>8} {'/core':>6} {'peak RSS MB':>11} "
        f"{'read GB (meas.)':>15} {'read GB (est.)':>14} {'est. cpu h':>10} {'2nd run s':>9} {'killed':>7}"
    )
    print(head)
    for r in results:
        e = r["estimate"]
        peak = max(r["first"]["peak_rss_mb"], (r["resumed"] or {}).get("peak_rss_mb", 0))
        read = r["first"]["read_chars_gb"] + (r["resumed"] or {}).get("read_chars_gb", 0)
        print(
            f"{r['samples']:>8} {r['shards']:>6} {r['wall_s']:>8} {r['chips_per_s']:>8} "
            f"{r['chips_per_s_per_core']:>6} {peak:>11} {read:>15.2f} {e['read_gb']:>14} "
            f"{e['cpu_hours_chip_work']:>10} {r['again']['wall_s']:>9} "
            f"{'yes' if r['first']['killed'] else 'no':>7}"
        )
    if len(results) >= 2:
        small, large = results[0], results[-1]
        ps = max(small["first"]["peak_rss_mb"], (small["resumed"] or {}).get("peak_rss_mb", 0))
        pl = max(large["first"]["peak_rss_mb"], (large["resumed"] or {}).get("peak_rss_mb", 0))
        ratio = pl / ps
        print(
            f"peak memory {large['samples']} vs {small['samples']} samples: {ratio:.2f}x "
            f"({'within' if ratio <= 1.2 else 'ABOVE'} the 1.2x bound)"
        )
        print(
            f"throughput {large['samples']} vs {small['samples']} samples: "
            f"{large['chips_per_s'] / small['chips_per_s']:.2f}x"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="1,000 and 10,000 samples on a 50x50-chip world")
    ap.add_argument("--sizes", default=None, help="comma-separated sample counts (multiples of 4)")
    ap.add_argument("--root", type=Path, default=ROOT / "outputs" / "bench-scale", help="world + runs folder")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=None)
    ap.add_argument(
        "--kill-worker", action="store_true", help="SIGKILL a Dask worker midway in the largest run"
    )
    ap.add_argument("--kill-at", type=float, default=0.4, help="share of shards written before the kill")
    ap.add_argument("--inprocess", action="store_true", help="also time the in-process runner")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    nx, ny, tile = (50, 50, 10) if args.full else (10, 5, 5)
    sizes = (
        [int(s) for s in args.sizes.split(",")] if args.sizes else ([1000, 10000] if args.full else [40, 200])
    )
    args.shard_size = args.shard_size or (64 if args.full else 8)

    from sentinel.stac_server import serve_stac

    t0 = time.perf_counter()
    region = build_large(
        args.root / f"world-{nx}x{ny}", nx, ny, seed=0, tile_chips=tile, workers=args.workers
    )
    print(
        f"world {nx}x{ny} chips ({region.n_samples} samples, {len(region.tiles)} tiles x {len(region.dates)} "
        f"dates, {region.n_features} features): ready in {time.perf_counter() - t0:.1f} s; built in "
        f"{region.build_seconds} s; disk {[f'{k} {v / 2**30:.2f} GB' for k, v in region.disk_bytes.items()]}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="runs-", dir=args.root))
    home = Path(tempfile.mkdtemp(prefix="prefect-home-", dir=args.root))
    os.environ.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        }
    )
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    results = []
    with (
        prefect_test_harness(server_startup_timeout=90),
        serve_stac(region.collection_json, region.items_ndjson) as url,
    ):
        env = {
            **os.environ,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        for k, n in enumerate(sizes):
            results.append(
                bench_size(region, n, url, work, env, args, kill=args.kill_worker and k == len(sizes) - 1)
            )
    print_table(results, os.getloadavg())
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
