"""The parameters of the flows, as JSON-able models that deployments (prefect.yaml, the UI) can fill in.

Flow parameters stay plain data: a region (bbox, GeoJSON file or explicit chip locations), the endpoints, the
captioner and the execution settings. `run_config` turns them into the pipeline's typed `RunConfig` inside the
flow, and `make_task_runner` turns the execution settings into a Prefect task runner.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Literal

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.config import DEFAULT_VLLM_URL, DEFAULT_VLM, EARTH_SEARCH_URL, CaptionerConfig, RunConfig
from pipeline.errors import InputError
from sentinel.footprint import CHIP_PX, RES_M, ChipLocation

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class LocationSpec(BaseModel):
    """One chip of a sampling plan: a stable id and the chip's upper-left corner in a UTM zone."""

    model_config = ConfigDict(extra="forbid")

    location_id: str
    epsg: int
    x0: float
    y0: float
    size_px: int = CHIP_PX
    res_m: float = RES_M

    @classmethod
    def of(cls, loc: ChipLocation) -> LocationSpec:
        return cls(location_id=loc.location_id, epsg=loc.epsg, x0=loc.x0, y0=loc.y0, size_px=loc.size_px,
                   res_m=loc.res_m)

    def chip(self) -> ChipLocation:
        return ChipLocation(self.location_id, self.epsg, self.x0, self.y0, self.size_px, self.res_m)


