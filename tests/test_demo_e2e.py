"""The README's main job: `s2cap demo` runs the real pipeline offline and leaves shards one can trust."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from shapely import wkb
from shapely.geometry import box

from overture.connect import connect
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = run_cli("demo", "--out", str(out), "--quiet")
    return out, proc.stderr


def _rows(out: Path) -> list[dict]:
    return pq.read_table(sorted((out / "shards").glob("*.parquet"))).to_pylist()


def test_demo_prints_summary_and_writes_a_complete_run(demo_run: tuple[Path, str]) -> None:
    out, log = demo_run
    assert "s2cap run summary" in log and "captioned" in log
    plan = json.loads((out / "plan.json").read_text())
    planned = sum(len(s) for s in plan["shards"])
    rows = _rows(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == planned == len(set(ids)), "every planned sample exactly once"
    assert len(list((out / "shards").glob("*.done.json"))) == len(plan["shards"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert (out / "card.md").read_text().strip()
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= planned // 2
    assert all(r["caption"] for r in ok), "every captioned row has a caption"
    failed = [r for r in rows if r["status"] != "ok"]
    assert all(r["error"] for r in failed), "every failed row says why"
    assert any(r["status"] == "cloudy" for r in rows), "the demo's cloud blob is recorded as a failure row"
    for r in rows:  # provenance on every row
        assert r["overture_release"] or r["status"] != "ok"
        if r["status"] == "ok":
            assert r["stac_item_id"] and r["prompt_version"] and r["model"] and r["preview_params"]


def test_footprints_match_chips(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    from rasterio.io import MemoryFile

    for r in _rows(out):
        if r["status"] != "ok":
            continue
        with MemoryFile(r["chip"]) as mem, mem.open() as ds:
            assert ds.count == 12 and ds.width == 264 and ds.height == 264
            assert ds.crs.to_epsg() == r["epsg"]
            assert tuple(ds.bounds) == pytest.approx(tuple(r["utm_bounds"]), abs=1e-6)
            assert ds.descriptions[3] == "B04"
        poly = wkb.loads(r["footprint_wkb"])
        assert poly.area > 0 and poly.within(box(*r["bbox"].values()).buffer(1e-9))


def test_captions_mention_facts_really_under_the_chip(demo_run: tuple[Path, str]) -> None:
    """Every proper name in a caption belongs to an Overture feature intersecting that chip's footprint,
    checked directly against the GeoParquet with DuckDB (not through the pipeline's own facts)."""
    out, _ = demo_run
    con = connect()
    root = out / "world"
    parquet = [str(p) for p in root.rglob("*.parquet") if "theme=" in str(p)]
    assert parquet, "the demo world holds Overture GeoParquet"
    checked = 0
    for r in _rows(out):
        if r["status"] != "ok":
            continue
        wkt = wkb.loads(r["footprint_wkb"]).wkt
        names = {row[0] for row in con.execute(
            "SELECT DISTINCT names.primary FROM read_parquet(?, union_by_name=true) "
            "WHERE names.primary IS NOT NULL AND ST_Intersects(geometry, ST_GeomFromText(?))",
            [parquet, wkt]).fetchall()}
        fact_names = {n["name"] for n in r["facts"]["named"]}
        assert fact_names <= names
        for name in re.findall(r"(?:[A-Z][a-z]+ )+(?:[A-Z][a-z]+)", r["caption"]):
            if name.startswith("A Sentinel"):
                continue
            assert name in names, f"{r['id']}: caption names {name!r}, not under the chip: {sorted(names)}"
            checked += 1
        if r["facts"]["classes"]:
            top = max(r["facts"]["classes"], key=lambda c: c["fraction"])
            assert r["tags"], "a chip with mapped classes gets tags"
            assert top["fraction"] > 0
    assert checked > 0, "the demo must caption at least one named feature"
