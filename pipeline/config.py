"""The typed configuration of one run. Entry points (CLI, flows) build it; nothing below them sees CLI options."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overture.source import OvertureSource
from pipeline.errors import InputError
from pipeline.filters import FilterConfig
from pipeline.plan import Plan
from pipeline.region import Region
from sentinel.footprint import ChipLocation
from sentinel.preview import PreviewConfig
from sentinel.read import ReadConfig
from sentinel.stac import StacConfig

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
DEFAULT_VLLM_URL = "http://127.0.0.1:8000/v1"
DEFAULT_VLM = "llava-hf/llama3-llava-next-8b-hf"
CAPTIONERS = ("facts", "vllm", "vllm-offline", "transformers")


@dataclass
class CaptionerConfig:
    kind: str = "facts"
    urls: list[str] = field(default_factory=lambda: [DEFAULT_VLLM_URL])
    model: str = DEFAULT_VLM
    prompt_version: str = "v1"
    max_in_flight: int = 32
    cache: bool = True

    def __post_init__(self) -> None:
        if self.kind not in CAPTIONERS:
            raise InputError(f"--captioner {self.kind!r}: choose one of {', '.join(CAPTIONERS)}")
        if self.max_in_flight < 1:
            raise InputError(f"--max-in-flight {self.max_in_flight}: must be at least 1")


@dataclass
class RunConfig:
    region: Region
    start: dt.date
    end: dt.date
    out: Path
    stac: StacConfig
    overture: OvertureSource
    season_rule: str = "quarters"
    spacing_m: float = 2640.0
    read: ReadConfig = field(default_factory=ReadConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)
    captioner: CaptionerConfig = field(default_factory=CaptionerConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    shard_size: int = 64
    # explicit chip locations (the demo world) instead of a grid over the region
    locations: list[ChipLocation] | None = None
    # a stored work plan (from `s2cap plan`): its locations and seasons win over region, time range and seasons
    plan: Plan | None = None
    # an fsspec URL (s3://bucket/prefix, ...) the written shards and run files are copied to (pipeline/publish.py)
    publish: str | None = None
    # a shard in which more than this share of samples fail for infrastructure reasons stops the run
    max_failure_rate: float = 0.5

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InputError(f"--start {self.start} / --end {self.end}: the time range is empty; end must not be "
                             "before start")
        if self.spacing_m <= 0:
            raise InputError(f"--spacing {self.spacing_m}: must be positive (metres between chip centres)")
        if not 0 < self.max_failure_rate <= 1:
            raise InputError(f"max_failure_rate {self.max_failure_rate}: must be in (0, 1]")

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of the configuration, for the manifest."""

        def conv(v: Any) -> Any:
            if isinstance(v, list) and v and isinstance(v[0], ChipLocation):  # the plan.json holds them all
                ids = "\n".join(c.location_id for c in v)
                return {"count": len(v), "sha256": hashlib.sha256(ids.encode()).hexdigest()[:16]}
            if isinstance(v, Plan):
                return {"fingerprint": v.fingerprint(), "samples": v.n_samples}
            if isinstance(v, Region):
                return {"label": v.label, "bbox": list(v.bbox), "wkt": v.geometry.wkt}
            if dataclasses.is_dataclass(v) and not isinstance(v, type):
                return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
            if isinstance(v, (dt.date, Path)):
                return str(v)
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v]
            if isinstance(v, dict):
                return {str(k): conv(x) for k, x in v.items()}
            return v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)

        return {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self)}
