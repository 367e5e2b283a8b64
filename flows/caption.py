"""`caption_region`: the CLI's work as a Prefect flow whose stages are tasks, and the engine it shares with
`build_dataset`.

Per region the flow process is the coordinator: it plans (or reads plan.json back), cleans half-written
shards and skips every shard that has a done-marker. Each pending shard becomes three chained tasks on the
task runner (threads or Dask), at most `shards_in_flight` shards at a time so memory stays bounded. At the
end each region gets `Run.finish` (stats.json, manifest, card), a run-summary table artifact and a stats
markdown artifact; a progress artifact per region moves as shards are written.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prefect import Task, flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner

from flows.settings import Captioning, Execution, RegionSpec, Sources, make_task_runner, run_config
from flows.tasks import RegionJob, caption_shard, configured, finish_shard, prepare_shard
from pipeline.runner import Run
from pipeline.summary import summarize


class ShardsFailed(RuntimeError):
    """Some shards failed after their retries; the others are written and a rerun resumes the rest."""


@dataclass
class _Region:
    job: RegionJob
    run: Run
    pending: list[int]
    total: int
    progress_id: UUID | None = None
    done: int = 0
    stage_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def eta(self) -> str:
        """Progress and the time left at this run's own pace (shards done before it do not count)."""
        done_here = self.done - (self.total - len(self.pending))
        if done_here <= 0:
            return f"{self.done}/{self.total} shards"
        left = (time.perf_counter() - self.started) / done_here * (self.total - self.done)
        return f"{self.done}/{self.total} shards, ETA {left / 60:.1f} min"


