"""`train_clip`: fine-tune the multispectral CLIP on a dataset's shards, then evaluate it, as Prefect tasks.

Training resumes from `out_dir/last.pt` by itself, so a retried or rerun task continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact


@task(retries=2, retry_delay_seconds=10, persist_result=False)
def train_task(config: dict[str, Any]) -> str:
    from training.train import TrainConfig, train

    return str(train(TrainConfig(**config)))


@task(persist_result=False)
def evaluate_task(checkpoint: str, out_dir: str, runs: list[str], image_folder: str | None) -> str:
    from training.evaluate import compare_checkpoints

    report = Path(out_dir) / "report.md"
    compare_checkpoints([Path(checkpoint)], report, Path(image_folder) if image_folder else None,
                        [Path(r) for r in runs])
    return str(report)


@flow(name="train_clip", log_prints=True)
def train_clip(runs: list[str], out_dir: str, model: str = "ViT-B-16", pretrained: str | None = None,
               bands: str = "seed10", batch_size: int = 32, max_steps: int = 1000, lr: float = 1e-5,
               patch_lr: float = 1e-4, warmup_steps: int = 100, image_folder: str | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, str]:
    """Train (resuming when a checkpoint exists), then write the evaluation report beside the checkpoint."""
    config = {"runs": runs, "out_dir": out_dir, "model": model, "pretrained": pretrained, "bands": bands,
              "batch_size": batch_size, "max_steps": max_steps, "lr": lr, "patch_lr": patch_lr,
              "warmup_steps": min(warmup_steps, max_steps), "progress": False, **(extra or {})}
    checkpoint = train_task(config)
    report = evaluate_task(checkpoint, out_dir, runs, image_folder)
    create_markdown_artifact(key="train-clip-report", markdown=Path(report).read_text())
    return {"checkpoint": checkpoint, "report": report}
