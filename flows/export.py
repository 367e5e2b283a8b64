"""`export_validation_sample`: the expert-validation export as a Prefect flow (same function as the CLI)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

STRATA = "landcover,season,region,outcome"


@task(retries=1, retry_delay_seconds=2, persist_result=False)
def export_task(run_dir: str, out: str, n: int, strata: str, seed: int) -> str:
    from validation.export import export_validation

    return str(export_validation(Path(run_dir), Path(out), n=n, strata=strata, seed=seed))


@flow(name="export_validation_sample", log_prints=True)
def export_validation_sample(run_dir: str, out: str, n: int = 200, strata: str = STRATA, seed: int = 0) -> str:
    """Write a reproducible stratified sample of a run's ok rows for expert rating (`s2cap rate FOLDER`)."""
    folder = export_task(run_dir, out, n, strata, seed)
    create_markdown_artifact(
        key="validation-export",
        markdown=f"Validation sample of `{run_dir}` ({n} samples, strata {strata}, seed {seed}) in `{folder}`.\n\n"
        f"Rate it with `s2cap rate {folder} --rater NAME`, then `s2cap validation-report {folder}`.",
    )
    return folder
