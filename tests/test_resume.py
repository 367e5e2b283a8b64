"""Kill-and-resume: a run killed with SIGKILL at random points and started again ends with every planned sample
exactly once and no corrupt shard."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import S2CAP, run_cli

ARGS = ("--chips-x", "5", "--chips-y", "2", "--quiet")  # 40 samples in 5 shards of 8


def _markers(out: Path) -> int:
    return len(list((out / "shards").glob("_*.done.json"))) if (out / "shards").is_dir() else 0


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rng = random.Random(20261123)
    kills = 0
    for _ in range(4):
        before = _markers(out)
        proc = subprocess.Popen([S2CAP, "demo", "--out", str(out), *ARGS], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # kill at a random moment after this attempt wrote a shard: mid-run whatever the machine's speed
        deadline = time.monotonic() + 120
        while proc.poll() is None and _markers(out) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the CLI and its STAC server
            kills += 1
        proc.wait()
    assert kills >= 2, "the run finished before it could be killed twice; make the test region larger"
    run_cli("demo", "--out", str(out), *ARGS)

    plan = json.loads((out / "plan.json").read_text())
    planned = [f"{plan['locations'][li][0]}_{plan['seasons'][si][0]}" for shard in plan["shards"]
               for li, si in shard]
    ids: Counter[str] = Counter()
    for path in sorted((out / "shards").glob("*.parquet")):
        table = pq.read_table(path)  # raises on a corrupt file
        ids.update(table.column("id").to_pylist())
        assert path.with_name("_" + path.stem + ".done.json").exists(), f"{path.name} has no done-marker"
    assert sorted(ids) == sorted(planned)
    assert set(ids.values()) == {1}, "no sample twice"
    assert not [p for p in (out / "shards").iterdir() if ".tmp" in p.name], "no temporaries left"
