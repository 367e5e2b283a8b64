"""The offline demo region: a small synthetic world written as STAC items + COGs + an Overture mirror.

`build_demo(root)` writes, under `root`:
  scenes/<item id>/B01.tif .. B12.tif, SCL.tif   one Earth Search-style L2A scene per calendar quarter
  items.ndjson, collection.json                  what `rustac serve` serves as a STAC API
  overture/theme=<t>/type=<y>/part-00000.parquet the world's features in the Overture layout
  demo.json                                      marker: the build arguments and the returned description
A second call with the same arguments reuses the files.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from sentinel.footprint import ChipLocation
from synthetic.overture import write_overture
from synthetic.scene import collection_dict, land_cover_map, utm_chip_centre, write_scene
from synthetic.world import CHIP_M, make_world

# North-west corner of the demo grid: Alpine foothills south of the Zugspitze massif (UTM 32N, MGRS 32TPT).
DEMO_ORIGIN: tuple[float, float] = (10.9, 47.4)
MARKER = "demo.json"
R = TypeVar("R")
_FORMAT = 1  # bump when the files written change, so old demo folders are rebuilt


@dataclass(frozen=True)
class DemoRegion:
    """Everything the pipeline needs to run on the demo world, and the truth tests compare with."""

    root: Path
    seed: int
    bbox: tuple[float, float, float, float]  # lon/lat of the chip grid (W, S, E, N)
    epsg: int
    locations: tuple[ChipLocation, ...]
    start: dt.date
    end: dt.date
    dates: tuple[dt.date, ...]  # one acquisition per calendar quarter
    item_ids: tuple[str, ...]
    collection_json: Path
    items_ndjson: Path
    overture_root: Path
    overture_release: str
    truth: dict[str, dict[str, float]]  # location_id -> land-cover fractions of the rasterized world (no seasonal snow)
    cloudy_location_id: str
    cloudy_date: dt.date

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["locations"] = [asdict(loc) for loc in self.locations]
        for k in ("root", "collection_json", "items_ndjson", "overture_root"):
            d[k] = str(d[k])
        for k in ("start", "end", "cloudy_date"):
            d[k] = d[k].isoformat()
        d["dates"] = [x.isoformat() for x in self.dates]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DemoRegion:
        return cls(
            root=Path(d["root"]), seed=int(d["seed"]), epsg=int(d["epsg"]),
            bbox=tuple(d["bbox"]),  # type: ignore[arg-type]
            locations=tuple(ChipLocation(**loc) for loc in d["locations"]),
            start=dt.date.fromisoformat(d["start"]), end=dt.date.fromisoformat(d["end"]),
            dates=tuple(dt.date.fromisoformat(x) for x in d["dates"]), item_ids=tuple(d["item_ids"]),
            collection_json=Path(d["collection_json"]), items_ndjson=Path(d["items_ndjson"]),
            overture_root=Path(d["overture_root"]), overture_release=d["overture_release"], truth=d["truth"],
            cloudy_location_id=d["cloudy_location_id"], cloudy_date=dt.date.fromisoformat(d["cloudy_date"]),
        )


def quarter_dates(year: int) -> tuple[dt.date, ...]:
    """One acquisition date in the middle of each calendar quarter."""
    return tuple(dt.date(year, m, 15) for m in (2, 5, 8, 11))


def reusable_region(root: Path, args: dict[str, Any], marker: str,
                    from_json: Callable[[dict[str, Any]], R]) -> R | None:
    """The region recorded in `root/marker` when it was built with the same `args` and every file it names (the
    STAC documents, the Overture mirror, each asset href) still exists; None means build it again."""
    path = root / marker
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        if saved.get("args") != args:
            return None
        region: Any = from_json(saved["region"])
    except (ValueError, KeyError, TypeError):
        return None
    files = [region.collection_json, region.items_ndjson, region.overture_root]
    for line in region.items_ndjson.read_text().splitlines() if region.items_ndjson.is_file() else []:
        files += [Path(a["href"]) for a in json.loads(line)["assets"].values()]
    return region if all(p.exists() for p in files) and region.root == root else None


def clear_world(root: Path, marker: str) -> None:
    """Make `root` ready for a fresh build: the marker goes first (a build killed midway is never reused), then
    the scenes and the Overture mirror of an earlier build."""
    root.mkdir(parents=True, exist_ok=True)
    (root / marker).unlink(missing_ok=True)
    for sub in ("scenes", "overture"):
        shutil.rmtree(root / sub, ignore_errors=True)


def build_demo(root: Path, seed: int = 0, n_chips_x: int = 3, n_chips_y: int = 2, year: int = 2024) -> DemoRegion:
    """Write (or reuse) the demo world under `root` and describe it."""
    if n_chips_x < 1 or n_chips_y < 1 or n_chips_x * n_chips_y > 400:
        raise ValueError(f"demo size {n_chips_x}x{n_chips_y}: give 1..400 chips in all (the demo writes one scene "
                         f"over the whole region; use synthetic.world + synthetic.scene for bigger worlds)")
    if not 2016 <= year <= 2100:
        raise ValueError(f"year={year}: give a Sentinel-2 L2A year, 2016 or later")
    root = Path(root).resolve()
    args = {"seed": seed, "n_chips_x": n_chips_x, "n_chips_y": n_chips_y, "year": year, "format": _FORMAT}
    region = reusable_region(root, args, MARKER, DemoRegion.from_json)
    if region is not None:
        return region

    clear_world(root, MARKER)

    world = make_world(DEMO_ORIGIN, n_chips_x, n_chips_y, seed)
    lc = land_cover_map(world)
    dates = quarter_dates(year)
    # One cloud over one chip in spring, so a run shows a `cloudy` row; the chip is picked by the seed.
    cloudy = world.locations[(seed + 1) % len(world.locations)]
    cloudy_date = dates[1]
    items = []
    for date in dates:
        clouds = [(*utm_chip_centre(cloudy), 0.42 * CHIP_M)] if date == cloudy_date else []
        items.append(write_scene(world, date, root / "scenes", lc=lc, clouds=clouds, boa_offset_applied=True))
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    collection_json = root / "collection.json"
    collection_json.write_text(json.dumps(collection_dict(world.full_bbox, start, end), indent=1))
    items_ndjson = root / "items.ndjson"
    items_ndjson.write_text("".join(json.dumps(it) + "\n" for it in items))
    overture_root = root / "overture"
    write_overture(world, overture_root)

    region = DemoRegion(
        root=root, seed=seed, bbox=world.bbox, epsg=world.epsg, locations=world.locations, start=start, end=end,
        dates=dates, item_ids=tuple(it["id"] for it in items), collection_json=collection_json,
        items_ndjson=items_ndjson, overture_root=overture_root, overture_release=f"synthetic-{seed}",
        truth={loc.location_id: lc.fractions(loc) for loc in world.locations},
        cloudy_location_id=cloudy.location_id, cloudy_date=cloudy_date,
    )
    tmp = root / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"args": args, "region": region.to_json()}, indent=1))
    tmp.replace(root / MARKER)
    return region
