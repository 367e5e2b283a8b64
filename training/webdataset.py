"""Export kept shard rows as WebDataset tars for open_clip's own trainer (`--train-data DIR/{0..N}.tar`).

Each sample is `<key>.tif` (the chip GeoTIFF bytes as stored, all 12 bands) or `<key>.npy` (uint16 array of
the chosen bands), plus `<key>.txt` (the caption) and `<key>.json` (id and band names). `sizes.json` holds
the sample count per tar, which open_clip reads for `--train-num-samples`. open_clip decodes images with
PIL, so training on these tars needs a custom multispectral decoder in its data pipeline (see
docs/training.md).
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import InputError
from pipeline.shards import done_shards, shard_path, write_text_atomic
from sentinel.chipio import decode_geotiff
from training.data import ALL_BANDS, _run_dirs, chip_band_names, resolve_bands

FORMATS = ("tif", "npy")


def sample_key(sample_id: str) -> str:
    """A WebDataset key: no dots (the key ends at the first dot) and no path separators."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", sample_id)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible tars
    tar.addfile(info, io.BytesIO(data))


def _npy(chip: bytes, bands: Sequence[str]) -> bytes:
    arr, meta = decode_geotiff(chip)
    names = chip_band_names(meta, arr.shape[0])
    buf = io.BytesIO()
    np.save(buf, arr[[names.index(b) for b in bands]].astype(np.uint16))
    return buf.getvalue()


class _TarWriter:
    """Numbered tars of at most `per_tar` samples, each written under a temporary name and renamed when
    full."""

    def __init__(self, out_dir: Path, per_tar: int) -> None:
        self.out_dir, self.per_tar = out_dir, per_tar
        self.sizes: dict[str, int] = {}
        self.tar: tarfile.TarFile | None = None
        self.count = 0

    def _tmp(self) -> Path:
        return self.out_dir / f".tmp-{len(self.sizes):06d}.tar"

    def add(self, members: list[tuple[str, bytes]]) -> None:
        if self.tar is None:
            self.tar = tarfile.open(self._tmp(), "w")
        for name, data in members:
            _add(self.tar, name, data)
        self.count += 1
        if self.count >= self.per_tar:
            self.close()

    def close(self) -> None:
        if self.tar is None:
            return
        self.tar.close()
        name = f"{len(self.sizes):06d}.tar"
        os.replace(self._tmp(), self.out_dir / name)
        self.sizes[name] = self.count
        self.tar, self.count = None, 0


def export_webdataset(
    runs: Path | Sequence[Path],
    out_dir: Path,
    samples_per_tar: int = 1000,
    fmt: str = "tif",
    bands: str | Sequence[str] = "all12",
) -> dict[str, int]:
    """Write OUT/000000.tar, ... and OUT/sizes.json from the kept rows; returns {tar name: samples}."""
    if fmt not in FORMATS:
        raise InputError(f"fmt={fmt!r}: use one of {', '.join(FORMATS)}")
    if samples_per_tar < 1:
        raise InputError(f"samples_per_tar={samples_per_tar}: use >= 1")
    band_names = resolve_bands(bands)
    if fmt == "tif" and band_names != ALL_BANDS:
        raise InputError(
            "fmt='tif' stores the chips as they are (all 12 bands): use fmt='npy' to select bands"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = _TarWriter(out_dir, samples_per_tar)
    seen: set[str] = set()
    for d in _run_dirs(runs):
        for index in sorted(done_shards(d)):
            pf = pq.ParquetFile(shard_path(d, index))
            for rg in range(pf.metadata.num_row_groups):
                t = pf.read_row_group(rg, columns=["id", "chip", "caption", "keep", "status"])
                t = t.filter(
                    pc.and_(pc.fill_null(t.column("keep"), False), pc.equal(t.column("status"), "ok"))
                )
                for sid, chip, caption in zip(
                    *(t.column(c).to_pylist() for c in ("id", "chip", "caption")), strict=True
                ):
                    if not chip:
                        continue
                    key = sample_key(sid)
                    if key in seen:
                        raise InputError(f"sample id {sid!r} occurs twice in {runs}: export each run once")
                    seen.add(key)
                    image = (f"{key}.tif", chip) if fmt == "tif" else (f"{key}.npy", _npy(chip, band_names))
                    writer.add(
                        [
                            image,
                            (f"{key}.txt", (caption or "").encode()),
                            (f"{key}.json", json.dumps({"id": sid, "bands": list(band_names)}).encode()),
                        ]
                    )
    writer.close()
    sizes = writer.sizes
    if not sizes:
        raise InputError(f"{runs}: no kept rows to export")
    write_text_atomic(out_dir / "sizes.json", json.dumps(sizes, indent=2))
    return sizes
