"""The whole loop on a real run: the offline demo (real STAC server, real COG reads, real shards), exported,
rated through the store the server uses, and reported."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from pipeline.shards import read_shards
from sentinel.bands import BAND_INDEX
from validation.export import NIR_SCALE, export_validation, false_colour_png
from validation.ratings import RatingStore
from validation.report import compute_report, validation_report


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        from pipeline.demo import run_demo
    except ImportError as exc:
        pytest.skip(f"the offline demo is not importable yet ({exc})")
    from rich.console import Console

    out = tmp_path_factory.mktemp("demo") / "run"
    run_demo(out, chips_x=2, chips_y=1, console=Console(stderr=True, quiet=True), progress=False)
    return out


def test_export_rate_report_on_the_demo_run(demo_run: Path, tmp_path: Path) -> None:
    table = read_shards(demo_run, columns=["id", "status", "chip", "preview_params", "keep"])
    ok = [r for r in table.to_pylist() if r["status"] == "ok"]
    assert ok, "the demo run has ok rows"
    folder = export_validation(demo_run, tmp_path / "val", n=6, seed=1)
    samples = json.loads((folder / "samples.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(samples) == min(6, len(ok)) and manifest["population_ok"] == len(ok)
    assert manifest["sources"] and not manifest["problems"]
    assert {s["id"] for s in samples} <= {r["id"] for r in ok}

    # the false-colour preview follows B08 of the real chip: its red channel tracks B08
    first = samples[0]
    chip = next(r["chip"] for r in ok if r["id"] == first["id"])
    with rasterio.MemoryFile(chip) as mem, mem.open() as src:
        b08 = src.read(BAND_INDEX["B08"] + 1).astype(float)
    params = next(r["preview_params"] for r in ok if r["id"] == first["id"])
    with Image.open(folder / first["images"]["rgb"]) as rgb:
        side = rgb.size[0]  # the false colour is resized like the RGB preview (336 px for the captioner)
    assert (folder / first["images"]["false_colour"]).read_bytes() == false_colour_png(
        chip, params, size=side
    )
    red = np.asarray(Image.open(io.BytesIO(false_colour_png(chip, params))))[..., 0].astype(float)
    cfg = json.loads(params)
    assert cfg["stretch"] == "fixed"
    scaled = (
        np.clip((b08 * NIR_SCALE - cfg["vmin"]) / (cfg["vmax"] - cfg["vmin"]), 0, 1) ** cfg["gamma"] * 255
    )
    assert red.shape == b08.shape and red.std() > 0
    assert np.mean(np.abs(red - np.round(scaled)) <= 1) > 0.99  # nodata pixels (all bands 0) are black

    store = RatingStore(folder)
    for i, s in enumerate(samples):
        words = s["caption"].split()
        spans = [{"start": 0, "end": len(words[0]), "text": words[0]}] if i % 2 else []
        store.update("expert", s["id"], {"completeness": ["Good", "Average"][i % 2], "spans": spans})
    data = compute_report(folder)
    assert data["overall"]["n"] == len(samples)
    assert data["overall"]["hallucinations"]["1"] == len(samples) // 2
    assert validation_report(folder).is_file()
