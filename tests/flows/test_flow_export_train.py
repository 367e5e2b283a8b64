"""`export_validation_sample` and `train_clip` run as Prefect flows on a real demo run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flowdemo") / "run"
    run_cli("demo", "--out", str(out), "--quiet")
    return out


def test_export_validation_sample_flow(prefect_server: str, demo_run: Path, tmp_path: Path) -> None:
    from flows.export import export_validation_sample

    folder = Path(export_validation_sample(str(demo_run), str(tmp_path / "val"), n=6, seed=1))
    samples = json.loads((folder / "samples.json").read_text())
    items = samples["samples"] if isinstance(samples, dict) else samples
    assert len(items) == 6
    assert all(s["caption"] for s in items)


def test_train_clip_flow_trains_and_reports(prefect_server: str, demo_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("open_clip", reason="the train extra (torch, open_clip) is not installed")
    from flows.train import train_clip

    out = tmp_path / "clip"
    result = train_clip([str(demo_run)], str(out), model="tiny", batch_size=4, max_steps=2, warmup_steps=1)
    assert Path(result["checkpoint"]).is_file()
    assert "mAP" in Path(result["report"]).read_text() or "map" in Path(result["report"]).read_text().lower()
    losses = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses][-1] == 2
