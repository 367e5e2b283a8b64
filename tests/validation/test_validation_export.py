"""Export: a reproducible stratified sample of ok rows, previews, false colour, samples.json, manifest."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vfixtures import BAND_VALUES, chip_tiff

from pipeline.errors import InputError
from sentinel.preview import PreviewConfig
from validation.export import (
    allocate,
    dominant_class,
    export_validation,
    false_colour_png,
    preview_config,
    region_cell,
)


def _load(folder: Path) -> tuple[list[dict], dict]:
    return json.loads((folder / "samples.json").read_text()), json.loads(
        (folder / "manifest.json").read_text()
    )


def test_export_writes_a_self_contained_folder(exported: Path, run_dir: Path) -> None:
    samples, manifest = _load(exported)
    assert len(samples) == 12 and manifest["n_exported"] == 12
    assert manifest["population_ok"] == 22  # 24 rows, two cloudy ones never exported
    assert manifest["seed"] == 3 and manifest["strata"] == ["landcover", "season", "region", "outcome"]
    assert [s["file"] for s in manifest["sources"]] == [
        "shards/00000.parquet",
        "shards/00001.parquet",
        "shards/00002.parquet",
    ]
    assert all(len(s["sha256"]) == 64 for s in manifest["sources"])
    assert manifest["run_manifest"] == {"name": "fixture", "captioner": "facts"}
    assert sum(c["sample"] for c in manifest["counts"].values()) == 12
    assert sum(c["population"] for c in manifest["counts"].values()) == 22
    assert len({s["id"] for s in samples}) == 12
    for s in samples:
        assert s["caption"] and s["qa"][0]["question"] == "What covers most of the image?"
        assert s["facts"]["footprint_m2"] > 0 and s["tags"][1] == "road"
        assert s["source"].startswith("shards/") and s["stratum"]["outcome"] in ("kept", "flagged")
        rgb = Image.open(exported / s["images"]["rgb"])
        fcc = Image.open(exported / s["images"]["false_colour"])
        assert rgb.size == fcc.size == (16, 16) and fcc.mode == "RGB"
        if not s["keep"]:
            assert s["flagged_reasons"] and all(not f["keep"] for f in s["filters"] if f["reason"])
    assert (exported / "ratings").is_dir()


def test_export_is_reproducible_and_seed_dependent(run_dir: Path, tmp_path: Path) -> None:
    a, _ = _load(export_validation(run_dir, tmp_path / "a", n=10, seed=7))
    b, _ = _load(export_validation(run_dir, tmp_path / "b", n=10, seed=7))
    c, _ = _load(export_validation(run_dir, tmp_path / "c", n=10, seed=8))
    assert a == b
    assert [s["id"] for s in a] != [s["id"] for s in c]
    assert (tmp_path / "a" / a[0]["images"]["false_colour"]).read_bytes() == (
        tmp_path / "b" / b[0]["images"]["false_colour"]
    ).read_bytes()


def test_strata_allocation_covers_every_stratum(run_dir: Path, tmp_path: Path) -> None:
    # by outcome only: 3 flagged and 19 kept ok rows; n=6 -> one flagged guaranteed, the rest proportional
    samples, manifest = _load(export_validation(run_dir, tmp_path / "o", n=6, strata="outcome", seed=0))
    assert manifest["counts"] == {
        "outcome=flagged": {"population": 3, "sample": 1},
        "outcome=kept": {"population": 19, "sample": 5},
    }
    assert Counter(s["stratum"]["outcome"] for s in samples) == {"kept": 5, "flagged": 1}
    # by land cover and season: 16 strata of 1-2 rows, n=16 -> every stratum once
    samples, manifest = _load(export_validation(run_dir, tmp_path / "ls", n=16, strata="landcover,season"))
    assert len(manifest["counts"]) == 16 and all(c["sample"] == 1 for c in manifest["counts"].values())
    assert {s["stratum"]["landcover"] for s in samples} == {"farmland", "forest", "bay", "buildings"}
    # n larger than the population: everything
    samples, _ = _load(export_validation(run_dir, tmp_path / "all", n=500, strata=["region"]))
    assert len(samples) == 22


def test_allocate_is_proportional_and_capped() -> None:
    rng = np.random.default_rng(0)
    assert allocate({"a": 90, "b": 9, "c": 1}, 20, rng) == {"a": 17, "b": 2, "c": 1}
    assert allocate({"a": 2, "b": 50}, 10, rng) == {"a": 1, "b": 9}  # 1 each, then 8 split 1:49
    assert allocate({"a": 1, "b": 100}, 50, rng) == {"a": 1, "b": 49}  # never more than a stratum holds
    picked = allocate({"a": 5, "b": 5, "c": 5}, 2, rng)
    assert sum(picked.values()) == 2 and max(picked.values()) == 1


def test_false_colour_puts_nir_in_red_with_the_runs_stretch() -> None:

    png = false_colour_png(chip_tiff("forest"), '{"stretch": [0, 3000]}')
    rgb = np.asarray(Image.open(io.BytesIO(png)))
    assert rgb.shape == (16, 16, 3)
    b08, b04, b03 = (BAND_VALUES["forest"][i] for i in (7, 3, 2))
    right = rgb[0, -1]  # the right half holds the full values; 0..3000 (B08 0..5000) -> 0..1, gamma 1/1.8
    expected = [round(min(v / d, 1) ** (1 / 1.8) * 255) for v, d in ((b08, 5000), (b04, 3000), (b03, 3000))]
    assert list(right) == expected
    assert right[0] > right[1] and right[0] > right[2]  # vegetation is red in B08/B04/B03
    params = PreviewConfig(stretch="percentile", gamma=1.0).to_json()
    pct = np.asarray(Image.open(io.BytesIO(false_colour_png(chip_tiff("forest"), params, size=32))))
    assert pct.shape == (32, 32, 3) and pct.max() == 255 and pct.min() == 0  # percentile range, resized


def test_preview_config_follows_the_run() -> None:
    run = PreviewConfig(stretch="percentile", gamma=0.8, p_low=1.0, p_high=99.0, vmax=4000.0)
    cfg = preview_config(run.to_json())
    assert (cfg.stretch, cfg.gamma, cfg.p_low, cfg.p_high, cfg.vmax) == ("percentile", 0.8, 1.0, 99.0, 4000.0)
    assert cfg.bands == ("B08", "B04", "B03")
    legacy = preview_config('{"stretch": [100, 2500]}')
    assert (legacy.stretch, legacy.vmin, legacy.vmax) == ("fixed", 100.0, 2500.0)
    assert preview_config("not json").stretch == preview_config('{"gamma": -1}').stretch == "fixed"


def test_strata_keys() -> None:
    assert dominant_class(None) == "none"
    assert (
        dominant_class(
            {
                "classes": [
                    {"cls": "farmland", "fraction": 0.3},
                    {"cls": "forest", "fraction": 0.2},
                    {"cls": "forest", "fraction": 0.2},
                ],
                "building_fraction": 0.1,
            }
        )
        == "forest"
    )
    assert dominant_class({"classes": [], "building_fraction": 0.0}) == "none"
    assert region_cell(9.9, 57.2) == "N57E009" and region_cell(-72.5, -38.8) == "S39W073"


def test_export_errors_are_clear(run_dir: Path, exported: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown; use a comma list of landcover"):
        export_validation(run_dir, tmp_path / "x", strata="landcover,colour")
    with pytest.raises(InputError, match="already holds an export"):
        export_validation(run_dir, exported)
    with pytest.raises(InputError, match="positive number"):
        export_validation(run_dir, tmp_path / "y", n=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no finished shards"):
        export_validation(tmp_path / "empty", tmp_path / "z")
