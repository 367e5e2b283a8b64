"""The shard loader: band statistics, keep rows only, band selection, normalisation, worker split,
exact skip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.errors import InputError
from pipeline.shards import read_shards
from sentinel.bands import BAND_NAMES
from sentinel.chipio import decode_geotiff
from training.data import (
    ALL_BANDS,
    SEED_BANDS,
    WORKER_CONTEXT,
    BandStats,
    ShardDataset,
    chip_tensor,
    compute_band_stats,
    real_batches,
    resolve_bands,
    round_robin_skip,
)
from training.model import create_rgb_model


def kept(run: Path) -> dict[str, bytes]:
    t = read_shards(run, ["id", "chip", "keep", "status"])
    return {
        i: c
        for i, c, k, s in zip(
            *(t.column(n).to_pylist() for n in ("id", "chip", "keep", "status")), strict=True
        )
        if k and s == "ok"
    }


def test_band_stats_match_numpy_over_valid_pixels(demo_run: Path, stats_path: Path) -> None:
    stats = json.loads(stats_path.read_text())
    chips = kept(demo_run)
    assert stats["samples"] == len(chips) > 0
    assert list(stats["bands"]) == list(BAND_NAMES)
    b08 = np.concatenate([decode_geotiff(c)[0][BAND_NAMES.index("B08")].ravel() for c in chips.values()])
    b08 = b08[b08 != 0].astype(np.float64)
    assert stats["bands"]["B08"]["mean"] == pytest.approx(b08.mean(), rel=1e-9)
    assert stats["bands"]["B08"]["std"] == pytest.approx(b08.std(), rel=1e-6)
    assert stats["bands"]["B08"]["count"] == b08.size


def test_compute_band_stats_default_path_and_errors(demo_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "shards").mkdir(parents=True)
    with pytest.raises(InputError, match="no kept chips"):
        compute_band_stats(run)
    with pytest.raises(InputError, match="no shards/ folder"):
        compute_band_stats(tmp_path / "nowhere")
    with pytest.raises(InputError, match="not positive"):
        BandStats(mean={"B02": 1.0}, std={"B02": 0.0})


def test_resolve_bands() -> None:
    assert resolve_bands("seed10") == SEED_BANDS and len(SEED_BANDS) == 10
    assert resolve_bands("all12") == ALL_BANDS
    assert resolve_bands("b04,B03, b02") == ("B04", "B03", "B02")
    with pytest.raises(InputError, match="B10"):
        resolve_bands(["B04", "B10"])
    with pytest.raises(InputError, match="repeats"):
        resolve_bands(["B04", "B04"])


def test_chip_tensor_normalises_valid_pixels_and_resizes(band_stats: BandStats) -> None:
    arr = np.full((12, 40, 40), 1000, np.uint16)
    arr[:, :20] = 0  # nodata half
    t = chip_tensor(arr, BAND_NAMES, ["B04", "B08"], band_stats, 40)
    mean, std = band_stats.arrays(["B04", "B08"])
    assert t.shape == (2, 40, 40)
    assert torch.all(t[:, :20] == 0)
    assert t[0, 30, 5].item() == pytest.approx((1000 - mean[0]) / std[0], rel=1e-5)
    assert chip_tensor(arr, BAND_NAMES, SEED_BANDS, band_stats, 16).shape == (10, 16, 16)


def test_dataset_yields_only_kept_rows_with_selected_bands(demo_run: Path, band_stats: BandStats) -> None:
    _, tok = create_rgb_model("tiny")
    ds = ShardDataset(demo_run, tok, band_stats, SEED_BANDS, image_size=32, batch_size=4, seed=1)
    batches = list(ds)
    ids = [i for b in batches for i in b["id"]]
    assert sorted(ids) == sorted(kept(demo_run)) and len(ids) == len(set(ids))
    assert len(batches) == len(ds)
    assert batches[0]["image"].shape == (4, 10, 32, 32) and batches[0]["image"].dtype == torch.float32
    assert batches[0]["text"].shape == (4, 32) and batches[0]["text"].dtype == torch.long
    all12 = next(iter(ShardDataset(demo_run, tok, band_stats, ALL_BANDS, image_size=32, batch_size=2)))
    assert all12["image"].shape == (2, 12, 32, 32)
    # the same seed and epoch give the same order; another epoch another one
    assert [b["id"] for b in ds] == [b["id"] for b in batches]
    ds.set_epoch(1)
    assert [i for b in ds for i in b["id"]] != ids


def test_round_robin_skip() -> None:
    # workers with 3, 1, 2 batches: global order w0 w1 w2 w0 w2 w0
    assert [round_robin_skip([3, 1, 2], 4, w) for w in range(3)] == [2, 1, 1]
    assert [round_robin_skip([3, 1, 2], 6, w) for w in range(3)] == [3, 1, 2]
    assert round_robin_skip([2], 1, 0) == 1


@pytest.mark.parametrize("workers", [0, 2])
def test_workers_split_shards_and_skip_resumes_exactly(
    demo_run: Path, band_stats: BandStats, workers: int
) -> None:
    _, tok = create_rgb_model("tiny")
    ds = ShardDataset(
        demo_run, tok, band_stats, SEED_BANDS, image_size=16, batch_size=3, seed=3, num_workers=workers
    )
    loader = DataLoader(ds, batch_size=None, num_workers=workers,
                        multiprocessing_context=WORKER_CONTEXT if workers else None)
    full = [b["id"] for b in loader]
    flat = [i for ids in full for i in ids]
    assert sorted(flat) == sorted(kept(demo_run)) and len(flat) == len(set(flat))
    assert len(full) == len(ds)
    for skip in (1, 3):
        ds.set_epoch(0, skip_batches=skip)
        assert [b["id"] for b in real_batches(loader)] == full[skip:]
    if workers:
        # each batch comes from one worker's own row groups (one shard file per batch here)
        shard_of = {}
        for path in sorted(Path(demo_run, "shards").glob("*.parquet")):
            shard_of.update(dict.fromkeys(pq.read_table(path, columns=["id"]).column("id").to_pylist(), path))
        assert all(len({shard_of[i] for i in ids}) <= 2 for ids in full)
