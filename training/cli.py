"""Plain typed functions behind the `s2cap` training commands (the Typer wiring lives in pipeline/cli.py).

Each takes simple values (paths, numbers, strings), does one job, prints nothing itself and returns what it
made, so a command, a flow task or a notebook can call it alike. Errors are `InputError`s with one-line
messages.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from training.data import compute_band_stats, resolve_bands
from training.evaluate import compare_checkpoints
from training.model import check_widened_equivalence, create_rgb_model, widen_patch_embedding
from training.train import TrainConfig, train
from training.webdataset import export_webdataset


def band_stats_command(runs: list[Path], out: Path | None = None, all_rows: bool = False) -> Path:
    """Compute per-band statistics of the runs' (kept) chips; returns the JSON path."""
    if not runs:
        raise InputError("give at least one run folder")
    path = Path(out) if out is not None else Path(runs[0]) / "band_stats.json"
    compute_band_stats(runs, out=path, keep_only=not all_rows)
    return path


def train_command(
    runs: list[Path],
    out: Path,
    model: str = "ViT-B-16",
    pretrained: str | None = None,
    bands: str = "seed10",
    stats: Path | None = None,
    batch_size: int = 32,
    accum_steps: int = 1,
    max_steps: int = 1000,
    lr: float = 1e-5,
    patch_lr: float = 1e-4,
    warmup_steps: int = 100,
    weight_decay: float = 0.1,
    num_workers: int = 0,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    checkpoint_every: int = 100,
    keep_every: int = 0,
    resume: bool = True,
    progress: bool = True,
) -> Path:
    """Train (or resume) a multispectral CLIP on the runs' shards; returns the last checkpoint's path."""
    config = TrainConfig(
        runs=list(runs),
        out_dir=out,
        model=model,
        pretrained=pretrained,
        bands=bands,
        stats=stats,
        batch_size=batch_size,
        accum_steps=accum_steps,
        max_steps=max_steps,
        lr=lr,
        patch_lr=patch_lr,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        num_workers=num_workers,
        seed=seed,
        device=device,
        precision=precision,
        checkpoint_every=checkpoint_every,
        keep_every=keep_every,
        resume=resume,
        progress=progress,
    )
    return train(config)


def evaluate_command(
    checkpoints: list[Path],
    out: Path,
    image_folder: Path | None = None,
    runs: list[Path] | None = None,
    k: int = 100,
    band_order: str | None = None,
) -> list[dict[str, Any]]:
    """Zero-shot (ImageFolder) and retrieval mAP@k (runs) of each checkpoint, written to OUT (.md and
    .json)."""
    if not checkpoints:
        raise InputError("give at least one checkpoint (.pt written by `train`)")
    order = [b.strip().upper() for b in band_order.split(",")] if band_order else None
    return compare_checkpoints(list(checkpoints), out, image_folder, list(runs or []), k, order)


def export_webdataset_command(
    runs: list[Path], out: Path, samples_per_tar: int = 1000, fmt: str = "tif", bands: str = "all12"
) -> dict[str, int]:
    """WebDataset tars of the kept rows for open_clip's trainer; returns {tar: samples}."""
    return export_webdataset(list(runs), out, samples_per_tar=samples_per_tar, fmt=fmt, bands=bands)


def check_widening_command(model: str = "tiny", bands: str = "seed10") -> dict[str, Any]:
    """Widen a randomly initialised model and check it equals the RGB model on RGB-only input."""
    names = resolve_bands(bands)
    rgb, _ = create_rgb_model(model)
    wide = widen_patch_embedding(copy.deepcopy(rgb), names)
    diff = check_widened_equivalence(rgb, wide, names)
    return {"model": model, "bands": list(names), "max_abs_diff": diff}


def describe(result: Any) -> str:
    """A result as indented JSON (for the commands to print)."""
    return json.dumps(result, indent=2, default=str)