def artifact_key(name: str, suffix: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", f"{name}-{suffix}".lower())).strip("-")


def run_regions(jobs: list[RegionJob], execution: Execution) -> list[dict[str, Any]]:
    """Every pending shard of every region through the task runner; one summary per region."""
    logger = get_run_logger()
    t0 = time.perf_counter()
    regions: list[_Region] = []
    try:
        for job in jobs:
            run = Run.open(job.cfg, coordinator=True)
            reg = _Region(job, run, run.pending(), len(run.plan.shards))
            regions.append(reg)
            reg.done = reg.total - len(reg.pending)
            reg.progress_id = create_progress_artifact(
                progress=100.0 * reg.done / reg.total, key=artifact_key(job.name, "progress"),
                description=f"{job.name}: shards written of {reg.total} ({run.plan.n_samples} samples)")
            if reg.done:
                logger.info("%s: resuming, %d of %d shards already done", job.name, reg.done, reg.total)
        _run_shards(regions, execution)
        wall = time.perf_counter() - t0
        return [_finish_region(reg, wall) for reg in regions]
    finally:
        for reg in regions:
            reg.run.close()


def _run_shards(regions: list[_Region], execution: Execution) -> None:
    logger = get_run_logger()
    prepare = configured(prepare_shard, execution.retries, execution.retry_delay_seconds)
    caption = configured(caption_shard, execution.retries, execution.retry_delay_seconds)
    finish = configured(finish_shard, execution.retries, execution.retry_delay_seconds)
    queue = [(reg, i) for reg in regions for i in reg.pending]
    if not queue:
        logger.info("every shard is written already; nothing to run")
        return  # no cluster to start: a rerun of a finished plan does no work
    queue.reverse()
    task_jobs = {id(reg): reg.job.for_tasks() for reg in regions}
    while queue:  # waves of `shards_per_runner` shards, each on a fresh task runner (see Execution)
        wave = [queue.pop() for _ in range(min(execution.shards_per_runner, len(queue)))]
        wave.reverse()
        with make_task_runner(execution) as runner:
            _run_wave(wave, runner, task_jobs, execution, (prepare, caption, finish))
    failed = [f"{reg.job.name} {msg}" for reg in regions for msg in reg.failures]
    if failed:
        for reg in regions:  # write what was done (manifest 'partial') before failing the flow
            _finish_region(reg, None)
        raise ShardsFailed(f"{len(failed)} shard(s) failed after retries ({'; '.join(failed[:3])}); the "
                           "other shards are written: fix the cause and run the flow again to resume")


def _run_wave(
    wave: list[tuple[_Region, int]],
    runner: TaskRunner[Any],
    task_jobs: dict[int, RegionJob],
    execution: Execution,
    tasks: tuple[Task[..., Any], Task[..., Any], Task[..., Any]],
) -> None:
    """Every shard of `wave` (a stack: the last item goes first) through prepare -> caption -> finish, at most
    `shards_in_flight` at a time; failures are recorded on the region, progress artifacts move."""
    logger = get_run_logger()
    prepare, caption, finish = tasks
    inflight: dict[PrefectFuture[Any], tuple[_Region, int, list[PrefectFuture[Any]]]] = {}
    while wave or inflight:
        while wave and len(inflight) < execution.shards_in_flight:
            reg, index = wave.pop()
            job = task_jobs[id(reg)]
            p = runner.submit(prepare, {"job": job, "index": index})
            c = runner.submit(caption, {"job": job, "work": p})
            f = runner.submit(finish, {"job": job, "work": c})
            inflight[f] = (reg, index, [p, c, f])
        fut = next(as_completed(list(inflight)))
        reg, index, chain = inflight.pop(fut)
        try:
            stats = fut.result()
        except Exception:  # noqa: BLE001 - reported below; the other shards go on
            message = _first_error(chain)
            reg.failures.append(f"shard {index}: {message}")
            logger.error("%s shard %d failed after retries: %s", reg.job.name, index, message)
        else:
            for name, st in stats.get("stages", {}).items():
                reg.stage_seconds[name] += st["seconds"]
        reg.done += 1
        logger.info("%s: shard %d finished; %s", reg.job.name, index, reg.eta())
        if reg.progress_id is not None:
            update_progress_artifact(reg.progress_id, 100.0 * reg.done / reg.total)


def _first_error(chain: list[PrefectFuture[Any]]) -> str:
    """The root cause of a failed shard: the first of its chained tasks that raised (the later ones only
    report that their upstream did not complete)."""
    for fut in chain:
        try:
            fut.result()
        except Exception as exc:  # noqa: BLE001 - turned into the report
            return f"{type(exc).__name__}: {exc}"
    return "unknown failure"


def _finish_region(reg: _Region, wall: float | None) -> dict[str, Any]:
    stats = reg.run.finish(wall)
    summary = summarize(stats, {k: round(v, 3) for k, v in reg.stage_seconds.items()})
    status = summary["status"]
    row = {"region": reg.job.name, "run folder": str(reg.job.cfg.out), "shards": reg.total,
           "samples planned": reg.run.plan.n_samples, "rows written": summary["rows"],
           "ok": status.get("ok", 0), "captioned": summary["captioned"], "kept": summary["kept"],
           "failed": sum(n for s, n in status.items() if s != "ok"),
           "failed shards": len(reg.failures),
           "wall seconds": round(wall, 2) if wall is not None else None}
    create_table_artifact(table=[row], key=artifact_key(reg.job.name, "summary"),
                          description=f"s2cap run summary of {reg.job.name}")
    create_markdown_artifact(markdown=_stats_markdown(reg.job.name, summary, stats),
                             key=artifact_key(reg.job.name, "stats"),
                             description=f"s2cap stats.json of {reg.job.name}")
    return {**row, "status": status, "dropped": summary["dropped"], "stage_seconds": summary["stage_seconds"]}


def _stats_markdown(name: str, summary: dict[str, Any], stats: dict[str, Any]) -> str:
    lines = [f"# s2cap stats: {name}", "", "| status | rows |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in sorted(summary["status"].items())]
    if summary["dropped"]:
        lines += ["", "| flagged by filter | rows |", "|---|---|"]
        lines += [f"| {r} | {n} |" for r, n in sorted(summary["dropped"].items())]
    lines += ["", "```json", json.dumps(stats, indent=2, default=str)[:20000], "```"]
    return "\n".join(lines)


@flow(name="caption_region", log_prints=True)
def caption_region(
    region: RegionSpec,
    start: str = "2024-01-01",
    end: str = "2024-12-31",
    output: str = "outputs",
    sources: Sources = Sources(),  # noqa: B008 - immutable pydantic defaults, shown in the deployment form
    captioning: Captioning = Captioning(),  # noqa: B008
    execution: Execution = Execution(),  # noqa: B008
) -> dict[str, Any]:
    """Caption one region into `<output>/<region.name>`: chips from STAC, Overture facts, previews, captions,
    filters, Parquet shards. Rerun with the same parameters to resume."""
    cfg = run_config(region, start, end, output, sources, captioning, execution)
    return run_regions([RegionJob(region.name, cfg)], execution)[0]