class RegionSpec(BaseModel):
    """One region of a dataset. Give `bbox` or `geojson` (`locations` replaces the grid over it), or `plan`: a
    folder holding a plan.json written by `s2cap plan`, whose locations, seasons and shard size are then the
    region (the way to run a large plan: the flow's parameters stay small). The endpoint and time fields
    override the flow-wide ones for this region only."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Short name; also the run folder under the output location.")
    bbox: list[float] | None = Field(default=None, description="W,S,E,N in degrees (lon/lat).")
    geojson: str | None = Field(default=None, description="Path of a GeoJSON (Multi)Polygon file.")
    locations: list[LocationSpec] | None = Field(default=None, description="Explicit chip locations.")
    plan: str | None = Field(default=None, description="A folder with a plan.json from `s2cap plan`.")
    start: dt.date | None = None
    end: dt.date | None = None
    stac_url: str | None = None
    overture_path: str | None = None
    overture_release: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"region name {v!r}: use letters, digits, '_', '.', '-' "
                             "(it names the run folder)")
        return v

    @model_validator(mode="after")
    def _one_region(self) -> RegionSpec:
        if sum(v is not None for v in (self.bbox, self.geojson, self.plan)) != 1:
            raise ValueError(f"region {self.name!r}: give exactly one of bbox [W,S,E,N], geojson (a file path) "
                             "or plan (a folder with a plan.json from `s2cap plan`)")
        if self.plan is not None and self.locations is not None:
            raise ValueError(f"region {self.name!r}: a stored plan already holds its locations; drop `locations`")
        if self.bbox is not None and len(self.bbox) != 4:
            raise ValueError(f"region {self.name!r}: bbox needs four numbers W,S,E,N, got {self.bbox}")
        return self


class Sources(BaseModel):
    """Where the imagery and the map facts come from."""

    model_config = ConfigDict(extra="forbid")

    stac_url: str = EARTH_SEARCH_URL
    collection: str = "sentinel-2-l2a"
    provider: str = "auto"
    max_cloud: float = 20.0
    stac_retries: int = Field(default=3, ge=0, description="Retries inside one search (task retries add).")
    overture_release: str | None = None  # default: the pinned release
    overture_path: str | None = None  # a local mirror instead of S3
    publish: str | None = None  # fsspec URL (s3://bucket/prefix): each region is copied to <publish>/<name>


class Captioning(BaseModel):
    """The captioner backend; `facts` needs no model server."""

    model_config = ConfigDict(extra="forbid")

    captioner: Literal["facts", "vllm", "vllm-offline", "transformers"] = "vllm"
    vllm_urls: list[str] = Field(default_factory=lambda: [DEFAULT_VLLM_URL])
    model: str = DEFAULT_VLM
    prompt_version: str = "v1"
    max_in_flight: int = Field(default=32, ge=1, description="Requests in flight per caption task.")
    cache: bool = True


class Execution(BaseModel):
    """How the shard tasks run: the task runner, how many shards are in flight, retries."""

    model_config = ConfigDict(extra="forbid")

    task_runner: Literal["thread", "dask"] = "thread"
    shards_in_flight: int = Field(default=2, ge=1, description="Shards prepared/captioned at the same time.")
    dask_address: str | None = Field(default=None, description="A Dask scheduler; else a local cluster.")
    dask_workers: int = Field(default=2, ge=1, description="Workers of the local Dask cluster.")
    dask_threads_per_worker: int = Field(default=1, ge=1)
    shards_per_runner: int = Field(
        default=500, ge=1, description="Shards submitted to one task runner before a fresh one is started: the "
        "Dask scheduler of a local cluster keeps ~50 KB per finished task in the flow process (measured), so a "
        "long run restarts it in waves.")
    retries: int = Field(default=2, ge=0, description="Retries of a shard task after a transient fault.")
    retry_delay_seconds: float = Field(default=2.0, ge=0)
    shard_size: int = Field(default=64, ge=1)
    spacing_m: float = Field(default=2640.0, gt=0)
    seasons: str = "quarters"

    @model_validator(mode="after")
    def _dask_options(self) -> Execution:
        if self.dask_address is not None and self.task_runner != "dask":
            raise ValueError("dask_address is set but task_runner is not 'dask'; set task_runner: dask")
        return self


def _date(v: dt.date | str, what: str) -> dt.date:
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(v)
    except ValueError:
        raise InputError(f"{what} {v!r}: not a date; use YYYY-MM-DD") from None


def run_config(region: RegionSpec, start: dt.date | str, end: dt.date | str, output: str, sources: Sources,
               captioning: Captioning, execution: Execution) -> RunConfig:
    """The pipeline's typed config for one region (validated by the pipeline's own configs)."""
    from overture.source import DEFAULT_RELEASE, OvertureSource
    from pipeline.region import check_bbox, load_geojson
    from sentinel.stac import StacConfig

    stored = None
    if region.plan is not None:
        from pipeline.plan import load_plan
        from pipeline.region import locations_region

        stored = load_plan(Path(region.plan))
        geo = locations_region(stored.locations, f"{region.name}: plan {stored.fingerprint()} from {region.plan}")
        start, end = stored.seasons[0].start, stored.seasons[-1].end
    elif region.bbox is not None:
        from shapely.geometry import box

        from pipeline.region import Region

        w, s, e, n = check_bbox(tuple(region.bbox), what=f"region {region.name} bbox")  # type: ignore[arg-type]
        geo = Region(box(w, s, e, n), f"{region.name}: bbox {w},{s},{e},{n}")
    else:
        geo = load_geojson(Path(str(region.geojson)))
    overture_path = region.overture_path or sources.overture_path
    release = region.overture_release or sources.overture_release
    if overture_path is not None:
        source = OvertureSource.local(overture_path, release or f"local:{Path(overture_path).name}")
    else:
        source = OvertureSource.s3(release or DEFAULT_RELEASE)
    try:
        return RunConfig(
            region=geo,
            start=_date(start if stored else region.start or start, f"region {region.name} start"),
            end=_date(end if stored else region.end or end, f"region {region.name} end"),
            out=Path(output) / region.name,
            stac=StacConfig(url=region.stac_url or sources.stac_url, collection=sources.collection,
                            provider=sources.provider, max_cloud_cover=sources.max_cloud,
                            retries=sources.stac_retries),
            overture=source,
            season_rule=execution.seasons,
            spacing_m=execution.spacing_m,
            captioner=CaptionerConfig(kind=captioning.captioner, urls=list(captioning.vllm_urls),
                                      model=captioning.model, prompt_version=captioning.prompt_version,
                                      max_in_flight=captioning.max_in_flight, cache=captioning.cache),
            shard_size=stored.shard_size if stored else execution.shard_size,
            locations=[loc.chip() for loc in region.locations] if region.locations else None,
            plan=stored,
            publish=f"{sources.publish.rstrip('/')}/{region.name}" if sources.publish else None,
        )
    except InputError:
        raise
    except ValueError as exc:  # the pipeline configs validate themselves with messages that name the input
        raise InputError(f"region {region.name}: {exc}") from None


def load_sampling_plan(path: str) -> list[RegionSpec]:
    """A sampling plan file: JSON `{"regions": [RegionSpec, ...]}` (or a bare list of regions)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"sampling_plan {path}: file not found; give a JSON file with a 'regions' list")
    try:
        doc: Any = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"sampling_plan {path}: not valid JSON ({exc})") from None
    items = doc.get("regions") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise InputError(f"sampling_plan {path}: expected a non-empty 'regions' list")
    return [RegionSpec.model_validate(r) for r in items]


def make_task_runner(execution: Execution) -> TaskRunner[Any]:
    """The task runner the execution settings name. Threads: one process, enough threads that a shard's
    three chained tasks never starve each other. Dask: a local cluster of worker processes, or a running
    scheduler."""
    if execution.task_runner == "thread":
        return ThreadPoolTaskRunner(max_workers=3 * execution.shards_in_flight)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise InputError("task_runner 'dask' needs prefect-dask: pip install 's2cap[flows]'") from None
    if execution.dask_address:
        return DaskTaskRunner(address=execution.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": execution.dask_workers,
                                          "threads_per_worker": execution.dask_threads_per_worker,
                                          "processes": True, "dashboard_address": ":0"})
