"""Parquet shards: the explicit schema, the round trip, atomic writes, done-markers, kill-and-resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from overture.model import ClassArea, Facts, NamedFeature, RoadLength
from pipeline.errors import InputError
from pipeline.record import FilterResult
from pipeline.shards import (
    SCHEMA,
    clean_partial,
    done_shards,
    iter_shard_samples,
    marker_path,
    read_marker,
    read_shards,
    samples_to_table,
    shard_path,
    table_to_samples,
    write_shard,
)

EXPECTED_COLUMNS = [
    "id", "location_id", "season", "season_start", "season_end", "lon", "lat", "footprint_wkb", "bbox", "epsg",
    "utm_bounds", "datetime", "stac_item_id", "stac_collection", "stac_provider", "processing_baseline",
    "harmonize_offset", "cloud_fraction", "nodata_fraction", "scene_fractions", "chip", "preview", "preview_params",
    "overture_release", "facts", "tags", "captioner", "model", "prompt_version", "prompt_hash", "questions",
    "answers", "caption", "prompt_tokens", "completion_tokens", "filters", "keep", "status", "error",
]  # fmt: skip


def full_sample(factory, png, tiff, index: int = 0):
    return factory(
        index,
        stac_item_id=f"S2B_32VNJ_20240501_0_L2A_{index}",
        stac_collection="sentinel-2-l2a",
        stac_provider="earth-search",
        datetime="2024-05-01T10:20:31Z",
        processing_baseline="05.10",
        harmonize_offset=0,
        cloud_fraction=0.012,
        nodata_fraction=0.0,
        chip=np.zeros((12, 4, 4), dtype=np.uint16),
        scl=np.zeros((4, 4), dtype=np.uint8),
        chip_tiff=tiff(seed=index),
        overture_release="2025-01-22.0",
        facts=Facts(
            footprint_m2=2640.0**2,
            classes=[ClassArea("land_use", "agriculture", "farmland", 5.2e6, 0.75)],
            building_count=40,
            building_fraction=0.01,
            roads=[RoadLength("secondary", 3100.0)],
            named=[NamedFeature("Tranum Sø", "water", "lake", "lake")],
            place_count=2,
        ),
        scene_fractions={"vegetation": 0.8, "water": 0.12},
        tags=["farmland", "lake"],
        preview_png=png(),
        preview_params='{"stretch": [0, 3000]}',
        captioner="vllm",
        model="llava-hf/llama3-llava-next-8b-hf",
        prompt_version="v1",
        prompt_hash="ab" * 32,
        questions=["What land cover dominates?", "Is there water?"],
        answers=["Farmland.", "A small lake."],
        caption="Green farmland with a small lake.",
        prompt_tokens=812,
        completion_tokens=64,
        filters=[FilterResult("length", True, None, "6 words"), FilterResult("cloudy", False, "cloudy", "0.3")],
        keep=False,
    )


def test_schema_is_explicit() -> None:
    assert SCHEMA.names == EXPECTED_COLUMNS
    assert SCHEMA.field("preview").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert SCHEMA.field("chip").type == pa.large_binary()
    assert SCHEMA.field("footprint_wkb").type == pa.binary()
    assert SCHEMA.field("utm_bounds").type == pa.list_(pa.field("element", pa.float64()), 4)
    assert SCHEMA.field("datetime").type == pa.timestamp("us", tz="UTC")
    assert SCHEMA.field("bbox").type.names == ["xmin", "ymin", "xmax", "ymax"]
    facts = SCHEMA.field("facts").type
    assert facts.names == [
        "footprint_m2", "classes", "building_count", "building_fraction", "roads", "named", "place_count",
    ]  # fmt: skip
    assert SCHEMA.field("filters").type.value_type.names == ["name", "keep", "reason", "detail"]
    hf = json.loads(SCHEMA.metadata[b"huggingface"])["info"]["features"]
    assert hf["preview"] == {"_type": "Image"}
    assert list(hf) == EXPECTED_COLUMNS
    geo = json.loads(SCHEMA.metadata[b"geo"])
    assert geo["primary_column"] == "footprint_wkb" and geo["columns"]["footprint_wkb"]["encoding"] == "WKB"


def test_round_trip(sample_factory, png_factory, tiff_factory) -> None:
    samples = [
        full_sample(sample_factory, png_factory, tiff_factory, 0),
        sample_factory(1, status="no_scene", error="no item in 2024-04-01/2024-06-30"),
        sample_factory(2, caption="", tags=[], facts=Facts(footprint_m2=1.0)),
    ]
    table = samples_to_table(samples)
    assert table.schema.equals(SCHEMA, check_metadata=True)
    back = table_to_samples(table)
    for s in samples:
        s.drop_arrays()  # arrays are transient and not stored
    assert back == samples
    assert table.column("preview")[0].as_py()["path"] == "loc0000_2024-Q2.png"
    assert table.column("preview")[1].as_py() is None


def test_bad_datetime_is_a_clear_error(sample_factory) -> None:
    with pytest.raises(InputError, match="loc0000_2024-Q2: datetime='yesterday'"):
        samples_to_table([sample_factory(datetime="yesterday")])


def test_write_shard_files_and_marker(tmp_path: Path, sample_factory, png_factory, tiff_factory) -> None:
    samples = [full_sample(sample_factory, png_factory, tiff_factory, i) for i in range(3)]
    path = write_shard(tmp_path, 7, samples, {"stages": {"read": {"seconds": 1.5, "ok": 3}}})
    assert path == tmp_path / "shards" / "00007.parquet"
    assert sorted(p.name for p in path.parent.iterdir()) == ["00007.parquet", "_00007.done.json"]
    pf = pq.ParquetFile(path)
    assert pf.schema_arrow.equals(SCHEMA, check_metadata=True)
    assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
    marker = read_marker(tmp_path, 7)
    assert marker is not None
    assert marker["rows"] == 3 and marker["ids"] == [s.id for s in samples]
    assert marker["stats"] == {"stages": {"read": {"seconds": 1.5, "ok": 3}}}
    assert done_shards(tmp_path, verify_hash=True) == {7}
    assert [s.id for s in iter_shard_samples(tmp_path)] == [s.id for s in samples]


def test_crash_leftovers_are_cleaned(tmp_path: Path, sample_factory) -> None:
    folder = tmp_path / "shards"
    write_shard(tmp_path, 0, [sample_factory(0), sample_factory(1)], {})
    # 1: killed while writing the parquet -> a temporary
    folder.joinpath(".00001.parquet.tmp-4242").write_bytes(b"PAR1 half written")
    # 2: killed between the parquet rename and the marker -> parquet without marker
    pq.write_table(samples_to_table([sample_factory(4)]), shard_path(tmp_path, 2))
    # 3: a marker that does not describe its parquet (row count differs)
    write_shard(tmp_path, 3, [sample_factory(5), sample_factory(6)], {})
    pq.write_table(samples_to_table([sample_factory(5)]), shard_path(tmp_path, 3))
    # 4: a marker whose parquet is gone
    write_shard(tmp_path, 4, [sample_factory(7)], {})
    shard_path(tmp_path, 4).unlink()
    # 5: a truncated parquet under its marker
    write_shard(tmp_path, 5, [sample_factory(8)], {})
    shard_path(tmp_path, 5).write_bytes(shard_path(tmp_path, 5).read_bytes()[:100])

    assert done_shards(tmp_path) == {0}
    assert read_shards(tmp_path, columns=["id"]).column("id").to_pylist() == ["loc0000_2024-Q2", "loc0001_2024-Q2"]
    removed = {p.name for p in clean_partial(tmp_path)}
    assert removed == {
        ".00001.parquet.tmp-4242", "00002.parquet", "00003.parquet", "_00003.done.json", "_00004.done.json",
        "00005.parquet", "_00005.done.json",
    }  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == ["00000.parquet", "_00000.done.json"]
    assert clean_partial(tmp_path) == []


def test_rewrite_replaces_marker(tmp_path: Path, sample_factory) -> None:
    write_shard(tmp_path, 0, [sample_factory(0)], {"n": 1})
    write_shard(tmp_path, 0, [sample_factory(0), sample_factory(1)], {"n": 2})
    assert read_marker(tmp_path, 0)["stats"] == {"n": 2}  # type: ignore[index]
    assert read_shards(tmp_path).num_rows == 2


def test_read_shards_empty_and_bad_columns(tmp_path: Path) -> None:
    empty = read_shards(tmp_path)
    assert empty.num_rows == 0 and empty.schema.names == EXPECTED_COLUMNS
    with pytest.raises(InputError, match="unknown shard columns"):
        read_shards(tmp_path, columns=["id", "captions"])


def test_loads_with_hugging_face_datasets(tmp_path: Path, sample_factory, png_factory, tiff_factory) -> None:
    datasets = pytest.importorskip("datasets", reason="Hugging Face `datasets` is not installed")
    write_shard(tmp_path, 0, [full_sample(sample_factory, png_factory, tiff_factory)], {})
    rows = datasets.load_dataset("parquet", data_files=str(tmp_path / "shards" / "*.parquet"), split="train")
    assert type(rows.features["preview"]).__name__ == "Image"
    assert rows[0]["preview"].size == (16, 16)


# --- kill -9 at random points, resume, every sample exactly once ------------------------------------------------

WORKER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pipeline.record import Sample
    from pipeline.shards import clean_partial, done_shards, write_shard

    run, n_shards, per_shard = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    clean_partial(run)
    done = done_shards(run)
    print("ready", flush=True)
    for index in range(n_shards):
        if index in done:
            continue
        samples = []
        for k in range(per_shard):
            i = index * per_shard + k
            samples.append(Sample(
                id=f"loc{i:05d}_2024-Q2", location_id=f"loc{i:05d}", season="2024-Q2",
                season_start="2024-04-01", season_end="2024-06-30", epsg=32632,
                utm_bounds=(0.0, 0.0, 2640.0, 2640.0), lon=9.8, lat=57.2, footprint_wkb=b"\\x01",
                bbox=(9.8, 57.2, 9.84, 57.22), caption=f"sample {i}", chip_tiff=os.urandom(150_000),
            ))
        write_shard(run, index, samples, {"written_by": os.getpid()})
    print("finished", flush=True)
    """
)


def test_kill_and_resume_every_sample_once(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    run = tmp_path / "run"
    n_shards, per_shard = 12, 6
    rng = random.Random(6)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, str(worker), str(run), str(n_shards), str(per_shard)], stdout=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        try:
            proc.wait(timeout=rng.uniform(0.0, 0.25))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        proc.stdout.close()
    assert kills >= 1, "the worker always finished before the kill: make shards bigger"
    final = subprocess.run(
        [sys.executable, str(worker), str(run), str(n_shards), str(per_shard)], capture_output=True, env=env
    )
    assert final.returncode == 0, final.stderr.decode()

    assert done_shards(run, verify_hash=True) == set(range(n_shards))
    assert not [p for p in (run / "shards").iterdir() if p.name.startswith(".")]
    ids = read_shards(run, columns=["id"]).column("id").to_pylist()
    expected = [f"loc{i:05d}_2024-Q2" for i in range(n_shards * per_shard)]
    assert ids == expected  # every sample exactly once, in plan order
    for index in range(n_shards):
        assert pq.ParquetFile(shard_path(run, index)).metadata.num_rows == per_shard
        assert marker_path(run, index).is_file()
