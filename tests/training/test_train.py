"""Training on the demo shards: the loss falls on a tiny overfit set, resume continues at the same step with
the same losses, checkpoints are written atomically, and bad configs fail with one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from pipeline.errors import InputError
from tests.training.conftest import tiny_config
from training.model import S2CAP_CHECKPOINT_KEY
from training.train import LAST, LOSS_LOG, TrainConfig, lr_factor, train


def losses(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / LOSS_LOG).read_text().splitlines()]


def test_tiny_clip_loss_falls_on_an_overfit_set(demo_run: Path, stats_path: Path, tmp_path: Path) -> None:
    # batch 16 > the 14 kept rows: every step sees the same set, so the contrastive loss must fall
    cfg = tiny_config(
        demo_run,
        tmp_path,
        stats_path,
        batch_size=16,
        max_steps=10,
        warmup_steps=2,
        lr=2e-3,
        patch_lr=5e-3,
        checkpoint_every=100,
    )
    last = train(cfg)
    log = losses(tmp_path)
    assert [e["step"] for e in log] == list(range(1, 11))
    first, final = sum(e["loss"] for e in log[:3]) / 3, sum(e["loss"] for e in log[-3:]) / 3
    assert final < 0.8 * first, f"loss did not fall: first {first:.3f}, last {final:.3f}"
    # separate learning rates, warm-up then cosine decay
    assert log[0]["patch_lr"] == pytest.approx(2.5e-3) and log[1]["lr"] == pytest.approx(2e-3)
    assert log[-1]["lr"] < log[2]["lr"]
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt[S2CAP_CHECKPOINT_KEY]["step"] == 10
    assert ckpt[S2CAP_CHECKPOINT_KEY]["bands"] == list(cfg.bands) and len(cfg.bands) == 10
    assert not list(tmp_path.glob(".tmp-*")), "a temporary checkpoint was left behind"


def test_resume_continues_at_the_right_step_with_identical_losses(
    demo_run: Path, stats_path: Path, tmp_path: Path
) -> None:
    # 14 kept rows, batch 3, 2 accumulation steps: 5 batches an epoch, the fifth dropped with its partial
    # gradient; the checkpoint at step 3 lies mid-way through the second epoch
    kw = {"batch_size": 3, "accum_steps": 2, "max_steps": 4, "checkpoint_every": 3, "keep_every": 3}
    whole = tmp_path / "whole"
    train(tiny_config(demo_run, whole, stats_path, **kw))
    reference = losses(whole)
    assert [(e["step"], e["epoch"]) for e in reference] == [(1, 0), (2, 0), (3, 1), (4, 1)]

    # a run that died after step 4 (before its final checkpoint): last.pt is step 3, the log one line past it
    died = tmp_path / "died"
    died.mkdir()
    shutil.copy(whole / "step_00000003.pt", died / LAST)
    shutil.copy(whole / "config.json", died / "config.json")
    stale = [*reference[:3], {**reference[3], "loss": 999.0}]
    (died / LOSS_LOG).write_text("".join(json.dumps(e) + "\n" for e in stale))
    train(tiny_config(demo_run, died, stats_path, **kw))
    resumed = losses(died)
    assert [e["step"] for e in resumed] == [1, 2, 3, 4]
    for a, b in zip(resumed[3:], reference[3:], strict=True):
        assert (a["loss"], a["lr"], a["epoch"]) == (b["loss"], b["lr"], b["epoch"])
    assert torch.load(died / LAST, weights_only=False)[S2CAP_CHECKPOINT_KEY]["step"] == 4

    # a finished run resumes as a no-op; a changed batch size cannot resume
    train(tiny_config(demo_run, died, stats_path, **kw))
    assert len(losses(died)) == 4
    with pytest.raises(InputError, match="batch_size=3"):
        train(tiny_config(demo_run, died, stats_path, **{**kw, "batch_size": 5}))


def test_config_validates_itself(demo_run: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="batch_size=0"):
        TrainConfig(runs=[demo_run], out_dir=tmp_path, batch_size=0)
    with pytest.raises(InputError, match="unknown band"):
        TrainConfig(runs=[demo_run], out_dir=tmp_path, bands=["B04", "B99"])
    with pytest.raises(InputError, match="precision"):
        TrainConfig(runs=[demo_run], out_dir=tmp_path, precision="fp16")
    with pytest.raises(InputError, match="runs is empty"):
        TrainConfig(runs=[], out_dir=tmp_path)
    with pytest.raises(InputError, match="B04, B03 and B02"):
        train(TrainConfig(runs=[demo_run], out_dir=tmp_path, model="tiny", bands="B08,B11", progress=False))
    cfg = TrainConfig(runs=str(demo_run), out_dir=str(tmp_path))  # type: ignore[arg-type]
    assert cfg.runs == [demo_run] and cfg.bands[0] == "B02"


def test_lr_schedule() -> None:
    assert lr_factor(0, 10, 100, 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.0) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, 0.0) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
