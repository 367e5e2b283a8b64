"""Stream s2cap shards into CLIP batches: keep rows only, band selection, per-band normalisation, resize.

The loader is a torch `IterableDataset` that yields whole batches (use `DataLoader(ds, batch_size=None)`).
Each epoch the (shard, row group) units are shuffled with (seed, epoch); worker w of W takes units w, w+W,
... and shuffles rows inside each unit, so every worker reads only its own row groups. The global batch
order is then fixed by (seed, epoch, batch size, workers): `DataLoader` takes batches from the workers
round-robin, an order that `set_epoch(epoch, skip_batches)` keeps when resuming mid-epoch: skipped batches
come out as placeholders (no chip read) that `real_batches` drops.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset, get_worker_info

from pipeline.errors import InputError
from pipeline.shards import SHARD_DIR, done_shards, shard_path, write_text_atomic
from sentinel.bands import BAND_NAMES, BANDS
from sentinel.chipio import decode_geotiff

# The seed's 10 bands: the 10 m and 20 m bands (no B01/B09, the 60 m atmospheric bands).
SEED_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
ALL_BANDS: tuple[str, ...] = BAND_NAMES
BAND_PRESETS: dict[str, tuple[str, ...]] = {"seed10": SEED_BANDS, "all12": ALL_BANDS}
STATS_FILE = "band_stats.json"

Tokenizer = Callable[[list[str]], torch.Tensor]


def resolve_bands(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Band names from a preset ('seed10', 'all12'), a comma-separated string or a sequence of names."""
    if isinstance(spec, str):
        if spec in BAND_PRESETS:
            return BAND_PRESETS[spec]
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    names = tuple(str(s).upper() for s in spec)
    unknown = [n for n in names if n not in BAND_NAMES]
    if unknown or not names:
        raise InputError(
            f"bands={list(spec)!r}: unknown band(s) {unknown}; "
            f"use 'seed10', 'all12' or names from {', '.join(BAND_NAMES)}"
        )
    if len(set(names)) != len(names):
        raise InputError(f"bands={list(names)!r} repeats a band: give each band once")
    return names


