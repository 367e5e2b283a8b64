"""The training loop: AdamW, warm-up + cosine schedule, bf16 autocast on CUDA, gradient accumulation, a
separate learning rate for the widened patch embedding, atomic checkpoints and exact resume, a JSONL loss
log.

`train(config) -> Path` is the one function a `train_clip` flow calls. A run folder `out_dir` holds
`last.pt` (rewritten atomically every `checkpoint_every` steps and at the end), `step_XXXXXXXX.pt` copies
when `keep_every` is set, `loss.jsonl` (one line per optimizer step), `band_stats.json` and `config.json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip.loss import ClipLoss
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.errors import InputError
from pipeline.shards import write_text_atomic
from training.data import (
    STATS_FILE,
    WORKER_CONTEXT,
    BandStats,
    ShardDataset,
    compute_band_stats,
    real_batches,
    resolve_bands,
)
from training.model import (
    S2CAP_CHECKPOINT_KEY,
    build_model,
    image_size_of,
    patch_embedding_parameters,
)

LAST = "last.pt"
LOSS_LOG = "loss.jsonl"


@dataclass
class TrainConfig:
    """Everything a training run needs; validates itself. Paths may be str or Path."""

    runs: list[Path]  # s2cap run folders (each with shards/)
    out_dir: Path
    model: str = "ViT-B-16"  # an OpenCLIP model name, or "tiny"
    pretrained: str | None = None  # OpenCLIP tag (online), local OpenCLIP checkpoint, or an s2cap checkpoint
    bands: tuple[str, ...] | str = "seed10"  # "seed10", "all12", or band names
    stats: Path | None = None  # band statistics JSON; computed from `runs` into out_dir when None
    image_size: int | None = None  # default: the model's
    batch_size: int = 32
    accum_steps: int = 1
    max_steps: int = 1000  # optimizer steps
    lr: float = 1e-5
    patch_lr: float = 1e-4  # the widened patch embedding (mostly new, zero-initialised channels)
    weight_decay: float = 0.1
    warmup_steps: int = 100
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    grad_clip: float | None = 1.0
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N"
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16", "fp32"
    checkpoint_every: int = 100
    keep_every: int = 0  # also keep step_XXXXXXXX.pt every N steps (0: only last.pt)
    resume: bool = True  # continue from out_dir/last.pt when it exists
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes stored in the checkpoint

    def __post_init__(self) -> None:
        if isinstance(self.runs, str | os.PathLike):
            self.runs = [Path(self.runs)]
        self.runs = [Path(r) for r in self.runs]
        if not self.runs:
            raise InputError("TrainConfig.runs is empty: give at least one s2cap run folder")
        self.out_dir = Path(self.out_dir)
        self.stats = Path(self.stats) if self.stats is not None else None
        self.bands = resolve_bands(self.bands)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        positive = {
            "batch_size": self.batch_size,
            "accum_steps": self.accum_steps,
            "max_steps": self.max_steps,
            "checkpoint_every": self.checkpoint_every,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise InputError(f"TrainConfig.{name}={value!r}: use an integer >= 1")
        for name in ("lr", "patch_lr"):
            if not getattr(self, name) > 0:
                raise InputError(f"TrainConfig.{name}={getattr(self, name)!r}: use a learning rate > 0")
        if self.weight_decay < 0 or self.warmup_steps < 0 or self.num_workers < 0 or self.keep_every < 0:
            raise InputError(
                "TrainConfig: weight_decay, warmup_steps, num_workers and keep_every must be >= 0"
            )
        if not 0 <= self.min_lr_ratio <= 1:
            raise InputError(f"TrainConfig.min_lr_ratio={self.min_lr_ratio}: use a value in [0, 1]")
        if self.image_size is not None and self.image_size < 8:
            raise InputError(
                f"TrainConfig.image_size={self.image_size}: use >= 8 or None for the model's size"
            )
        if self.precision not in ("auto", "bf16", "fp32"):
            raise InputError(f"TrainConfig.precision={self.precision!r}: use 'auto', 'bf16' or 'fp32'")
        if not (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda")):
            raise InputError(f"TrainConfig.device={self.device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(
                f"TrainConfig.device={self.device!r} but torch sees no CUDA device: use 'cpu' or 'auto'"
            )

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["runs"] = [str(r) for r in self.runs]
        d["out_dir"] = str(self.out_dir)
        d["stats"] = str(self.stats) if self.stats else None
        d["bands"] = list(self.bands)
        return d


def lr_factor(step: int, warmup_steps: int, max_steps: int, min_ratio: float) -> float:
    """Linear warm-up from ~0 to 1 over `warmup_steps`, then a cosine from 1 to `min_ratio` at `max_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.precision == "fp32":
        return None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if cfg.precision == "bf16":
        raise InputError(
            f"precision='bf16' needs a CUDA device with bf16; {device} has none: use 'auto' or 'fp32'"
        )
    return None


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: the patch embedding (patch_lr), other weights (decay), 1-d params and logit scale (no
    decay)."""
    patch = {id(p) for p in patch_embedding_parameters(model)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in patch:
            continue
        (no_decay if p.ndim < 2 or "logit_scale" in name or "logit_bias" in name else decay).append(p)
    return [
        {
            "params": [p for p in model.parameters() if id(p) in patch],
            "lr": cfg.patch_lr,
            "weight_decay": cfg.weight_decay,
            "name": "patch_embedding",
        },
        {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "name": "decay"},
        {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0, "name": "no_decay"},
    ]


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """torch.save to a temporary file in the same folder, fsync, then os.replace onto `path`."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _stats(cfg: TrainConfig) -> BandStats:
    if cfg.stats is not None:
        return BandStats.load(cfg.stats)
    path = cfg.out_dir / STATS_FILE
    if not path.exists():
        compute_band_stats(cfg.runs, out=path)
    return BandStats.load(path)


def _trim_log(path: Path, step: int) -> None:
    """Drop log lines past the resumed step (written after the last checkpoint by a run that then died)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    write_text_atomic(path, "".join(ln + "\n" for ln in lines))


def train(config: TrainConfig) -> Path:
    """Train (or resume) until `config.max_steps` optimizer steps; returns the path of the last checkpoint."""
    cfg = config
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    device = _device(cfg)
    amp = _autocast_dtype(cfg, device)
    stats = _stats(cfg)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    last = cfg.out_dir / LAST
    resume = cfg.resume and last.exists()
    model, tokenizer = build_model(cfg.model, cfg.bands, None if resume else cfg.pretrained)
    model.to(device)
    image_size = cfg.image_size or image_size_of(model)
    # fused AdamW: ~4x faster steps on CPU than the per-tensor loop, same results up to rounding
    optimizer = torch.optim.AdamW(param_groups(model, cfg), betas=cfg.betas, eps=cfg.eps, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
    )
    step, epoch, batch_in_epoch = 0, 0, 0
    log_path = cfg.out_dir / LOSS_LOG
    if resume:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        info = ckpt[S2CAP_CHECKPOINT_KEY]
        for key in ("model", "bands", "batch_size", "accum_steps", "num_workers", "seed"):
            want = list(cfg.bands) if key == "bands" else getattr(cfg, key)
            if info[key] != want:
                raise InputError(
                    f"{last} was written with {key}={info[key]!r}, this config has {want!r}: use the "
                    "same value to resume, or another out_dir (or resume=False) to start over"
                )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, epoch, batch_in_epoch = info["step"], info["epoch"], info["batch_in_epoch"]
        _set_rng_state(ckpt["rng"])
        _trim_log(log_path, step)
    elif log_path.exists():
        log_path.unlink()
    write_text_atomic(cfg.out_dir / "config.json", json.dumps(cfg.to_json(), indent=2, default=str))
    if step >= cfg.max_steps:
        return last

    dataset = ShardDataset(
        cfg.runs,
        tokenizer,
        stats,
        cfg.bands,
        image_size,
        cfg.batch_size,
        shuffle=True,
        seed=cfg.seed,
        num_workers=cfg.num_workers,
    )
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=cfg.num_workers,
        persistent_workers=False,
        pin_memory=device.type == "cuda",
        multiprocessing_context=WORKER_CONTEXT if cfg.num_workers else None,
    )
    loss_fn = ClipLoss()

    def checkpoint(path: Path) -> Path:
        info = {
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "model": cfg.model,
            "bands": list(cfg.bands),
            "image_size": image_size,
            "batch_size": cfg.batch_size,
            "accum_steps": cfg.accum_steps,
            "num_workers": cfg.num_workers,
            "seed": cfg.seed,
            "stats": stats.to_dict(),
            "config": cfg.to_json(),
        }
        return save_checkpoint(
            path,
            {
                S2CAP_CHECKPOINT_KEY: info,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": _rng_state(),
            },
        )

    model.train()
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not cfg.progress, desc="train", unit="step")
    micro, accum_loss, t0, samples = 0, 0.0, time.perf_counter(), 0
    with open(log_path, "a") as log:
        while step < cfg.max_steps:
            dataset.set_epoch(epoch, skip_batches=batch_in_epoch)
            for batch in real_batches(loader):
                batch_in_epoch += 1
                images = batch["image"].to(device, non_blocking=True)
                texts = batch["text"].to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    img_f, txt_f, logit_scale = model(images, texts)
                    loss = loss_fn(img_f, txt_f, logit_scale)
                (loss / cfg.accum_steps).backward()
                accum_loss += loss.item() / cfg.accum_steps
                samples += images.shape[0]
                micro += 1
                if micro < cfg.accum_steps:
                    continue
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, math.log(100))
                step += 1
                entry = {
                    "step": step,
                    "epoch": epoch,
                    "loss": round(accum_loss, 6),
                    "lr": lrs["decay"],
                    "patch_lr": lrs["patch_embedding"],
                    "logit_scale": round(model.logit_scale.exp().item(), 4),
                    "samples": samples,
                    "seconds": round(time.perf_counter() - t0, 3),
                }
                log.write(json.dumps(entry) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{accum_loss:.4f}")
                bar.update(1)
                micro, accum_loss = 0, 0.0
                if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                    checkpoint(last)
                if cfg.keep_every and step % cfg.keep_every == 0:
                    checkpoint(cfg.out_dir / f"step_{step:08d}.pt")
                if step >= cfg.max_steps:
                    break
            else:
                epoch, batch_in_epoch = epoch + 1, 0
                if micro:  # an epoch boundary inside an accumulation: drop the partial gradient
                    optimizer.zero_grad(set_to_none=True)
                    micro, accum_loss = 0, 0.0
                continue
            break
    bar.close()
    return last
