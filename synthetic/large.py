"""A large synthetic region written as tiled scenes: several MGRS-like tiles per date, one STAC item each.

`synthetic.demo` renders one scene over the whole world, which needs the whole land-cover map in memory (a
50x50-chip world is ~175 M pixels, ~8 GB of float reflectance). Here the chip grid is cut into blocks of
`tile_chips` x `tile_chips` chips; each tile scene covers its block plus half a chip on every side, so
neighbour tiles overlap by one chip width (like real MGRS tiles, which overlap by ~9.8 km) and any 2.64 km
chip, on the world's grid or not, lies whole inside at least one tile. Memory is per tile, never per world.

`build_large(root)` writes, under `root`:
  scenes/<tile>/<item id>/B01.tif .. SCL.tif   one L2A scene per tile and date (4 dates: one per quarter)
  items.ndjson, collection.json                what `rustac serve` serves as a STAC API
  overture/theme=<t>/type=<y>/part-00000.parquet
  large.json                                   marker: the build arguments, the description and build figures
A second call with the same arguments reuses the files.

The world's chip corners are put on multiples of the 2640 m chip size, so a `grid` sampling spec over the
world (`s2cap plan`) lands on the same chips and ids as `LargeRegion.locations`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyproj import Transformer

from sentinel.footprint import SNAP_M, ChipLocation, utm_epsg
from synthetic.demo import clear_world, quarter_dates, reusable_region
from synthetic.overture import write_overture
from synthetic.scene import collection_dict, land_cover_map, utm_chip_centre, write_scene
from synthetic.world import CHIP_M, World, make_world

MARKER = "large.json"
_FORMAT = 1  # bump when the files written change, so old folders are rebuilt
# North-west corner: the Alpine foothills again (UTM 32N), so the demo and the large world look alike.
LARGE_ORIGIN: tuple[float, float] = (10.9, 47.4)
_HALF_CHIP = math.ceil(CHIP_M / 2 / SNAP_M) * SNAP_M  # 1320 m: the overlap margin of a tile on each side


@dataclass(frozen=True)
class Tile:
    """One scene tile: a name (`r<row>c<col>`), its UTM bounds and the chips it owns (its block)."""

    name: str
    bounds: tuple[float, float, float, float]
    n_chips: int


@dataclass(frozen=True)
class LargeRegion:
    """Everything a run needs on the large world, and what building it cost."""

    root: Path
    seed: int
    epsg: int
    n_chips_x: int
    n_chips_y: int
    tile_chips: int
    bbox: tuple[float, float, float, float]  # lon/lat of the chip grid (W, S, E, N)
    locations: tuple[ChipLocation, ...]  # row by row from the north-west
    start: dt.date
    end: dt.date
    dates: tuple[dt.date, ...]
    tiles: tuple[Tile, ...]
    item_ids: tuple[str, ...]
    collection_json: Path
    items_ndjson: Path
    overture_root: Path
    overture_release: str
    n_features: int
    build_seconds: dict[str, float]  # world, overture, scenes, total
    disk_bytes: dict[str, int]  # scenes, overture

    @property
    def n_samples(self) -> int:
        return len(self.locations) * len(self.dates)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["locations"] = [[c.location_id, c.epsg, c.x0, c.y0] for c in self.locations]
        d["tiles"] = [[t.name, list(t.bounds), t.n_chips] for t in self.tiles]
        for k in ("root", "collection_json", "items_ndjson", "overture_root"):
            d[k] = str(d[k])
        for k in ("start", "end"):
            d[k] = d[k].isoformat()
        d["dates"] = [x.isoformat() for x in self.dates]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LargeRegion:
        return cls(
            root=Path(d["root"]),
            seed=int(d["seed"]),
            epsg=int(d["epsg"]),
            n_chips_x=int(d["n_chips_x"]),
            n_chips_y=int(d["n_chips_y"]),
            tile_chips=int(d["tile_chips"]),
            bbox=tuple(d["bbox"]),  # type: ignore[arg-type]
            locations=tuple(
                ChipLocation(str(i), int(e), float(x), float(y)) for i, e, x, y in d["locations"]
            ),
            start=dt.date.fromisoformat(d["start"]),
            end=dt.date.fromisoformat(d["end"]),
            dates=tuple(dt.date.fromisoformat(x) for x in d["dates"]),
            tiles=tuple(Tile(n, tuple(b), int(k)) for n, b, k in d["tiles"]),  # type: ignore[arg-type]
            item_ids=tuple(d["item_ids"]),
            collection_json=Path(d["collection_json"]),
            items_ndjson=Path(d["items_ndjson"]),
            overture_root=Path(d["overture_root"]),
            overture_release=d["overture_release"],
            n_features=int(d["n_features"]),
            build_seconds=dict(d["build_seconds"]),
            disk_bytes=dict(d["disk_bytes"]),
        )


def chip_aligned_origin(origin_lonlat: tuple[float, float]) -> tuple[float, float]:
    """A lon/lat whose UTM position `make_world` snaps to a corner on multiples of CHIP_M (2640 m), the anchor
    of `sentinel.sampling.grid_locations`; so grid plans over the world reuse its chip ids."""
    lon, lat = origin_lonlat
    epsg = utm_epsg(lon, lat)
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    x0, y0 = math.floor(x / CHIP_M) * CHIP_M, math.floor(y / CHIP_M) * CHIP_M
    # a few metres inside the corner, so make_world's floor to 60 m lands exactly on it despite rounding
    lo, la = Transformer.from_crs(epsg, 4326, always_xy=True).transform(x0 + 5.0, y0 + 5.0)
    return (float(lo), float(la))


def tiles_of(world: World, tile_chips: int) -> list[Tile]:
    """The world's chip grid cut into blocks of `tile_chips` x `tile_chips` chips, each grown by half a chip
    on every side (clipped to the world's bounds)."""
    wminx, wminy, wmaxx, wmaxy = world.bounds
    out = []
    for r in range(math.ceil(world.n_chips_y / tile_chips)):
        for c in range(math.ceil(world.n_chips_x / tile_chips)):
            nx = min(tile_chips, world.n_chips_x - c * tile_chips)
            ny = min(tile_chips, world.n_chips_y - r * tile_chips)
            minx = world.x0 + c * tile_chips * CHIP_M
            maxy = world.y0 - r * tile_chips * CHIP_M
            bounds = (
                max(wminx, minx - _HALF_CHIP),
                max(wminy, maxy - ny * CHIP_M - _HALF_CHIP),
                min(wmaxx, minx + nx * CHIP_M + _HALF_CHIP),
                min(wmaxy, maxy + _HALF_CHIP),
            )
            out.append(Tile(f"r{r}c{c}", bounds, nx * ny))
    return out


# The world of the build in progress, shared with forked workers (read-only; pickling 600k shapes is slow).
_WORLD: World | None = None


def _render_tile(
    tile: Tile, dates: Sequence[dt.date], scenes_dir: str, clouds: dict[str, list[tuple[float, float, float]]]
) -> list[dict[str, Any]]:
    """The tile's land-cover map once, then one scene per date; item ids made unique per tile."""
    world = _WORLD
    assert world is not None, "the world is set before tiles are rendered"
    lc = land_cover_map(world, tile.bounds)
    items = []
    for k, date in enumerate(dates):
        item = write_scene(
            world,
            date,
            Path(scenes_dir) / tile.name,
            lc=lc,
            clouds=clouds.get(date.isoformat(), []),
            boa_offset_applied=True,
            seed=hash_tile(tile.name, k),
        )
        # mgrs_tile names the 100 km square; several tiles share one, so the id carries the tile as well
        platform, square, day, _, level = item["id"].split("_")
        item["id"] = f"{platform}_{square}{tile.name.upper()}_{day}_0_{level}"
        item["properties"]["synthetic:tile"] = tile.name
        items.append(item)
    return items


def hash_tile(name: str, k: int) -> int:
    """A small stable integer per (tile, date index), to seed each scene's noise differently."""
    return sum((i + 1) * ord(ch) for i, ch in enumerate(name)) * 8 + k


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_large(
    root: Path,
    n_chips_x: int = 50,
    n_chips_y: int = 50,
    seed: int = 0,
    year: int = 2024,
    tile_chips: int = 10,
    workers: int = 1,
) -> LargeRegion:
    """Write (or reuse) a tiled synthetic world of `n_chips_x` x `n_chips_y` chips x 4 quarterly dates.

    `workers` > 1 renders tiles in forked processes (each holds one tile's arrays, ~0.5 GB at 10x10 chips).
    """
    if n_chips_x < 1 or n_chips_y < 1:
        raise ValueError(f"large world {n_chips_x}x{n_chips_y}: give at least 1x1 chips")
    if not 1 <= tile_chips <= 20:
        raise ValueError(
            f"tile_chips={tile_chips}: give 1..20 chips per tile side (a 20x20-chip tile already "
            "needs ~2 GB to render)"
        )
    if workers < 1:
        raise ValueError(f"workers={workers}: give at least 1 process")
    if not 2016 <= year <= 2100:
        raise ValueError(f"year={year}: give a Sentinel-2 L2A year, 2016 or later")
    root = Path(root).resolve()
    args = {
        "seed": seed,
        "n_chips_x": n_chips_x,
        "n_chips_y": n_chips_y,
        "year": year,
        "tile_chips": tile_chips,
        "format": _FORMAT,
    }
    region = reusable_region(root, args, MARKER, LargeRegion.from_json)
    if region is not None:
        return region

    clear_world(root, MARKER)

    global _WORLD
    t0 = time.perf_counter()
    world = make_world(chip_aligned_origin(LARGE_ORIGIN), n_chips_x, n_chips_y, seed)
    t_world = time.perf_counter()
    overture_root = root / "overture"
    write_overture(world, overture_root)
    t_overture = time.perf_counter()

    dates = quarter_dates(year)
    tiles = tiles_of(world, tile_chips)
    # One cloud in spring over the first tile's first chip, so a run shows cloud handling at scale too.
    clouds = {dates[1].isoformat(): [(*utm_chip_centre(world.locations[0]), 0.42 * CHIP_M)]}
    scenes_dir = str(root / "scenes")
    _WORLD = world
    try:
        if workers == 1:
            per_tile = [
                _render_tile(t, dates, scenes_dir, clouds if i == 0 else {}) for i, t in enumerate(tiles)
            ]
        else:
            with ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("fork")
            ) as pool:
                futures = [
                    pool.submit(_render_tile, t, dates, scenes_dir, clouds if i == 0 else {})
                    for i, t in enumerate(tiles)
                ]
                per_tile = [f.result() for f in futures]
    finally:
        _WORLD = None
    t_scenes = time.perf_counter()
    items = sorted(
        (it for tile_items in per_tile for it in tile_items),
        key=lambda it: (it["properties"]["datetime"], it["id"]),
    )

    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    collection_json = root / "collection.json"
    collection_json.write_text(json.dumps(collection_dict(world.full_bbox, start, end), indent=1))
    items_ndjson = root / "items.ndjson"
    tmp_items = root / ".items.ndjson.tmp"
    tmp_items.write_text("".join(json.dumps(it) + "\n" for it in items))
    os.replace(tmp_items, items_ndjson)

    region = LargeRegion(
        root=root,
        seed=seed,
        epsg=world.epsg,
        n_chips_x=n_chips_x,
        n_chips_y=n_chips_y,
        tile_chips=tile_chips,
        bbox=world.bbox,
        locations=world.locations,
        start=start,
        end=end,
        dates=dates,
        tiles=tuple(tiles),
        item_ids=tuple(it["id"] for it in items),
        collection_json=collection_json,
        items_ndjson=items_ndjson,
        overture_root=overture_root,
        overture_release=f"synthetic-large-{seed}",
        n_features=len(world.features),
        build_seconds={
            "world": round(t_world - t0, 2),
            "overture": round(t_overture - t_world, 2),
            "scenes": round(t_scenes - t_overture, 2),
            "total": round(t_scenes - t0, 2),
        },
        disk_bytes={"scenes": _dir_bytes(root / "scenes"), "overture": _dir_bytes(overture_root)},
    )
    tmp = root / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"args": args, "region": region.to_json()}, indent=1))
    os.replace(tmp, root / MARKER)
    return region


__all__ = ["LARGE_ORIGIN", "LargeRegion", "Tile", "build_large", "chip_aligned_origin", "tiles_of"]
