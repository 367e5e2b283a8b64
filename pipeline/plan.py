"""The work plan: which (location, season) samples exist and which shard holds each.

Written to `plan.json` before any work and read back on resume, so sample ids and shard membership never depend
on the parameters of a later invocation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.record import Sample
from sentinel.footprint import ChipLocation
from sentinel.seasons import Season

PLAN_VERSION = 1


@dataclass(frozen=True)
class Plan:
    locations: list[ChipLocation]
    seasons: list[Season]
    shard_size: int
    shards: list[list[tuple[int, int]]]  # per shard: (location index, season index) pairs

    @property
    def n_samples(self) -> int:
        return sum(len(s) for s in self.shards)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]

    def samples(self, shard_index: int) -> list[Sample]:
        return [make_sample(self.locations[li], self.seasons[si], shard_index) for li, si in self.shards[shard_index]]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "shard_size": self.shard_size,
            "seasons": [[s.name, s.start.isoformat(), s.end.isoformat()] for s in self.seasons],
            "locations": [[c.location_id, c.epsg, c.x0, c.y0, c.size_px, c.res_m] for c in self.locations],
            "shards": self.shards,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        if d.get("version") != PLAN_VERSION:
            raise InputError(f"plan.json version {d.get('version')} is not {PLAN_VERSION}; start a new run folder")
        return cls(
            locations=[ChipLocation(str(i), int(e), float(x), float(y), int(p), float(r))
                       for i, e, x, y, p, r in d["locations"]],
            seasons=[Season(n, dt.date.fromisoformat(a), dt.date.fromisoformat(b)) for n, a, b in d["seasons"]],
            shard_size=int(d["shard_size"]),
            shards=[[(int(li), int(si)) for li, si in shard] for shard in d["shards"]],
        )


def make_plan(locations: list[ChipLocation], seasons: list[Season], shard_size: int) -> Plan:
    """Location-major order: a shard holds neighbouring locations with all their seasons, so one STAC search per
    season and one Overture query cover a compact area."""
    if shard_size < 1:
        raise InputError(f"--shard-size {shard_size}: must be at least 1")
    if not locations:
        raise InputError("the region holds no chip location; give a larger region (a chip is 2.64 km wide)")
    if not seasons:
        raise InputError("the time range holds no season window; widen --start/--end")
    ids = [c.location_id for c in locations]
    if len(set(ids)) != len(ids):
        raise InputError("duplicate location ids in the sampling plan")
    units = [(li, si) for li in range(len(locations)) for si in range(len(seasons))]
    shards = [units[i:i + shard_size] for i in range(0, len(units), shard_size)]
    return Plan(locations, seasons, shard_size, shards)


def make_sample(loc: ChipLocation, season: Season, shard: int = -1) -> Sample:
    poly = loc.lonlat_polygon
    lon, lat = loc.center_lonlat
    return Sample(
        id=f"{loc.location_id}_{season.name}",
        location_id=loc.location_id,
        season=season.name,
        season_start=season.start.isoformat(),
        season_end=season.end.isoformat(),
        epsg=loc.epsg,
        utm_bounds=loc.utm_bounds,
        lon=lon,
        lat=lat,
        footprint_wkb=poly.wkb,
        bbox=tuple(float(v) for v in poly.bounds),  # type: ignore[arg-type]
        location=loc,
        shard=shard,
    )


def save_or_check_plan(run_dir: Path, plan: Plan) -> Plan:
    """Write plan.json on a new run; on resume keep the stored plan and refuse a different one."""
    path = run_dir / "plan.json"
    if path.exists():
        stored = Plan.from_json(json.loads(path.read_text()))
        if stored.fingerprint() != plan.fingerprint():
            raise InputError(
                f"{run_dir} holds a run planned with other locations, seasons or shard size "
                f"(plan {stored.fingerprint()} vs {plan.fingerprint()}); resume with the same region, time range and "
                "--shard-size, or choose a new --out"
            )
        return stored
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(plan.to_json()))
    os.replace(tmp, path)
    return plan


def load_plan(run_dir: Path) -> Plan:
    path = run_dir / "plan.json"
    if not path.exists():
        raise InputError(f"{run_dir}: no plan.json; is this a run folder written by `s2cap caption-region`?")
    return Plan.from_json(json.loads(path.read_text()))
