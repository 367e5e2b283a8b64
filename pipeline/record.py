"""The one record that flows through every stage: a Sample per (location, season).

Stages enrich it in place. A stage that fails on a sample calls `fail()`; later stages skip samples whose
status is not `ok`, and the shard writer still writes them, so every planned sample is accounted for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from overture.model import Facts
from sentinel.footprint import ChipLocation

# Status values. `ok` while a sample is alive; any other value says which stage gave up and why.
OK = "ok"
STATUSES = (
    OK,
    "no_scene",  # no STAC item covers the chip in its season window
    "cloudy",  # every candidate scene had too much cloud/shadow/nodata over the chip
    "read_error",  # a COG could not be read (missing band asset, truncated file, HTTP error)
    "facts_error",  # the Overture query failed for this footprint
    "caption_error",  # the captioner gave no usable reply after its retries
    "error",  # anything else, with the exception text in `error`
)


@dataclass(slots=True)
class FilterResult:
    name: str
    keep: bool
    reason: str | None = None  # e.g. "too_short", "grounding_water"; None when kept
    detail: str = ""  # offending words, measured value, ...


@dataclass(slots=True)
class Sample:
    # identity and place
    id: str  # stable: f"{location_id}_{season}"
    location_id: str
    season: str  # e.g. "2024-Q2"
    season_start: str  # ISO date
    season_end: str  # ISO date
    epsg: int
    utm_bounds: tuple[float, float, float, float]
    lon: float  # chip centre
    lat: float
    footprint_wkb: bytes  # lon/lat polygon (EPSG:4326)
    bbox: tuple[float, float, float, float]  # lon/lat (xmin, ymin, xmax, ymax)

    # transient working state (never persisted)
    location: ChipLocation | None = None
    shard: int = -1  # the plan's shard holding this sample (-1 outside a plan)
    scenes: list[Any] = field(default_factory=list)  # candidate sentinel.stac.SceneRef, best first

    # scene and chip (sentinel stage)
    stac_item_id: str | None = None
    stac_collection: str | None = None
    stac_provider: str | None = None
    datetime: str | None = None  # acquisition, ISO 8601 UTC
    processing_baseline: str | None = None
    harmonize_offset: int = 0  # DN subtracted to harmonize (1000 for baseline >= 04.00 raw data, else 0)
    cloud_fraction: float | None = None  # SCL cloud + shadow over the chip
    nodata_fraction: float | None = None
    scene_fractions: dict[str, float] = field(default_factory=dict)  # SCL class -> share of the chip's pixels
    chip: np.ndarray | None = None  # (12, H, W) uint16, transient: written as `chip_tiff`
    scl: np.ndarray | None = None  # (H, W) uint8, transient
    chip_tiff: bytes | None = None  # 12-band GeoTIFF with band names, CRS, transform

    # Overture (overture stage)
    overture_release: str | None = None
    facts: Facts | None = None
    tags: list[str] = field(default_factory=list)

    # preview (sentinel.preview)
    preview_png: bytes | None = None
    preview_params: str | None = None  # JSON of the rendering parameters

    # captioning
    captioner: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    prompt_hash: str | None = None
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    caption: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    # filtering and outcome
    filters: list[FilterResult] = field(default_factory=list)
    keep: bool = False
    status: str = OK
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, not persisted

    @property
    def ok(self) -> bool:
        return self.status == OK

    def fail(self, status: str, error: str) -> None:
        """Mark the sample failed. The first failure wins; the row is still written."""
        if status not in STATUSES or status == OK:
            raise ValueError(f"unknown failure status {status!r}; use one of {STATUSES[1:]}")
        if self.status == OK:
            self.status = status
            self.error = error
            self.keep = False

    def drop_arrays(self) -> None:
        """Free the transient arrays once the chip is encoded."""
        self.chip = None
        self.scl = None
        self.scenes = []