# --- statistics
# -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BandStats:
    """Mean and standard deviation per band over valid (non-zero) pixels, in DN (reflectance x 10000)."""

    mean: dict[str, float]
    std: dict[str, float]

    def __post_init__(self) -> None:
        missing = sorted(set(self.mean) ^ set(self.std))
        if missing:
            raise InputError(f"band statistics: bands {missing} have a mean or a std but not both")
        bad = [b for b, s in self.std.items() if not s > 0]
        if bad:
            raise InputError(f"band statistics: std of {bad} is not positive; recompute them from more chips")

    def arrays(self, bands: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        missing = [b for b in bands if b not in self.mean]
        if missing:
            raise InputError(
                f"band statistics lack {missing}: recompute them with `compute_band_stats` (all bands)"
            )
        return (
            np.array([self.mean[b] for b in bands], np.float32),
            np.array([self.std[b] for b in bands], np.float32),
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BandStats:
        try:
            return cls(
                mean={b: float(v["mean"]) for b, v in d["bands"].items()},
                std={b: float(v["std"]) for b, v in d["bands"].items()},
            )
        except (KeyError, TypeError) as e:
            raise InputError(
                f"band statistics have no 'bands' -> {{name: {{mean, std}}}} mapping ({e})"
            ) from None

    @classmethod
    def load(cls, path: Path) -> BandStats:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(
                f"band statistics {path}: unreadable ({e}); write them with `compute_band_stats`"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {"bands": {b: {"mean": self.mean[b], "std": self.std[b]} for b in self.mean}}


def _run_dirs(run_dirs: Path | Sequence[Path]) -> list[Path]:
    dirs = [Path(run_dirs)] if isinstance(run_dirs, str | os.PathLike) else [Path(d) for d in run_dirs]
    for d in dirs:
        if not (d / SHARD_DIR).is_dir():
            raise InputError(
                f"{d}: no {SHARD_DIR}/ folder; give a run folder written by `s2cap caption-region`"
            )
    return dirs


def chip_band_names(meta: dict[str, Any], count: int) -> list[str]:
    """Band names of a decoded chip: its band descriptions when they are all valid names, else the L2A
    order."""
    names = [str(n).upper() for n in meta.get("band_names") or []]
    if len(names) == count and all(n in BAND_NAMES or n == "B10" for n in names):
        return names
    if count == len(BAND_NAMES):
        return list(BAND_NAMES)
    raise InputError(f"a chip has {count} bands and no band descriptions: expected 12 L2A bands {BAND_NAMES}")


def compute_band_stats(
    run_dir: Path | Sequence[Path], out: Path | None = None, keep_only: bool = True
) -> dict[str, Any]:
    """Per-band mean/std over the valid (non-zero) pixels of every (kept) chip; written as JSON to `out`
    (default RUN/band_stats.json of the first run) and returned."""
    dirs = _run_dirs(run_dir)
    total = {b: np.zeros(3, np.float64) for b in BAND_NAMES}  # count, sum, sum of squares
    samples = 0
    for d in dirs:
        for index in sorted(done_shards(d)):
            pf = pq.ParquetFile(shard_path(d, index))
            for rg in range(pf.metadata.num_row_groups):
                t = pf.read_row_group(rg, columns=["chip", "keep"])
                if keep_only:
                    t = t.filter(pc.fill_null(t.column("keep"), False))
                for chip in t.column("chip").to_pylist():
                    if not chip:
                        continue
                    arr, meta = decode_geotiff(chip)
                    for name, band in zip(chip_band_names(meta, arr.shape[0]), arr, strict=True):
                        if name not in total:
                            continue
                        v = band[band != 0].astype(np.float64)
                        total[name] += (v.size, v.sum(), np.square(v).sum())
                    samples += 1
    if samples == 0:
        raise InputError(
            f"{', '.join(map(str, dirs))}: no {'kept ' if keep_only else ''}chips "
            "to compute band statistics from"
        )
    bands: dict[str, dict[str, float]] = {}
    for b in BAND_NAMES:
        n, s, ss = total[b]
        if n == 0:
            raise InputError(f"band {b} has no valid pixels in {len(dirs)} run(s): cannot normalise it")
        mean = s / n
        bands[b] = {"mean": mean, "std": math.sqrt(max(ss / n - mean * mean, 0.0)) or 1.0, "count": int(n)}
    result = {
        "bands": bands,
        "samples": samples,
        "keep_only": keep_only,
        "runs": [str(d) for d in dirs],
        "center_nm": {b.name: b.center_nm for b in BANDS},
    }
    path = Path(out) if out is not None else dirs[0] / STATS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(result, indent=2))
    return result


# --- one chip -> one normalised tensor
# --------------------------------------------------------------------------


def chip_tensor(
    array: np.ndarray, band_names: Sequence[str], bands: Sequence[str], stats: BandStats, image_size: int
) -> torch.Tensor:
    """(len(bands), image_size, image_size) float32: the chosen bands of `array` (bands first, DN), normalised
    with `stats`, nodata (0) set to the band mean (0 after normalising), resized bilinearly with
    antialiasing."""
    index = {n: i for i, n in enumerate(band_names)}
    missing = [b for b in bands if b not in index]
    if missing:
        raise InputError(f"chip has bands {list(band_names)} but the model needs {missing}")
    x = array[[index[b] for b in bands]].astype(np.float32)
    mean, std = stats.arrays(bands)
    valid = x != 0
    x = np.where(valid, (x - mean[:, None, None]) / std[:, None, None], 0.0).astype(np.float32)
    t = torch.from_numpy(x)
    if t.shape[-2:] != (image_size, image_size):
        t = F.interpolate(
            t[None], size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
        )[0]
    return t


# --- the streaming dataset
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One row group of one shard and the positions of its kept rows."""

    path: str
    row_group: int
    rows: tuple[int, ...]


def index_units(run_dirs: Path | Sequence[Path], keep_only: bool = True) -> list[Unit]:
    """Every (shard, row group) of the done shards with its usable rows (reads only the `keep` column)."""
    units: list[Unit] = []
    for d in _run_dirs(run_dirs):
        for index in sorted(done_shards(d)):
            path = shard_path(d, index)
            pf = pq.ParquetFile(path)
            for rg in range(pf.metadata.num_row_groups):
                t = pf.read_row_group(rg, columns=["keep", "status"])
                ok = pc.equal(t.column("status"), "ok")
                mask = pc.and_(ok, pc.fill_null(t.column("keep"), False)) if keep_only else ok
                rows = tuple(int(i) for i in np.flatnonzero(mask.to_numpy(zero_copy_only=False)))
                if rows:
                    units.append(Unit(str(path), rg, rows))
    return units


def round_robin_skip(batch_counts: Sequence[int], skip: int, worker: int) -> int:
    """How many of `worker`'s batches are among the first `skip` batches a DataLoader takes round-robin from
    workers with these batch counts (an exhausted worker drops out of the rotation)."""
    taken = [0] * len(batch_counts)
    k = 0
    rnd = 0
    while k < skip and rnd < max(batch_counts, default=0):
        for w, n in enumerate(batch_counts):
            if k >= skip:
                break
            if rnd < n:
                taken[w] += 1
                k += 1
        rnd += 1
    return taken[worker]


SKIPPED: dict[str, Any] = {"skipped": True}


def real_batches(batches: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The batches of a ShardDataset (or a DataLoader over it) without the placeholders of skipped batches."""
    for b in batches:
        if not b.get("skipped"):
            yield b


# DataLoader workers start from a fresh interpreter (forkserver), not a fork of this process: a fork of a process
# that runs threads (a Prefect server, DuckDB, an HTTP client) can die in the child.
WORKER_CONTEXT = "forkserver"


class ShardDataset(IterableDataset):
    """Batches {"image": (B, C, S, S) float32, "text": (B, L) int64, "id": [str]} from the kept rows of
    shards."""

    def __init__(
        self,
        run_dirs: Path | Sequence[Path],
        tokenizer: Tokenizer,
        stats: BandStats,
        bands: Sequence[str] = SEED_BANDS,
        image_size: int = 224,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        keep_only: bool = True,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or image_size < 8:
            raise InputError(
                f"batch_size={batch_size}, image_size={image_size}: use batch_size >= 1, image_size >= 8"
            )
        self.units = index_units(run_dirs, keep_only=keep_only)
        if not self.units:
            raise InputError(
                f"{run_dirs}: no kept rows with status 'ok' in the done shards; nothing to train on"
            )
        self.tokenizer = tokenizer
        self.stats = stats
        self.bands = tuple(bands)
        stats.arrays(self.bands)  # fail now, not in a worker, when the stats lack a band
        self.image_size = image_size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_workers = max(num_workers, 0)
        self.epoch = 0
        self.skip = 0

    @property
    def num_samples(self) -> int:
        return sum(len(u.rows) for u in self.units)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Order of the next iteration: epoch `epoch`, leaving out its first `skip_batches` global batches."""
        self.epoch = epoch
        self.skip = skip_batches

    def _worker_units(self, worker: int, workers: int) -> list[tuple[int, Unit]]:
        order = np.arange(len(self.units))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.units))
        return [(int(i), self.units[i]) for i in order[worker::workers]]

    def _batch_count(self, n: int) -> int:
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batch_counts(self) -> list[int]:
        """Batches each worker yields this epoch (DataLoader workers = `num_workers`, 0 meaning one)."""
        workers = max(self.num_workers, 1)
        return [
            self._batch_count(sum(len(u.rows) for _, u in self._worker_units(w, workers)))
            for w in range(workers)
        ]

    def __len__(self) -> int:
        return sum(self.batch_counts())

    def _rows(self, units: list[tuple[int, Unit]]) -> Iterator[tuple[Unit, int]]:
        for i, u in units:
            rows = list(u.rows)
            if self.shuffle:
                key = [self.seed, self.epoch, i]
                rows = [rows[i] for i in np.random.default_rng(key).permutation(len(rows))]
            for r in rows:
                yield u, r

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if workers != max(self.num_workers, 1):
            raise InputError(
                f"ShardDataset(num_workers={self.num_workers}) runs in a DataLoader with {workers} "
                "workers: give the dataset the DataLoader's num_workers"
            )
        units = self._worker_units(worker, workers)
        n_batches = self._batch_count(sum(len(u.rows) for _, u in units))
        skip = round_robin_skip(self.batch_counts(), self.skip, worker) if self.skip else 0
        rows = self._rows(units)
        # Skipped batches become placeholders (no chip read) so that the DataLoader's round-robin over the
        # workers keeps the uninterrupted order; `real_batches` drops them.
        for _ in range(skip):
            for _ in range(self.batch_size):
                next(rows, None)
            yield dict(SKIPPED)
        cache: dict[tuple[str, int], dict[str, list[Any]]] = {}
        for _ in range(skip, n_batches):
            picked = [r for _, r in zip(range(self.batch_size), rows, strict=False)]
            if not picked or (self.drop_last and len(picked) < self.batch_size):
                return
            images, texts, ids = [], [], []
            for u, r in picked:
                key = (u.path, u.row_group)
                if key not in cache:
                    cache.clear()  # one row group in memory per worker
                    t = pq.ParquetFile(u.path).read_row_group(u.row_group, columns=["id", "chip", "caption"])
                    cache[key] = t.to_pydict()
                cols = cache[key]
                arr, meta = decode_geotiff(cols["chip"][r])
                images.append(
                    chip_tensor(
                        arr, chip_band_names(meta, arr.shape[0]), self.bands, self.stats, self.image_size
                    )
                )
                texts.append(cols["caption"][r] or "")
                ids.append(cols["id"][r])
            yield {"image": torch.stack(images), "text": self.tokenizer(texts), "id": ids}
