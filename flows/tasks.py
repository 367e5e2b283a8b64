"""The shard tasks: the runner's own stage functions, split so that captioning is its own rate-limited task.

prepare_shard (search, read, facts, preview) -> caption_shard (tag "captioner") -> finish_shard (filter,
write).
A task builds nothing itself: it asks the per-thread cache for the region's `Run` (DuckDB connections and
SQLite caches cannot be pickled or shared between threads) and calls `Run.start_shard / run_stages / write`.

Results are not persisted: a shard's payload (chips, previews) is large, and resuming rests on the shard
done-markers that `Run.write` leaves last, not on Prefect's result store.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from pipeline.config import RunConfig
from pipeline.errors import InputError
from pipeline.runner import Run, ShardWork

PREPARE_STAGES = ["search", "read", "facts", "preview"]
CAPTION_STAGES = ["caption"]
FINISH_STAGES = ["filter"]
CAPTIONER_TAG = "captioner"
RUNS_PER_THREAD = 4


@dataclass
class RegionJob:
    """What a worker needs to rebuild a region's `Run`: the config and a key naming it (folder + config)."""

    name: str
    cfg: RunConfig
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            described = json.dumps(self.cfg.describe(), sort_keys=True, default=str)
            self.key = f"{self.cfg.out.resolve()}#{hashlib.sha256(described.encode()).hexdigest()[:12]}"

    def for_tasks(self) -> RegionJob:
        """The job a task carries. Workers read plan.json back from the run folder, so the location list and
        the plan stay in the flow process: a task's payload is the same few kilobytes at any plan size."""
        return RegionJob(self.name, dataclasses.replace(self.cfg, locations=None, plan=None), self.key)


_local = threading.local()


def worker_run(job: RegionJob) -> Run:
    """This thread's `Run` for the region, opened once as a worker (reads the plan back, never re-plans)."""
    runs: OrderedDict[str, Run] | None = getattr(_local, "runs", None)
    if runs is None:
        runs = _local.runs = OrderedDict()
    run = runs.get(job.key)
    if run is None:
        run = Run.open(job.cfg, coordinator=False)
        runs[job.key] = run
        while len(runs) > RUNS_PER_THREAD:
            runs.popitem(last=False)[1].close()
    runs.move_to_end(job.key)
    return run


def close_thread_runs() -> None:
    """Close this thread's cached runs (tests and benchmarks that reuse a process)."""
    runs: OrderedDict[str, Run] | None = getattr(_local, "runs", None)
    while runs:
        runs.popitem()[1].close()


def _fresh(work: ShardWork) -> ShardWork:
    """A copy whose samples a failed attempt may change without touching the input a retry will get again.
    Shallow per sample: stages assign attributes and never change the arrays in place."""
    return ShardWork(work.index, [copy.copy(s) for s in work.samples], dict(work.stage_stats))


def retry_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry everything except bad input: a config error fails the same way every time."""
    try:
        state.result()
    except InputError:
        return False
    except BaseException:  # noqa: BLE001 - any other fault (network, server, disk) may be transient
        return True
    return True


_common: dict[str, Any] = dict(retries=2, retry_delay_seconds=2.0, retry_condition_fn=retry_transient,
                               cache_policy=NO_CACHE, persist_result=False)


@task(name="prepare_shard", task_run_name="prepare-{job.name}-{index}", **_common)
def prepare_shard(job: RegionJob, index: int) -> ShardWork:
    """STAC search, chip reads, Overture facts and RGB previews of one shard."""
    run = worker_run(job)
    return run.run_stages(run.start_shard(index), PREPARE_STAGES)


@task(name="caption_shard", task_run_name="caption-{job.name}-{work.index}", tags=[CAPTIONER_TAG], **_common)
def caption_shard(job: RegionJob, work: ShardWork) -> ShardWork:
    """The prompt chain for one shard. Tagged `captioner`: a tag concurrency limit bounds how many caption
    tasks (each with up to `max_in_flight` requests) reach the model servers at once."""
    return worker_run(job).run_stages(_fresh(work), CAPTION_STAGES)


@task(name="finish_shard", task_run_name="finish-{job.name}-{work.index}", **_common)
def finish_shard(job: RegionJob, work: ShardWork) -> dict[str, Any]:
    """Filters, then the atomic shard write with its done-marker last; returns the shard's stats."""
    run = worker_run(job)
    done = run.run_stages(_fresh(work), FINISH_STAGES)
    return run.write(done).stats


def configured(t: Task[..., Any], retries: int, retry_delay_seconds: float) -> Task[..., Any]:
    return t.with_options(retries=retries, retry_delay_seconds=retry_delay_seconds)
