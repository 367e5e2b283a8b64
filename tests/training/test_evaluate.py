"""Evaluation: zero-shot on ImageFolders of multispectral GeoTIFFs (a tiny one written here, and the real
chips with their land-cover classes), retrieval mAP@100 on the demo shards, and the Markdown comparison
report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from pipeline.errors import InputError
from pipeline.shards import read_shards
from sentinel.chipio import decode_geotiff
from tests.training.conftest import SHARED_DATA
from training.data import SEED_BANDS, BandStats, chip_tensor
from training.evaluate import (
    EUROSAT_MS_ORDER,
    L2A_ORDER,
    average_precision_at_k,
    class_phrase,
    compare_checkpoints,
    evaluate_checkpoint,
    read_geotiff,
)

# ESRI 10 m land cover as remapped by TerraMesh (../shared/data/README.md)
LULC = {
    1: "water",
    2: "trees",
    3: "flooded_vegetation",
    4: "crops",
    5: "built_area",
    6: "bare_ground",
    7: "snow_ice",
    8: "clouds",
    9: "rangeland",
}


def write_tif(path: Path, arr: np.ndarray, descriptions: list[str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": "uint16",
        "crs": "EPSG:32632",
        "transform": from_origin(600000, 5200000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)


def eurosat_ms(l2a: np.ndarray) -> np.ndarray:
    """A 13-band EuroSAT-MS array (B10 zero, B8A last) from a 12-band L2A one."""
    by_name = dict(zip(L2A_ORDER, l2a, strict=True))
    by_name["B10"] = np.zeros_like(l2a[0])
    return np.stack([by_name[b] for b in EUROSAT_MS_ORDER])


@pytest.fixture
def tiny_image_folder(demo_run: Path, tmp_path: Path) -> Path:
    t = read_shards(demo_run, ["chip", "keep"])
    chips = [
        decode_geotiff(c)[0][:, :64, :64]
        for c, k in zip(*(t.column(n).to_pylist() for n in ("chip", "keep")), strict=True)
        if k
    ][:6]
    root = tmp_path / "eurosat"
    for i, arr in enumerate(chips):
        cls = "AnnualCrop" if i % 2 else "Forest"
        if i < 3:
            write_tif(root / cls / f"{cls}_{i}.tif", eurosat_ms(arr))  # EuroSAT-MS layout, no descriptions
        else:
            write_tif(root / cls / f"{cls}_{i}.tif", arr, list(L2A_ORDER))  # 12-band L2A with descriptions
    return root


def test_band_mapping_of_eurosat_files(
    tiny_image_folder: Path, demo_run: Path, band_stats: BandStats
) -> None:
    path = sorted((tiny_image_folder / "Forest").glob("*.tif"))[0]
    arr, names = read_geotiff(path)
    assert arr.shape[0] == 13 and names == list(EUROSAT_MS_ORDER)
    l2a = np.stack([arr[names.index(b)] for b in L2A_ORDER])
    assert torch.equal(
        chip_tensor(arr, names, SEED_BANDS, band_stats, 64),
        chip_tensor(l2a, L2A_ORDER, SEED_BANDS, band_stats, 64),
    )
    assert read_geotiff(sorted((tiny_image_folder / "AnnualCrop").glob("*.tif"))[-1])[1] == list(L2A_ORDER)
    assert class_phrase("AnnualCrop") == "annual crop" and class_phrase("snow_ice") == "snow ice"


def test_zero_shot_on_a_tiny_image_folder(tiny_checkpoint: Path, tiny_image_folder: Path) -> None:
    r = evaluate_checkpoint(tiny_checkpoint, image_folder_root=tiny_image_folder)["zero_shot"]
    assert r["classes"] == ["AnnualCrop", "Forest"]
    confusion = np.array(r["confusion"])
    assert confusion.shape == (2, 2) and confusion.sum() == 6 and confusion.sum(axis=1).tolist() == [3, 3]
    assert r["accuracy"] == pytest.approx(np.trace(confusion) / 6)
    assert {p[1] for p in r["predictions"]} == {"AnnualCrop", "Forest"}


def test_zero_shot_on_real_chips_with_land_cover_classes(tiny_checkpoint: Path, tmp_path: Path) -> None:
    chips, lulc = SHARED_DATA / "s2" / "msclip", SHARED_DATA / "s2" / "lulc"
    if not chips.is_dir() or not lulc.is_dir():
        pytest.skip(
            f"real chips or land cover ({chips}, {lulc}) are absent (../shared/data beside the checkout)"
        )
    root = tmp_path / "real"
    truth = {}
    for chip in sorted(chips.glob("*.tif")):
        with rasterio.open(lulc / chip.name) as src:
            values, counts = np.unique(src.read(1), return_counts=True)
        cls = LULC[int(values[np.argmax(counts)])]
        truth[chip.stem] = cls
        (root / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(chip, root / cls / chip.name)
    assert truth["609U_541L_3_0"] == "snow_ice" and truth["282D_485L_3_3"] == "water"
    r = evaluate_checkpoint(tiny_checkpoint, image_folder_root=root)["zero_shot"]
    n = len(r["classes"])
    assert sorted(r["classes"]) == sorted(set(truth.values())) and n >= 3
    confusion = np.array(r["confusion"])
    assert confusion.shape == (n, n) and confusion.sum() == len(truth)
    assert 0.0 <= r["accuracy"] <= 1.0
    assert {Path(p[0]).stem: p[1] for p in r["predictions"]} == truth


def test_average_precision_at_k() -> None:
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.5], [0.9, 0.8, 0.1]])
    relevant = np.eye(3, dtype=bool)
    # query 0: relevant at rank 1; query 1: rank 1; query 2: rank 3
    assert average_precision_at_k(scores, relevant, 100).tolist() == pytest.approx([1.0, 1.0, 1 / 3])
    assert average_precision_at_k(scores, relevant, 2).tolist() == pytest.approx([1.0, 1.0, 0.0])
    two = np.array([[True, False, True]])
    assert average_precision_at_k(np.array([[0.9, 0.8, 0.7]]), two, 100)[0] == pytest.approx((1 + 2 / 3) / 2)


def test_retrieval_and_report_compare_checkpoints(
    tiny_checkpoint: Path, demo_run: Path, tiny_image_folder: Path, tmp_path: Path
) -> None:
    first = tiny_checkpoint.parent / "step_00000001.pt"
    out = tmp_path / "report.md"
    results = compare_checkpoints(
        [first, tiny_checkpoint], out, image_folder_root=tiny_image_folder, runs=[demo_run]
    )
    for r in results:
        ret = r["retrieval"]
        assert ret["n"] == 14 and ret["k"] == 100
        # 14 candidates: even a random ranking puts the caption in the top 100, so AP >= 1/14
        assert 1 / 14 - 1e-9 <= ret["image_to_text"] <= 1 and 1 / 14 - 1e-9 <= ret["text_to_image"] <= 1
    assert [r["step"] for r in results] == [1, 3]
    md = out.read_text()
    assert "| step_00000001.pt | tiny | 1 | 10 |" in md and "| last.pt | tiny | 3 | 10 |" in md
    assert "mAP@100" in md and "| AnnualCrop |" in md
    assert json.loads(out.with_suffix(".json").read_text())[1]["step"] == 3
    with pytest.raises(InputError, match="nothing to evaluate"):
        compare_checkpoints([tiny_checkpoint], out)
