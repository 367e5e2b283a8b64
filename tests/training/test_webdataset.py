"""WebDataset export for open_clip's own trainer: tars of <key>.tif/.npy + <key>.txt, and sizes.json."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.shards import read_shards
from sentinel.bands import BAND_NAMES
from sentinel.chipio import decode_geotiff
from training.data import SEED_BANDS
from training.webdataset import export_webdataset, sample_key


def members(tar_path: Path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_export_tif_tars_hold_kept_rows(demo_run: Path, tmp_path: Path) -> None:
    t = read_shards(demo_run, ["id", "chip", "caption", "keep"])
    rows = {
        sample_key(i): (c, cap)
        for i, c, cap, k in zip(*(t.column(n).to_pylist() for n in t.column_names), strict=True)
        if k
    }
    sizes = export_webdataset(demo_run, tmp_path, samples_per_tar=5)
    assert sum(sizes.values()) == len(rows) and list(sizes.values())[0] == 5
    assert json.loads((tmp_path / "sizes.json").read_text()) == sizes
    seen = {}
    for name in sizes:
        seen.update(members(tmp_path / name))
    keys = {n.split(".", 1)[0] for n in seen}
    assert keys == set(rows) and all("." not in k for k in keys)
    key = sorted(keys)[0]
    assert seen[f"{key}.tif"] == rows[key][0] and seen[f"{key}.txt"].decode() == rows[key][1]
    assert decode_geotiff(seen[f"{key}.tif"])[0].shape[0] == len(BAND_NAMES)
    assert not list(tmp_path.glob(".tmp-*"))


def test_export_npy_selects_bands(demo_run: Path, tmp_path: Path) -> None:
    sizes = export_webdataset(demo_run, tmp_path, samples_per_tar=100, fmt="npy", bands="seed10")
    m = members(tmp_path / next(iter(sizes)))
    key = sorted(n for n in m if n.endswith(".npy"))[0]
    arr = np.load(io.BytesIO(m[key]))
    assert arr.shape[0] == len(SEED_BANDS) and arr.dtype == np.uint16
    meta = json.loads(m[key.replace(".npy", ".json")])
    assert meta["bands"] == list(SEED_BANDS)
    with pytest.raises(InputError, match="fmt='npy'"):
        export_webdataset(demo_run, tmp_path / "x", fmt="tif", bands="seed10")
