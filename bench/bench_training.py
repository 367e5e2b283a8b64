"""Training throughput on this machine.

1. Loader: samples/s of `ShardDataset` streaming the demo shards (decode GeoTIFF bytes from Parquet, 10
   bands, normalise, resize to 224, tokenise) against the baseline of reading the same chips from single
   GeoTIFF files written by this script (rasterio.open per file, then the same normalise/resize/tokenise).
2. Training step time per batch (forward, backward, AdamW) of the widened tiny CLIP and of ViT-B/16 (batch
   4, a couple of steps; ~6-9 s/step on 2 CPU cores). `--quick` skips ViT-B/16.

Run: python bench/bench_training.py [--quick] [--run RUN_DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import open_clip  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import rasterio  # noqa: E402
import torch  # noqa: E402
from open_clip.loss import ClipLoss  # noqa: E402
from rich.console import Console  # noqa: E402

from pipeline.demo import run_demo  # noqa: E402
from pipeline.shards import read_shards  # noqa: E402
from training.data import SEED_BANDS, BandStats, ShardDataset, chip_tensor, compute_band_stats  # noqa: E402
from training.model import create_rgb_model, widen_patch_embedding  # noqa: E402


def loader_bench(run: Path, tmp: Path, epochs: int) -> None:
    stats = BandStats.from_dict(compute_band_stats(run, out=tmp / "band_stats.json"))
    tok = open_clip.get_tokenizer("ViT-B-16")
    t = read_shards(run, ["id", "chip", "caption", "keep", "status"])
    t = t.filter(pc.and_(t.column("keep"), pc.equal(t.column("status"), "ok")))
    files = tmp / "tifs"
    files.mkdir()
    captions = {}
    for sid, chip, caption in zip(*(t.column(c).to_pylist() for c in ("id", "chip", "caption")), strict=True):
        (files / f"{sid}.tif").write_bytes(chip)
        captions[sid] = caption
    n = len(captions)

    ds = ShardDataset(run, tok, stats, SEED_BANDS, image_size=224, batch_size=8, shuffle=True)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for _ in ds:
            pass
    shard_rate = n * epochs / (time.perf_counter() - t0)

    paths = sorted(files.glob("*.tif"))
    t0 = time.perf_counter()
    for _ in range(epochs):
        for start in range(0, len(paths), 8):
            images, texts = [], []
            for p in paths[start : start + 8]:
                with rasterio.open(p) as src:
                    arr, names = src.read(), list(src.descriptions)
                images.append(chip_tensor(arr, names, SEED_BANDS, stats, 224))
                texts.append(captions[p.stem])
            torch.stack(images), tok(texts)
    file_rate = n * epochs / (time.perf_counter() - t0)
    print(f"loader, {n} kept chips x {epochs} epochs, 10 bands -> 224 px, batch 8 (one process):")
    print(f"  Parquet shards (ShardDataset)   {shard_rate:8.1f} samples/s")
    print(f"  single GeoTIFF files (baseline) {file_rate:8.1f} samples/s")
    print(f"  ratio shards / files            {shard_rate / file_rate:8.2f}x")


def step_time(name: str, batch: int, steps: int, warmup: int = 1) -> float:
    torch.manual_seed(0)
    rgb, tok = create_rgb_model(name)
    model = widen_patch_embedding(copy.deepcopy(rgb), SEED_BANDS)
    del rgb
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else size
    images = torch.randn(batch, len(SEED_BANDS), size, size)
    texts = tok([f"a Sentinel-2 image of cropland number {i}" for i in range(batch)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    loss_fn = ClipLoss()
    times = []
    for _ in range(steps + warmup):  # warm-up steps fill the allocator caches
        t0 = time.perf_counter()
        loss = loss_fn(*model(images, texts))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[warmup:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the ViT-B/16 step timing")
    ap.add_argument("--run", type=Path, help="an existing run folder (default: a fresh offline demo run)")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CUDA: {torch.cuda.is_available()}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run = args.run
        if run is None:
            run = tmp / "run"
            run_demo(run, chips_x=3, chips_y=2, console=Console(stderr=True, quiet=True), progress=False)
        loader_bench(run, tmp, args.epochs)
    tiny = step_time("tiny", 8, 10)
    print("training step (forward + backward + AdamW), 10 bands, CPU:")
    print(f"  tiny CLIP (64 px), batch 8   {tiny * 1000:8.1f} ms/step")
    if not args.quick:
        vit = step_time("ViT-B-16", 4, 2, warmup=0)
        print(f"  ViT-B/16 (224 px), batch 4   {vit * 1000:8.1f} ms/step  ({vit / tiny:.0f}x the tiny step)")


if __name__ == "__main__":
    main()
