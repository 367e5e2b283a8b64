"""Training on a CUDA GPU: the real `training.train.train` loop (bf16 autocast, checkpoint, resume) on a run's
shards, and ViT-B/16 step time with the widened patch embedding, bf16 autocast against fp32 in the same run.

Not run in CI (no GPU there). Run where torch sees a GPU, e.g.
    python bench/bench_training_gpu.py --run RUN_DIR --out results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from open_clip.loss import ClipLoss  # noqa: E402

from training.data import SEED_BANDS  # noqa: E402
from training.model import create_rgb_model, widen_patch_embedding  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402


def vit_step_time(batch: int, steps: int, bf16: bool) -> float:
    torch.manual_seed(0)
    rgb, tok = create_rgb_model("ViT-B-16")
    model = widen_patch_embedding(copy.deepcopy(rgb), SEED_BANDS).cuda()
    del rgb
    images = torch.randn(batch, len(SEED_BANDS), 224, 224, device="cuda")
    texts = tok([f"a Sentinel-2 image of cropland number {i}" for i in range(batch)]).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    loss_fn = ClipLoss()
    times = []
    for _ in range(steps + 2):  # two warm-up steps
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(*model(images, texts))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times[2:])[len(times[2:]) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a run folder with shards/")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--batches", default="32,128")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_training_gpu: no CUDA device; run it on a GPU machine (CPU numbers: bench_training.py)")
    res: dict[str, object] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "clip"
        cfg = dict(runs=[args.run], out_dir=out, model="tiny", batch_size=8, max_steps=20, warmup_steps=2,
                   checkpoint_every=10, device="cuda", precision="auto", progress=False)
        t0 = time.perf_counter()
        train(TrainConfig(**{**cfg, "max_steps": 10}))
        train(TrainConfig(**cfg))  # resumes from step 10
        losses = [json.loads(x) for x in (out / "loss.jsonl").read_text().splitlines()]
        res["tiny_train"] = {"steps": [r["step"] for r in losses][-1], "first_loss": losses[0]["loss"],
                             "last_loss": losses[-1]["loss"], "seconds": round(time.perf_counter() - t0, 2)}
        print("tiny CLIP on CUDA, 10 steps + resume to 20:", res["tiny_train"])
    for b in (int(x) for x in args.batches.split(",")):
        fp32 = vit_step_time(b, 5, bf16=False)
        bf16 = vit_step_time(b, 5, bf16=True)
        res[f"vitb16_batch{b}"] = {"fp32_s": round(fp32, 4), "bf16_s": round(bf16, 4),
                                   "fp32_over_bf16": round(fp32 / bf16, 2), "bf16_samples_per_s": round(b / bf16, 1)}
        print(f"ViT-B/16 widened to 10 bands, batch {b}: fp32 {fp32 * 1000:.0f} ms, bf16 {bf16 * 1000:.0f} ms/step "
              f"({fp32 / bf16:.2f}x), {b / bf16:.0f} samples/s")
    res["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
