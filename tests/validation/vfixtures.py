"""Test data for the validation tests: a small run folder written by the real shard writer, rating files.

The run holds 24 samples: four land-cover mixes, four seasons, two regions (Denmark and Chile), two rows
that failed (status != ok, never exported), and a few captions the filters flagged.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from shapely.geometry import box

from overture.model import ClassArea, Facts
from pipeline.record import FilterResult, Sample
from pipeline.shards import write_shard

SIZE = 16
# chip band values (reflectance x 10000) per land cover, in band order B01..B12; B08 is index 7
BAND_VALUES = {
    "farmland": [300, 400, 700, 500, 1200, 2500, 2900, 3000, 3100, 3100, 2000, 1100],
    "forest": [200, 250, 450, 250, 800, 2600, 3000, 2800, 3100, 3100, 1400, 700],
    "water": [400, 500, 600, 300, 250, 200, 180, 150, 140, 100, 60, 40],
    "residential": [900, 1000, 1100, 1200, 1300, 1500, 1700, 1800, 1900, 1900, 2200, 2000],
}
CAPTIONS = {
    "farmland": "Green farmland fields with a small lake and a narrow road.",
    "forest": "Dense forest covers the hills beside a winding river.",
    "water": "Open water of a wide bay with a sandy shore.",
    "residential": "A residential town with houses, streets and a church.",
}


def chip_tiff(cover: str) -> bytes:
    data = np.empty((12, SIZE, SIZE), dtype=np.uint16)
    for b, v in enumerate(BAND_VALUES[cover]):
        data[b] = v
    data[:, :, : SIZE // 2] //= 2  # a darker left half, so the image is not flat
    with rasterio.MemoryFile() as mem:
        with mem.open(
            driver="GTiff",
            width=SIZE,
            height=SIZE,
            count=12,
            dtype="uint16",
            crs="EPSG:32632",
            transform=Affine(10.0, 0, 550_000.0, 0, -10.0, 6_340_000.0),
        ) as dst:
            dst.write(data)
        return mem.read()


def png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (SIZE, SIZE), color).save(buf, format="PNG")
    return buf.getvalue()


def facts_of(cover: str) -> Facts:
    classes = {
        "farmland": [ClassArea("land_use", "agriculture", "farmland", 5e6, 0.7)],
        "forest": [ClassArea("land_cover", "forest", "forest", 6e6, 0.85)],
        "water": [ClassArea("water", "bay", "bay", 4e6, 0.6)],
        "residential": [ClassArea("land_use", "residential", "residential", 2e6, 0.3)],
    }[cover]
    return Facts(
        footprint_m2=2640.0**2,
        classes=classes,
        building_count=300 if cover == "residential" else 3,
        building_fraction=0.4 if cover == "residential" else 0.001,
    )


def make_run_samples() -> list[Sample]:
    covers = list(BAND_VALUES)
    out = []
    for i in range(24):
        cover = covers[i % 4]
        season = f"2024-Q{(i // 4) % 4 + 1}"
        chile = i >= 16
        lon0, lat0 = (-72.49, -38.84) if chile else (9.83 + 0.05 * (i % 8), 57.22)
        flagged = i in (1, 6, 17)
        filters = [FilterResult("length", True)]
        if flagged:
            reason = "grounding_water" if i != 6 else "too_short"
            filters.append(FilterResult("grounding" if i != 6 else "length", False, reason, "lake"))
        status = "ok" if i not in (5, 22) else "cloudy"
        out.append(
            Sample(
                id=f"loc{i:04d}_{season}",
                location_id=f"loc{i:04d}",
                season=season,
                season_start="2024-01-01",
                season_end="2024-03-31",
                epsg=32632,
                utm_bounds=(550_000.0, 6_340_000.0, 552_640.0, 6_342_640.0),
                lon=lon0 + 0.02,
                lat=lat0 + 0.01,
                footprint_wkb=box(lon0, lat0, lon0 + 0.04, lat0 + 0.02).wkb,
                bbox=(lon0, lat0, lon0 + 0.04, lat0 + 0.02),
                stac_item_id=f"S2B_32VNJ_2024_{i}",
                datetime="2024-05-01T10:20:31Z",
                chip_tiff=chip_tiff(cover) if status == "ok" else None,
                preview_png=png((40 + 8 * i, 120, 60)) if status == "ok" else None,
                preview_params=json.dumps({"stretch": [0, 3000]}),
                facts=facts_of(cover),
                tags=[cover, "road"],
                questions=["What covers most of the image?"],
                answers=[cover.capitalize() + "."],
                caption=CAPTIONS[cover] if status == "ok" else None,
                model="facts",
                prompt_version="v1",
                filters=filters,
                keep=not flagged,
                status=status,
            )
        )
    return out


def write_run(run: Path) -> Path:
    samples = make_run_samples()
    for shard, start in enumerate(range(0, len(samples), 10)):
        write_shard(run, shard, samples[start : start + 10], {"rows": len(samples[start : start + 10])})
    (run / "manifest.json").write_text(json.dumps({"name": "fixture", "captioner": "facts"}))
    return run


def write_ratings(folder: Path, rater: str, ratings: dict[str, dict[str, Any]], **extra: Any) -> Path:
    path = folder / "ratings" / f"{rater}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"version": 1, "rater": rater, "position": None, "ratings": ratings, **extra}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path
