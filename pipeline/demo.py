"""`s2cap demo`: the whole pipeline on a synthetic region, offline.

The world (12-band COGs, STAC items, Overture-schema GeoParquet) is generated under OUT/world, its items are served
by a real STAC API (`rustac serve`) on localhost, and the real stages run with the deterministic `facts` captioner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from shapely.geometry import box

from overture.source import OvertureSource
from pipeline.config import CaptionerConfig, RunConfig
from pipeline.execute import execute
from pipeline.region import Region
from sentinel.stac import StacConfig
from sentinel.stac_server import serve_stac
from synthetic.demo import build_demo

DEMO_SHARD_SIZE = 8


def run_demo(out: Path, chips_x: int = 3, chips_y: int = 2, seed: int = 0, console: Console | None = None,
             progress: bool = True, publish: str | None = None) -> dict[str, Any]:
    console = console or Console(stderr=True)
    world = build_demo(out / "world", seed=seed, n_chips_x=chips_x, n_chips_y=chips_y)
    console.print(f"synthetic world: {len(world.locations)} chip locations, bbox {world.bbox}, "
                  f"Overture release {world.overture_release}")
    with serve_stac(world.collection_json, world.items_ndjson) as url:
        console.print(f"STAC API (rustac) serving the world's items at {url}")
        cfg = RunConfig(
            region=Region(box(*world.bbox), f"synthetic demo (seed {seed})"),
            start=world.start, end=world.end, out=out,
            stac=StacConfig(url=url, collection="sentinel-2-l2a", provider="earth-search"),
            overture=OvertureSource.local(world.overture_root, world.overture_release),
            captioner=CaptionerConfig(kind="facts"),
            locations=list(world.locations),
            shard_size=DEMO_SHARD_SIZE,
            publish=publish,
        )
        return execute(cfg, console, progress=progress)
