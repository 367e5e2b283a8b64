"""Run every pending shard of a run in this process, with a progress bar and the summary table at the end."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipeline.config import RunConfig
from pipeline.runner import Run
from pipeline.summary import summarize, summary_table


def execute(cfg: RunConfig, console: Console | None = None, progress: bool = True) -> dict[str, Any]:
    console = console or Console(stderr=True)
    t0 = time.perf_counter()
    run = Run.open(cfg)
    stage_seconds: dict[str, float] = defaultdict(float)
    try:
        pending = run.pending()
        if len(pending) < len(run.plan.shards):
            console.print(f"resuming {cfg.out}: {len(run.plan.shards) - len(pending)} of "
                          f"{len(run.plan.shards)} shards already done")
        columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("samples"), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            task = bar.add_task("captioning", total=run.plan.n_samples,
                                completed=run.plan.n_samples - sum(len(run.plan.shards[i]) for i in pending))
            for index in pending:
                result = run.process_shard(index)
                for name, st in result.stats.get("stages", {}).items():
                    stage_seconds[name] += st["seconds"]
                bar.advance(task, len(run.plan.shards[index]))
        wall = time.perf_counter() - t0
        stats = run.finish(wall)
    finally:
        run.close()
    summary = summarize(stats, {k: round(v, 3) for k, v in stage_seconds.items()})
    summary["wall_seconds"] = round(wall, 2)
    summary["stats"] = stats
    console.print(summary_table(summary, run.plan.n_samples, wall))
    console.print(f"shards, manifest and card in {cfg.out}")
    return summary
