"""Chip reading: windowed reads of one chip's window from each band COG, onto the chip's 10 m UTM grid.

Resampling: 20 m and 60 m bands are brought to 10 m by nearest neighbour. Chip corners sit on the 60 m grid
that Sentinel-2 tiles share (see `sentinel.footprint`), so nearest is exact pixel replication (each 20 m pixel
becomes a 2x2 block, each 60 m pixel a 6x6 block): no value is invented or smoothed, which is what SSL4EO-S12 did
(its L2A bands were resampled to 10 m with nearest) and keeps each band's DN histogram intact for models.

A window that lies partly off the scene is read boundless; its missing pixels are 0 (nodata) and count as nodata.
A scene in another UTM zone than the chip goes through a WarpedVRT onto the chip's grid.

Only the SCL window is read first: a candidate whose SCL cloud + shadow + nodata share is above the threshold is
rejected before any band is fetched.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from sentinel.bands import BAND_NAMES, SCL_CLOUD, SCL_NODATA
from sentinel.footprint import ChipLocation
from sentinel.harmonize import apply_offset, harmonize_offset
from sentinel.stac import SceneRef

REASONS = ("no_scene", "cloudy", "read_error")

# GDAL settings for COGs over HTTP: no directory listing on open, merged range requests, GDAL's own retries
# for 429/5xx, a block cache shared by the 13 reads of a chip.
GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_MAX_RETRY": "2",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff",
    "VSI_CACHE": "TRUE",
}
# GDAL's block cache defaults to 5 % of RAM per process: 16 workers on a large machine would hold 80 % of it. It
# is capped once per process, from the environment (a user's own GDAL_CACHEMAX wins). Not in GDAL_ENV: rasterio
# re-applies those options on every `Env` entry, and setting GDAL_CACHEMAX there empties the cache each time
# (reads 9x slower, measured on the large synthetic world: 30 s vs 3.1-3.9 s per 64-chip shard).
GDAL_CACHEMAX_MB = 256
os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHEMAX_MB))
_TRANSIENT = re.compile(r"HTTP response code: (5\d\d|429)|timed? ?out|Connection (reset|refused|timed)|"
                        r"CURL error|SSL", re.IGNORECASE)
T = TypeVar("T")


class ChipReadError(Exception):
    """A chip could not be produced; `reason` is the sample status (no_scene, cloudy, read_error)."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"ChipReadError reason {reason!r}: use one of {', '.join(REASONS)}")
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class ReadConfig:
    max_bad_fraction: float = 0.10  # largest SCL cloud + shadow + nodata share of the chip (SSL4EO: 10 %)
    resampling: str = "nearest"  # for the 20/60 m bands; SCL always uses nearest (it is categorical)
    max_candidates: int = 3  # scenes tried per chip, best first
    retries: int = 2  # extra attempts for transient read errors (HTTP 5xx/429, timeouts)
    backoff_s: float = 0.5
    band_threads: int = 1  # concurrent band reads within one chip; >1 helps for remote COGs (latency-bound)

    def __post_init__(self) -> None:
        if not 0 <= self.max_bad_fraction <= 1:
            raise ValueError(f"max_bad_fraction {self.max_bad_fraction}: must be a share in [0, 1] (0.10 = 10 %)")
        if self.resampling not in Resampling.__members__:
            raise ValueError(f"resampling {self.resampling!r}: use a rasterio method such as nearest, bilinear, "
                             "cubic or average")
        if self.max_candidates < 1:
            raise ValueError(f"max_candidates {self.max_candidates}: must be at least 1")
        if self.retries < 0 or self.backoff_s < 0 or self.band_threads < 1:
            raise ValueError(f"retries {self.retries} / backoff_s {self.backoff_s} / band_threads "
                             f"{self.band_threads}: must be >= 0, >= 0 and >= 1")


@dataclass
class Chip:
    data: np.ndarray  # (12, H, W) uint16, harmonized L2A reflectance x 10000, 0 = nodata
    scl: np.ndarray  # (H, W) uint8 scene classification
    epsg: int
    transform: Affine
    scene: SceneRef
    offset: int  # DN subtracted by harmonization
    cloud_fraction: float  # SCL cloud + cloud shadow + cirrus share
    nodata_fraction: float  # SCL no_data/defective, or no band value


def chip_transform(loc: ChipLocation) -> Affine:
    return Affine(loc.res_m, 0.0, loc.x0, 0.0, -loc.res_m, loc.y0)


def _integral(v: float) -> bool:
    return abs(v - round(v)) < 1e-6


def _read_window(href: str, loc: ChipLocation, resampling: Resampling) -> np.ndarray:
    """Band 1 of `href` on the chip's grid (loc.size_px square), 0 where the scene has no data."""
    size = loc.size_px
    with rasterio.open(href) as src:
        if src.crs is None:
            raise ChipReadError("read_error", f"{href}: the raster has no CRS; it cannot be placed on the chip grid")
        t = src.transform
        if src.crs.to_epsg() == loc.epsg and t.b == 0 and t.d == 0:
            # the chip window in the band's pixels (computed directly: rasterio's from_bounds costs ~1 ms)
            c, r = (loc.x0 - t.c) / t.a, (loc.y0 - t.f) / t.e
            w, h = loc.size_m / t.a, loc.size_m / -t.e
            inside = c >= 0 and r >= 0 and c + w <= src.width and r + h <= src.height
            if inside and all(_integral(v) for v in (c, r, w, h)):
                window = Window(round(c), round(r), round(w), round(h))
                return src.read(1, window=window, out_shape=(size, size), resampling=resampling)
        # off the scene edge, not aligned, or another UTM zone: warp onto the chip grid (reads only the
        # blocks the chip needs; outside the scene stays 0)
        src_nodata = src.nodata if src.nodata is not None else 0
        with WarpedVRT(src, crs=CRS.from_epsg(loc.epsg), transform=chip_transform(loc), width=size, height=size,
                       resampling=resampling, src_nodata=src_nodata, nodata=0) as vrt:
            return vrt.read(1)


