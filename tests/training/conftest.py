"""Shared fixtures: one offline demo run (real shards from the real pipeline), its band statistics, and a tiny
CLIP checkpoint trained on it for a few steps."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip(
    "open_clip", reason="the training tests need the `train` extra (torch, torchvision, open_clip)"
)

import torch  # noqa: E402

from pipeline.demo import run_demo  # noqa: E402
from training.data import BandStats, compute_band_stats  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

# The tiny model's ops are too small to share across threads: on 2 busy cores, OpenMP's spinning threads
# made a
# step ~50x slower (1.7 s vs 30 ms) than one thread.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "run"
    run_demo(out, chips_x=3, chips_y=2, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def stats_path(demo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stats") / "band_stats.json"
    compute_band_stats(demo_run, out=path)
    return path


@pytest.fixture(scope="session")
def band_stats(stats_path: Path) -> BandStats:
    return BandStats.load(stats_path)


def tiny_config(demo_run: Path, out_dir: Path, stats_path: Path, **overrides: object) -> TrainConfig:
    fields: dict[str, object] = {
        "runs": [demo_run],
        "out_dir": out_dir,
        "model": "tiny",
        "stats": stats_path,
        "batch_size": 4,
        "max_steps": 4,
        "lr": 1e-3,
        "patch_lr": 1e-3,
        "warmup_steps": 1,
        "checkpoint_every": 2,
        "progress": False,
        "seed": 0,
    }
    fields.update(overrides)
    return TrainConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_checkpoint(demo_run: Path, stats_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-train")
    return train(tiny_config(demo_run, out, stats_path, max_steps=3, keep_every=1))
