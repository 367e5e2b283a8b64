"""The tiled synthetic world: several overlapping MGRS-like tiles per date, every chip whole inside a tile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
from pyproj import Transformer
from shapely.geometry import box, shape

from pipeline.planning import SamplingSpec
from sentinel.footprint import ChipLocation
from synthetic.large import LargeRegion, build_large, tiles_of
from synthetic.world import CHIP_M, make_world


def test_tiles_overlap_by_a_chip_and_cover_any_chip_position(small_tiled_world: LargeRegion) -> None:
    world = small_tiled_world
    assert len(world.tiles) == 4 and sum(t.n_chips for t in world.tiles) == len(world.locations) == 12
    items = [json.loads(line) for line in world.items_ndjson.read_text().splitlines()]
    assert len(items) == len(world.tiles) * len(world.dates) == len(set(it["id"] for it in items))
    assert {it["properties"]["synthetic:tile"] for it in items} == {t.name for t in world.tiles}
    by_name = {t.name: t for t in world.tiles}
    a, b = by_name["r0c0"].bounds, by_name["r0c1"].bounds
    assert a[2] - b[0] == pytest.approx(CHIP_M), "neighbour tiles overlap by one chip width"
    # Any chip inside the chip grid, on the world's grid or shifted by any 60 m step, lies whole in some tile.
    x0, y0 = world.locations[0].x0, world.locations[0].y0
    tiles = [box(*t.bounds) for t in world.tiles]
    for dx in range(0, int(3 * CHIP_M), 660):
        for dy in range(0, int(2 * CHIP_M), 660):
            chip = box(x0 + dx, y0 - dy - CHIP_M, x0 + dx + CHIP_M, y0 - dy)
            assert any(t.covers(chip) for t in tiles), (dx, dy)


def test_tile_items_describe_their_cogs(small_tiled_world: LargeRegion) -> None:
    item = json.loads(small_tiled_world.items_ndjson.read_text().splitlines()[0])
    tile = next(t for t in small_tiled_world.tiles if t.name == item["properties"]["synthetic:tile"])
    with rasterio.open(item["assets"]["red"]["href"]) as src:
        assert tuple(round(v) for v in src.bounds) == tuple(round(v) for v in tile.bounds)
        assert src.res == (10.0, 10.0) and src.crs.to_epsg() == small_tiled_world.epsg
    to_utm = Transformer.from_crs(4326, small_tiled_world.epsg, always_xy=True)
    footprint = shape(item["geometry"])
    lo, la = footprint.centroid.coords[0]
    x, y = to_utm.transform(lo, la)
    assert box(*tile.bounds).contains(box(x - 1, y - 1, x + 1, y + 1)), "the item footprint is its tile"


def test_grid_spec_lands_on_the_world_chips(small_tiled_world: LargeRegion) -> None:
    world = small_tiled_world
    spec = SamplingSpec("grid", world.start, world.end, bbox=world.bbox)
    ids = {loc.location_id for loc in spec.locations()}
    world_ids = {loc.location_id for loc in world.locations}
    assert len(ids & world_ids) >= len(world_ids) - 3, "grid chips reuse the world's chip ids"
    assert isinstance(world.locations[0], ChipLocation) and world.locations[0].x0 % CHIP_M == 0


def test_second_build_reuses_and_bad_sizes_are_named(small_tiled_world: LargeRegion, tmp_path: Path) -> None:
    again = build_large(small_tiled_world.root, n_chips_x=4, n_chips_y=3, seed=3, tile_chips=2, workers=1)
    assert again == small_tiled_world
    assert small_tiled_world.disk_bytes["scenes"] > 0 and small_tiled_world.build_seconds["total"] > 0
    with pytest.raises(ValueError, match="tile_chips=40"):
        build_large(tmp_path / "x", tile_chips=40)
    with pytest.raises(ValueError, match="0x3"):
        build_large(tmp_path / "x", n_chips_x=0, n_chips_y=3)


def test_edge_tiles_are_clipped_to_the_world() -> None:
    world = make_world((10.9, 47.4), 5, 2, seed=1)
    tiles = tiles_of(world, 2)
    assert [t.n_chips for t in tiles] == [4, 4, 2]
    frame = box(*world.bounds)
    assert all(frame.covers(box(*t.bounds)) for t in tiles)