def _with_retries(what: str, fn: Callable[[], T], cfg: ReadConfig) -> T:
    delay = cfg.backoff_s
    for attempt in range(cfg.retries + 1):
        try:
            with rasterio.Env(**GDAL_ENV):
                return fn()
        except RasterioError as exc:
            text = " ".join(str(exc).split())
            if attempt == cfg.retries or not _TRANSIENT.search(text):
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise ChipReadError("read_error", f"cannot read {what}{tries}: {text[:300]}") from None
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def read_scl(loc: ChipLocation, scene: SceneRef, cfg: ReadConfig) -> np.ndarray:
    """The chip window of the scene's SCL, (H, W) uint8; 0 (no_data) off the scene."""
    href = scene.scl_href
    scl = _with_retries(href, lambda: _read_window(href, loc, Resampling.nearest), cfg)
    return scl.astype(np.uint8, copy=False)


def read_bands(loc: ChipLocation, scene: SceneRef, cfg: ReadConfig) -> np.ndarray:
    """The 12 raw (unharmonized) bands of the chip, (12, H, W) uint16, in BAND_NAMES order."""
    method = Resampling[cfg.resampling]

    def one(name: str) -> np.ndarray:
        href = scene.band_hrefs[name]
        return _with_retries(f"band {name} {href}", lambda: _read_window(href, loc, method), cfg)

    if cfg.band_threads > 1:
        with ThreadPoolExecutor(max_workers=cfg.band_threads) as pool:
            arrays = list(pool.map(one, BAND_NAMES))
    else:
        arrays = [one(name) for name in BAND_NAMES]
    return np.stack(arrays).astype(np.uint16, copy=False)


def scl_bad_fractions(scl: np.ndarray) -> tuple[float, float]:
    """(cloud + shadow + cirrus share, nodata share) of an SCL window."""
    n = max(scl.size, 1)
    cloud = float(np.isin(scl, list(SCL_CLOUD)).sum()) / n
    nodata = float(np.isin(scl, list(SCL_NODATA)).sum()) / n
    return cloud, nodata


def _chip(loc: ChipLocation, scene: SceneRef, cfg: ReadConfig, scl: np.ndarray) -> Chip:
    raw = read_bands(loc, scene, cfg)
    offset = harmonize_offset(scene)
    data = apply_offset(raw, offset)
    cloud, _ = scl_bad_fractions(scl)
    nodata_mask = np.isin(scl, list(SCL_NODATA)) | (raw == 0).all(axis=0)
    return Chip(data=data, scl=scl, epsg=loc.epsg, transform=chip_transform(loc), scene=scene, offset=offset,
                cloud_fraction=cloud, nodata_fraction=float(nodata_mask.mean()))


def read_chip(loc: ChipLocation, scene: SceneRef, cfg: ReadConfig | None = None) -> Chip:
    """The harmonized 12-band chip and its SCL from one scene, whatever its cloud cover."""
    cfg = cfg or ReadConfig()
    return _chip(loc, scene, cfg, read_scl(loc, scene, cfg))


def read_best(loc: ChipLocation, candidates: list[SceneRef], cfg: ReadConfig | None = None) -> Chip:
    """The first of the best `max_candidates` scenes whose chip is clear enough.

    A candidate that cannot be read is skipped like a cloudy one. The error names every candidate's fate; its
    reason is `cloudy` when some candidate was read but too cloudy, else `read_error`.
    """
    cfg = cfg or ReadConfig()
    if not candidates:
        raise ChipReadError("no_scene", f"chip {loc.location_id}: no candidate scene covers it")
    notes: list[str] = []
    cloudy = False
    for scene in candidates[:cfg.max_candidates]:
        try:
            scl = read_scl(loc, scene, cfg)
            cloud, nodata = scl_bad_fractions(scl)
            if cloud + nodata <= cfg.max_bad_fraction:
                chip = _chip(loc, scene, cfg, scl)
                if chip.cloud_fraction + chip.nodata_fraction <= cfg.max_bad_fraction:
                    return chip
                cloud, nodata = chip.cloud_fraction, chip.nodata_fraction
            cloudy = True
            notes.append(f"{scene.item_id}: cloud/shadow {cloud:.1%} + nodata {nodata:.1%} > "
                         f"{cfg.max_bad_fraction:.0%}")
        except ChipReadError as exc:
            notes.append(f"{scene.item_id}: {exc.message}")
    reason = "cloudy" if cloudy else "read_error"
    tried = min(len(candidates), cfg.max_candidates)
    raise ChipReadError(reason, f"chip {loc.location_id}: none of {tried} scene(s) usable: " + "; ".join(notes))
