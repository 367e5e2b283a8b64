"""The runner: plan -> shards -> stages -> shard writer, resumable from the run folder.

`Run` holds what one process needs to execute shards (connections, captioner, filters). The CLI loops over the
shards itself; Prefect flows call `Run.process_shard` from tasks. Either way a shard is written once, atomically,
with its done-marker last, and a resumed run skips every shard that has a marker.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from overture.connect import connect
from pipeline import shards as shard_io
from pipeline.captioners.base import Captioner
from pipeline.config import CaptionerConfig, RunConfig
from pipeline.errors import RunAborted
from pipeline.filters import NearDuplicateIndex, build_filters
from pipeline.plan import Plan, load_plan, make_plan, save_or_check_plan
from pipeline.publish import Publisher, PublishError
from pipeline.record import Sample
from pipeline.stages import (
    CaptionStage,
    FactsStage,
    FilterStage,
    PreviewStage,
    ReadStage,
    SearchStage,
    Stage,
)
from sentinel.sampling import grid_locations
from sentinel.seasons import season_windows

# statuses that point at infrastructure, not at the data: many of them in one shard stop the run
INFRA_STATUSES = frozenset({"read_error", "facts_error", "caption_error", "error"})
MIN_FAILURES_TO_ABORT = 4
log = logging.getLogger(__name__)
NEAR_DUPLICATES = Path("cache") / "near_duplicates.sqlite"


def build_plan(cfg: RunConfig) -> Plan:
    if cfg.plan is not None:
        return cfg.plan
    if cfg.locations is not None:
        return make_plan(list(cfg.locations), season_windows(cfg.start, cfg.end, cfg.season_rule), cfg.shard_size)
    grid = grid_locations(cfg.region.bbox, spacing_m=cfg.spacing_m)
    locations = [loc for loc in grid if loc.lonlat_polygon.intersects(cfg.region.geometry)]  # GeoJSON regions
    seasons = season_windows(cfg.start, cfg.end, cfg.season_rule)
    return make_plan(locations, seasons, cfg.shard_size)


def near_duplicate_index(cfg: RunConfig, run_dir: Path) -> NearDuplicateIndex:
    """The run's near-duplicate index, one SQLite file in the run folder shared by all its processes."""
    f = cfg.filters
    return NearDuplicateIndex(f.dedup_threshold, f.dedup_shingle, f.dedup_permutations, f.dedup_bands,
                              path=run_dir / NEAR_DUPLICATES)


