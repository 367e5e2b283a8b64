"""`s2cap plan`: a sampling spec becomes a deterministic plan with a cost estimate, and caption-region runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.errors import InputError
from pipeline.planning import CostModel, estimate, load_spec
from sentinel.stac_server import serve_stac
from synthetic.demo import build_demo
from tests.helpers import run_cli

GAUSSIAN = """
sampling: gaussian
cities: [[Innsbruck, 11.40, 47.26], [Bolzano, 11.35, 46.50]]
n_per_city: 5
sigma_km: 20
seed: 7
start: 2023-01-01
end: 2023-12-31
seasons: quarters
shard_size: 16
"""


def test_gaussian_plan_is_deterministic_and_costed(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(GAUSSIAN)
    spec = load_spec(tmp_path / "spec.yaml")
    a, b = spec.plan(), spec.plan()
    assert a.fingerprint() == b.fingerprint()
    assert len(a.locations) == 10 and a.n_samples == 40 and len(a.shards) == 3
    est = estimate(a, CostModel(captions_per_gpu_hour=500.0, gpus=2, read_mb_per_sample=10.0))
    assert est["samples"] == 40
    assert est["gpu_hours"] == pytest.approx(40 / 500)
    assert est["wall_hours_on_gpus"] == pytest.approx(40 / 500 / 2)
    assert est["read_gb"] == pytest.approx(round(400 / 1024, 2))
    assert est["model_calls"] == 200


def test_bad_specs_are_named(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("sampling: gaussian\nstart: 2024-01-01\nend: 2024-12-31\n")
    with pytest.raises(InputError, match="needs `cities"):
        load_spec(path)
    path.write_text("sampling: grid\nbbox: [1, 2, 3, 4]\nstart: 2024-01-01\nend: 2024-12-31\ncolour: red\n")
    with pytest.raises(InputError, match="unknown settings"):
        load_spec(path)
    with pytest.raises(InputError, match="not found"):
        load_spec(tmp_path / "missing.yaml")


def test_plan_then_run_the_stored_plan(tmp_path: Path) -> None:
    world = build_demo(tmp_path / "world", seed=5, n_chips_x=3, n_chips_y=2)
    w, s, e, n = world.bbox
    (tmp_path / "spec.yaml").write_text(
        f"sampling: grid\nbbox: [{w}, {s}, {e}, {n}]\nstart: {world.start}\nend: {world.end}\nshard_size: 8\n")
    out = tmp_path / "run"
    proc = run_cli("plan", "--spec", str(tmp_path / "spec.yaml"), "--out", str(out), "--gpus", "4")
    assert "gpu hours" in proc.stdout
    plan = json.loads((out / "plan.json").read_text())
    est = json.loads((out / "estimate.json").read_text())
    planned = sum(len(sh) for sh in plan["shards"])
    assert est["samples"] == planned > 0
    with serve_stac(world.collection_json, world.items_ndjson) as url:
        run_cli("caption-region", "--out", str(out), "--stac-url", url, "--overture-path", str(world.overture_root),
                "--captioner", "facts", "--quiet")
    rows = pq.read_table(out / "shards").to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(
        f"{plan['locations'][li][0]}_{plan['seasons'][si][0]}" for sh in plan["shards"] for li, si in sh)
