"""`build_dataset`: many regions (a list or a sampling-plan file) in one flow run.

The regions are mapped onto shard tasks: every pending shard of every region goes through the same task
runner, so with `execution.task_runner: dask` the shards of all regions spread over the Dask cluster's workers
(a local cluster or a running scheduler). Each region keeps its own run folder `<output>/<name>`, its own
progress artifact and its own summary; a final table artifact lists every region.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.caption import run_regions
from flows.settings import Captioning, Execution, RegionSpec, Sources, load_sampling_plan, run_config
from flows.tasks import RegionJob
from pipeline.errors import InputError


@flow(name="build_dataset", log_prints=True)
def build_dataset(
    regions: list[RegionSpec] | None = None,
    sampling_plan: str | None = None,
    start: str = "2024-01-01",
    end: str = "2024-12-31",
    output: str = "outputs/dataset",
    sources: Sources = Sources(),  # noqa: B008 - immutable pydantic defaults, shown in the deployment form
    captioning: Captioning = Captioning(),  # noqa: B008
    execution: Execution = Execution(),  # noqa: B008
) -> list[dict[str, Any]]:
    """Caption every region into `<output>/<region name>`; rerun with the same parameters to resume."""
    if (regions is None) == (sampling_plan is None):
        raise InputError("build_dataset: give exactly one of `regions` (a list) or `sampling_plan` "
                         "(a JSON file)")
    specs = regions if regions is not None else load_sampling_plan(str(sampling_plan))
    names = [r.name for r in specs]
    if len(set(names)) != len(names):
        raise InputError(f"build_dataset: region names must be unique (they name the run folders): {names}")
    jobs = [RegionJob(r.name, run_config(r, start, end, output, sources, captioning, execution))
            for r in specs]
    summaries = run_regions(jobs, execution)
    create_table_artifact(
        table=[{k: v for k, v in s.items() if not isinstance(v, dict)} for s in summaries],
        key="dataset-summary", description=f"s2cap dataset of {len(summaries)} regions in {output}")
    return summaries