def build_captioner(cfg: CaptionerConfig, cache_dir: Path) -> Captioner:
    """The configured backend, behind the (model, prompt version, image, facts) cache when enabled."""
    inner: Captioner
    if cfg.kind == "facts":
        from pipeline.captioners.facts import FactsCaptioner

        return FactsCaptioner()  # deterministic and instant: caching it would only cost disk
    if cfg.kind == "vllm":
        from pipeline.captioners.vllm_client import VllmCaptioner

        inner = VllmCaptioner(cfg.urls, cfg.model, prompt_version=cfg.prompt_version,
                              max_in_flight=cfg.max_in_flight)
    elif cfg.kind == "vllm-offline":
        from pipeline.captioners.vllm_offline import VllmOfflineCaptioner

        inner = VllmOfflineCaptioner(cfg.model, prompt_version=cfg.prompt_version)
    else:
        from pipeline.captioners.hf import TransformersCaptioner

        inner = TransformersCaptioner(cfg.model, prompt_version=cfg.prompt_version)
    if not cfg.cache:
        return inner
    from pipeline.captioners.cache import CachedCaptioner, CaptionCache

    cache_dir.mkdir(parents=True, exist_ok=True)
    return CachedCaptioner(inner, CaptionCache(cache_dir / "captions.sqlite"))


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("s2cap", "duckdb", "rasterio", "pystac-client", "pyarrow", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


@dataclass
class ShardWork:
    """One shard's samples between stages (picklable: flows may move it between workers)."""

    index: int
    samples: list[Sample]
    stage_stats: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ShardResult:
    index: int
    stats: dict[str, Any]
    skipped: bool = False


@dataclass
class Run:
    cfg: RunConfig
    plan: Plan
    stages: list[Stage]
    captioner: Captioner
    closers: list[Any] = field(default_factory=list)
    publisher: Publisher | None = None

    @property
    def run_dir(self) -> Path:
        return self.cfg.out

    @classmethod
    def open(cls, cfg: RunConfig, coordinator: bool = True) -> Run:
        """The coordinator plans (or reads the stored plan back and checks it), removes half-written shards and
        writes the manifest. Workers (`coordinator=False`, e.g. Dask workers of a flow) only read the plan back:
        they must not clean temporaries that another worker is writing."""
        run_dir = cfg.out
        if coordinator:
            plan = save_or_check_plan(run_dir, build_plan(cfg))
            shard_io.clean_partial(run_dir)
        else:
            plan = load_plan(run_dir)
        captioner = build_captioner(cfg.captioner, run_dir / "cache")
        con = connect()
        index = near_duplicate_index(cfg, run_dir)
        if coordinator:
            index.sync(run_dir)
        filters = build_filters(cfg.filters, index=index)
        stages: list[Stage] = [
            SearchStage(cfg.stac),
            ReadStage(cfg.read),
            FactsStage(con, cfg.overture),
            PreviewStage(cfg.preview),
            CaptionStage(captioner),
            FilterStage(filters),
        ]
        publisher = Publisher(cfg.publish) if cfg.publish else None
        run = cls(cfg, plan, stages, captioner, closers=[con, captioner, index], publisher=publisher)
        if coordinator:
            run.write_manifest(status="running")
            run.sync_published()
        return run

    def pending(self) -> list[int]:
        done = shard_io.done_shards(self.run_dir)
        return [i for i in range(len(self.plan.shards)) if i not in done]

    def process_shard(self, index: int) -> ShardResult:
        """All stages of one shard in this process, then the atomic write. Flows split the same work into
        `start_shard` / `run_stages` / `write` so that captioning can be its own rate-limited task."""
        if index in shard_io.done_shards(self.run_dir):
            return ShardResult(index, {}, skipped=True)
        work = self.start_shard(index)
        self.run_stages(work)
        return self.write(work)

    def start_shard(self, index: int) -> ShardWork:
        return ShardWork(index, self.plan.samples(index))

    def run_stages(self, work: ShardWork, names: Sequence[str] | None = None) -> ShardWork:
        """Run the named stages (all when None) in pipeline order on the shard's samples."""
        for stage in self.stages:
            if names is not None and stage.name not in names:
                continue
            before = {s.id for s in work.samples if s.ok}
            t0 = time.perf_counter()
            counts = stage.run(work.samples)
            seconds = time.perf_counter() - t0
            work.stage_stats[stage.name] = {"seconds": round(seconds, 4), "counts": dict(counts)}
            self._check_failure_rate(work.index, stage.name,
                                     [s for s in work.samples if s.id in before and not s.ok], len(before))
        return work

    def write(self, work: ShardWork) -> ShardResult:
        samples = work.samples
        stats = {
            "shard": work.index,
            "rows": len(samples),
            "stages": work.stage_stats,
            "status": dict(Counter(s.status for s in samples)),
            "kept": sum(1 for s in samples if s.keep),
        }
        shard_io.write_shard(self.run_dir, work.index, samples, stats)
        if self.publisher is not None:
            try:
                self.publisher.publish_shard(self.run_dir, work.index)
            except PublishError as exc:  # the shard is written; `sync_published` uploads it at the end or on resume
                log.warning("shard %d: %s; it will be uploaded at the end of the run or on resume", work.index, exc)
        return ShardResult(work.index, stats)

    def sync_published(self, run_files: bool = False) -> None:
        """Upload the written shards the object store lacks (the coordinator, at start and at the end)."""
        if self.publisher is not None:
            n = self.publisher.sync(self.run_dir, run_files=run_files)
            if n:
                log.info("uploaded %d shard(s) to %s that an earlier attempt had not", n, self.publisher.url)

    def _check_failure_rate(self, index: int, stage: str, failed: list[Sample], n: int) -> None:
        infra = [s for s in failed if s.status in INFRA_STATUSES]
        if len(infra) >= MIN_FAILURES_TO_ABORT and len(infra) > self.cfg.max_failure_rate * n:
            top, k = Counter(s.status for s in infra).most_common(1)[0]
            example = next(s.error for s in infra if s.status == top)
            raise RunAborted(
                f"shard {index}: {len(infra)} of {n} samples failed in stage '{stage}' ({top}: {example}); "
                "this looks like an infrastructure fault, so the shard was not written. Fix it and rerun the same "
                "command to resume."
            )

    def write_manifest(self, status: str, extra: dict[str, Any] | None = None) -> None:
        path = self.run_dir / "manifest.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        manifest = {
            "tool": "s2cap",
            "status": status,
            "created": old.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "plan": {"fingerprint": self.plan.fingerprint(), "shards": len(self.plan.shards),
                     "samples": self.plan.n_samples, "locations": len(self.plan.locations),
                     "seasons": [s.name for s in self.plan.seasons], "shard_size": self.plan.shard_size},
            "sources": {"stac_url": self.cfg.stac.url, "stac_collection": self.cfg.stac.collection,
                        "overture_release": self.cfg.overture.release, "overture_root": self.cfg.overture.root},
            "region": f"{self.cfg.region.label}, bbox " + ",".join(f"{v:.5f}" for v in self.cfg.region.bbox),
            "captioner": self.captioner.name,
            "model": self.captioner.model,
            "prompt_version": self.captioner.prompt_version,
            "prompt_hash": "per row (column prompt_hash: the rendered chain and the image)",
            "config": self.cfg.describe(),
            "versions": _versions(),
            **(extra or {}),
        }
        write_json_atomic(path, manifest)

    def finish(self, wall_s: float | None = None) -> dict[str, Any]:
        """Merge the shard stats, write stats.json, the manifest and the dataset card."""
        from pipeline.card import write_card
        from pipeline.stats import run_stats

        stats = run_stats(self.run_dir)
        if wall_s is not None:
            stats["wall_seconds"] = round(wall_s, 2)
        write_json_atomic(self.run_dir / "stats.json", stats)
        complete = not self.pending()
        self.write_manifest(status="complete" if complete else "partial")
        manifest = json.loads((self.run_dir / "manifest.json").read_text())
        write_card(self.run_dir, manifest, stats)
        self.sync_published(run_files=True)
        return stats

    def close(self) -> None:
        for c in self.closers:
            close = getattr(c, "close", None)
            if close:
                close()
