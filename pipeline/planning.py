"""`s2cap plan`: a sampling spec -> a deterministic work plan in a run folder, with what it will cost.

The spec (YAML or JSON) names where chips go (SSL4EO's Gaussian around cities, or a grid over a bbox), the time
range and season rule, and the shard size. The estimate multiplies the plan's sample count by per-sample costs that
were measured (each default says where its number comes from) so a million-sample run can be costed before it
starts. Every per-sample cost is an option: replace a default with your own measurement.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError
from pipeline.plan import Plan, make_plan, save_or_check_plan
from sentinel.sampling import gaussian_locations, grid_locations
from sentinel.seasons import season_windows


@dataclass
class SamplingSpec:
    sampling: str  # "gaussian" (SSL4EO-S12: Gaussian around city points) or "grid"
    start: dt.date
    end: dt.date
    seasons: str = "quarters"
    shard_size: int = 64
    cities: list[tuple[str, float, float]] = field(default_factory=list)  # (name, lon, lat), gaussian only
    n_per_city: int = 25
    sigma_km: float = 50.0
    seed: int = 0
    bbox: tuple[float, float, float, float] | None = None  # grid only
    spacing_m: float = 2640.0

    def __post_init__(self) -> None:
        if self.sampling not in ("gaussian", "grid"):
            raise InputError(f"sampling {self.sampling!r}: use 'gaussian' (around cities) or 'grid' (over a bbox)")
        if self.sampling == "gaussian" and not self.cities:
            raise InputError("sampling 'gaussian' needs `cities: [[name, lon, lat], ...]` (or cities_csv: FILE)")
        if self.sampling == "grid" and self.bbox is None:
            raise InputError("sampling 'grid' needs `bbox: [W, S, E, N]`")
        if self.end < self.start:
            raise InputError(f"start {self.start} / end {self.end}: the time range is empty")

    def locations(self) -> list[Any]:
        if self.sampling == "gaussian":
            return gaussian_locations(self.cities, self.n_per_city, self.sigma_km, self.seed)
        assert self.bbox is not None
        return grid_locations(self.bbox, self.spacing_m)

    def plan(self) -> Plan:
        try:
            return make_plan(self.locations(), season_windows(self.start, self.end, self.seasons), self.shard_size)
        except ValueError as exc:
            raise InputError(str(exc)) from None


def load_spec(path: Path) -> SamplingSpec:
    if not path.is_file():
        raise InputError(f"--spec {path}: file not found; write a YAML/JSON sampling spec (see docs/scale.md)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"--spec {path}: not valid YAML/JSON ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise InputError(f"--spec {path}: expected a mapping of settings at the top level")
    raw = dict(raw)
    if "cities_csv" in raw:
        csv = (path.parent / str(raw.pop("cities_csv"))).resolve()
        if not csv.is_file():
            raise InputError(f"--spec {path}: cities_csv {csv} not found")
        rows = [ln.split(",") for ln in csv.read_text().splitlines()[1:] if ln.strip()]
        raw["cities"] = [(r[0].strip(), float(r[1]), float(r[2])) for r in rows]
    known = set(SamplingSpec.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"--spec {path}: unknown settings {unknown}; known: {sorted(known)}")
    try:
        for key in ("start", "end"):
            if key in raw and not isinstance(raw[key], dt.date):
                raw[key] = dt.date.fromisoformat(str(raw[key]))
        if raw.get("cities"):
            raw["cities"] = [(str(n), float(lo), float(la)) for n, lo, la in raw["cities"]]
        if raw.get("bbox") is not None:
            raw["bbox"] = tuple(float(v) for v in raw["bbox"])
        return SamplingSpec(**raw)
    except (TypeError, ValueError) as exc:
        raise InputError(f"--spec {path}: {exc}") from None


@dataclass
class CostModel:
    """Per-sample costs. Defaults are measurements from this repository's benchmarks (see docs/scale.md)."""

    # bench/bench_sentinel.py: windowed reads of 12 bands + SCL, COGs with 512 px tiles (6.1 MB per chip). Earth
    # Search COGs use 1024 px tiles, so count up to ~4x that for them.
    read_mb_per_sample: float = 6.1
    # bench/bench_overture.py: rows the batched query scans per chip on a dense synthetic region
    overture_rows_per_location: float = 199.0
    # prompts/v1: 5 model calls per sample (questions, 3 answers, caption); realistic reply lengths measured in
    # bench/bench_gpu_caption.py are 60 + 3 x 40 + 80 tokens (the v1 budgets allow up to 704)
    calls_per_sample: int = 5
    completion_tokens_per_sample: float = 260.0
    # 1,176 image tokens (LLaVA-Next anyres, 264-336 px preview) + ~70-270 text tokens per call (bench_gpu_caption)
    prompt_tokens_per_call: float = 1350.0
    # docs/gpu-throughput.md: transformers, batch 64, one H100, llama3-llava-next-8b architecture. vLLM should do
    # better (continuous batching, prefix caching of the image across the 5 calls): treat this as a lower bound.
    captions_per_gpu_hour: float = 5600.0
    gpus: int = 1
    cpu_samples_per_core_second: float = 3.6  # bench_sentinel: search + read + preview per core
    cores: int = 16


def estimate(plan: Plan, cost: CostModel) -> dict[str, Any]:
    n = plan.n_samples
    gpu_hours = n / cost.captions_per_gpu_hour
    return {
        "samples": n,
        "locations": len(plan.locations),
        "seasons": [s.name for s in plan.seasons],
        "shards": len(plan.shards),
        "read_gb": round(n * cost.read_mb_per_sample / 1024, 2),
        "overture_rows": int(len(plan.locations) * cost.overture_rows_per_location),
        "model_calls": n * cost.calls_per_sample,
        "prompt_tokens": int(n * cost.calls_per_sample * cost.prompt_tokens_per_call),
        "completion_tokens": int(n * cost.completion_tokens_per_sample),
        "gpu_hours": round(gpu_hours, 2),
        "wall_hours_on_gpus": round(gpu_hours / max(cost.gpus, 1), 2),
        "cpu_hours_chip_work": round(n / cost.cpu_samples_per_core_second / 3600, 2),
        "wall_hours_cpu_on_cores": round(n / cost.cpu_samples_per_core_second / 3600 / max(cost.cores, 1), 2),
        "cost_model": asdict(cost),
    }


def write_plan(spec: SamplingSpec, out: Path, cost: CostModel) -> dict[str, Any]:
    plan = save_or_check_plan(out, spec.plan())
    est = estimate(plan, cost)
    (out / "estimate.json").write_text(json.dumps(est, indent=2))
    return est
