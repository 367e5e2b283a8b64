"""Parquet shards with one explicit schema, written atomically, each sealed by a done-marker written last.

A run folder holds `shards/{index:05d}.parquet` and `shards/_{index:05d}.done.json`. The parquet file is written
under a temporary name in the same folder and renamed into place; the marker (stats, row count, sha256) follows
the same way. A shard counts as done only when its marker exists and the parquet row count matches it, so a run
killed at any point resumes by `clean_partial` + redoing every shard not in `done_shards`.

The preview column is an image struct `{bytes, path}` and the schema carries Hugging Face `datasets` feature
metadata, so `datasets.load_dataset("parquet", ...)` shows previews as images (datasets >= 4: `List` features).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from overture.model import Facts
from pipeline.errors import InputError
from pipeline.record import FilterResult, Sample

SCHEMA_VERSION = "1"
SHARD_DIR = "shards"
_TMP_MARK = ".tmp-"


def _list(t: pa.DataType, size: int = -1) -> pa.DataType:
    """A list type with Parquet's compliant child name, so schemas read back from files compare equal."""
    return pa.list_(pa.field("element", t), size)


BBOX = pa.struct([("xmin", pa.float64()), ("ymin", pa.float64()), ("xmax", pa.float64()), ("ymax", pa.float64())])
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # Hugging Face `datasets` Image layout
FACTS = pa.struct(
    [
        ("footprint_m2", pa.float64()),
        (
            "classes",
            _list(
                pa.struct(
                    [
                        ("type", pa.string()),
                        ("subtype", pa.string()),
                        ("cls", pa.string()),
                        ("area_m2", pa.float64()),
                        ("fraction", pa.float64()),
                    ]
                )
            ),
        ),
        ("building_count", pa.int64()),
        ("building_fraction", pa.float64()),
        ("roads", _list(pa.struct([("cls", pa.string()), ("length_m", pa.float64())]))),
        (
            "named",
            _list(
                pa.struct(
                    [("name", pa.string()), ("type", pa.string()), ("subtype", pa.string()), ("cls", pa.string())]
                )
            ),
        ),
        ("place_count", pa.int64()),
    ]
)
FILTER = pa.struct([("name", pa.string()), ("keep", pa.bool_()), ("reason", pa.string()), ("detail", pa.string())])

_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("location_id", pa.string(), nullable=False),
    pa.field("season", pa.string(), nullable=False),
    pa.field("season_start", pa.date32()),
    pa.field("season_end", pa.date32()),
    pa.field("lon", pa.float64()),
    pa.field("lat", pa.float64()),
    pa.field("footprint_wkb", pa.binary()),  # EPSG:4326 polygon
    pa.field("bbox", BBOX),  # lon/lat, the GeoParquet 1.1 covering column
    pa.field("epsg", pa.int32()),
    pa.field("utm_bounds", _list(pa.float64(), 4)),  # xmin, ymin, xmax, ymax in `epsg`
    pa.field("datetime", pa.timestamp("us", tz="UTC")),
    pa.field("stac_item_id", pa.string()),
    pa.field("stac_collection", pa.string()),
    pa.field("stac_provider", pa.string()),
    pa.field("processing_baseline", pa.string()),
    pa.field("harmonize_offset", pa.int32()),
    pa.field("cloud_fraction", pa.float64()),
    pa.field("nodata_fraction", pa.float64()),
    # SCL class -> share of the chip's pixels (the scene's own evidence for grounding)
    pa.field("scene_fractions", _list(pa.struct([("name", pa.string()), ("fraction", pa.float64())]))),
    pa.field("chip", pa.large_binary()),  # 12-band GeoTIFF bytes
    pa.field("preview", IMAGE),
    pa.field("preview_params", pa.string()),
    pa.field("overture_release", pa.string()),
    pa.field("facts", FACTS),
    pa.field("tags", _list(pa.string())),
    pa.field("captioner", pa.string()),
    pa.field("model", pa.string()),
    pa.field("prompt_version", pa.string()),
    pa.field("prompt_hash", pa.string()),
    pa.field("questions", _list(pa.string())),
    pa.field("answers", _list(pa.string())),
    pa.field("caption", pa.string()),
    pa.field("prompt_tokens", pa.int64()),
    pa.field("completion_tokens", pa.int64()),
    pa.field("filters", _list(FILTER)),
    pa.field("keep", pa.bool_(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
]

_VALUE_DTYPES = {
    pa.string(): "string",
    pa.float64(): "float64",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.bool_(): "bool",
    pa.binary(): "binary",
    pa.large_binary(): "large_binary",
    pa.date32(): "date32",
    pa.timestamp("us", tz="UTC"): "timestamp[us, tz=UTC]",
}


def _hf_feature(t: pa.DataType) -> dict[str, Any]:
    """Hugging Face `datasets` feature dict of an arrow type (the subset this schema uses)."""
    if t.equals(IMAGE):
        return {"_type": "Image"}
    if pa.types.is_struct(t):
        return {t.field(i).name: _hf_feature(t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_fixed_size_list(t):
        return {"feature": _hf_feature(t.value_type), "length": t.list_size, "_type": "List"}
    if pa.types.is_list(t):
        return {"feature": _hf_feature(t.value_type), "_type": "List"}
    return {"dtype": _VALUE_DTYPES[t], "_type": "Value"}


def _metadata() -> dict[bytes, bytes]:
    geo = {
        "version": "1.1.0",
        "primary_column": "footprint_wkb",
        "columns": {
            "footprint_wkb": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
            }
        },
    }
    features = {f.name: _hf_feature(f.type) for f in _FIELDS}
    return {
        b"geo": json.dumps(geo).encode(),
        b"huggingface": json.dumps({"info": {"features": features}}).encode(),
        b"s2cap_schema_version": SCHEMA_VERSION.encode(),
    }


SCHEMA: pa.Schema = pa.schema(_FIELDS, metadata=_metadata())


# --- samples <-> table --------------------------------------------------------------------------------------


def _date(value: str | None, what: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise InputError(f"{what}={value!r} is not an ISO date (YYYY-MM-DD)") from None


def _timestamp(value: str | None, sample_id: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"sample {sample_id}: datetime={value!r} is not ISO 8601 (e.g. 2024-05-01T10:20:31Z)"
        ) from None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _row(s: Sample) -> dict[str, Any]:
    return {
        "id": s.id,
        "location_id": s.location_id,
        "season": s.season,
        "season_start": _date(s.season_start, f"sample {s.id}: season_start"),
        "season_end": _date(s.season_end, f"sample {s.id}: season_end"),
        "lon": s.lon,
        "lat": s.lat,
        "footprint_wkb": s.footprint_wkb,
        "bbox": dict(zip(("xmin", "ymin", "xmax", "ymax"), map(float, s.bbox), strict=True)),
        "epsg": s.epsg,
        "utm_bounds": [float(v) for v in s.utm_bounds],
        "datetime": _timestamp(s.datetime, s.id),
        "stac_item_id": s.stac_item_id,
        "stac_collection": s.stac_collection,
        "stac_provider": s.stac_provider,
        "processing_baseline": s.processing_baseline,
        "harmonize_offset": s.harmonize_offset,
        "cloud_fraction": s.cloud_fraction,
        "nodata_fraction": s.nodata_fraction,
        "scene_fractions": [{"name": k, "fraction": v} for k, v in sorted(s.scene_fractions.items())],
        "chip": s.chip_tiff,
        "preview": None if s.preview_png is None else {"bytes": s.preview_png, "path": f"{s.id}.png"},
        "preview_params": s.preview_params,
        "overture_release": s.overture_release,
        "facts": None if s.facts is None else s.facts.to_dict(),
        "tags": list(s.tags),
        "captioner": s.captioner,
        "model": s.model,
        "prompt_version": s.prompt_version,
        "prompt_hash": s.prompt_hash,
        "questions": list(s.questions),
        "answers": list(s.answers),
        "caption": s.caption,
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "filters": [{"name": f.name, "keep": f.keep, "reason": f.reason, "detail": f.detail} for f in s.filters],
        "keep": bool(s.keep),
        "status": s.status,
        "error": s.error,
    }


def samples_to_table(samples: list[Sample]) -> pa.Table:
    """One row per sample, in order, with exactly `SCHEMA` (arrays are not stored; `chip_tiff` is)."""
    return pa.Table.from_pylist([_row(s) for s in samples], schema=SCHEMA)


def _iso_datetime(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def table_to_samples(table: pa.Table) -> list[Sample]:
    """Samples back from a shard table (any column subset that holds the identity columns)."""
    out = []
    for r in table.to_pylist():
        preview = r.get("preview")
        facts = r.get("facts")
        bbox = r.get("bbox") or {}
        out.append(
            Sample(
                id=r["id"],
                location_id=r["location_id"],
                season=r["season"],
                season_start=r["season_start"].isoformat() if r.get("season_start") else "",
                season_end=r["season_end"].isoformat() if r.get("season_end") else "",
                epsg=r.get("epsg") or 0,
                utm_bounds=tuple(r.get("utm_bounds") or (0.0, 0.0, 0.0, 0.0)),  # type: ignore[arg-type]
                lon=r.get("lon") or 0.0,
                lat=r.get("lat") or 0.0,
                footprint_wkb=r.get("footprint_wkb") or b"",
                bbox=tuple(bbox.get(k, 0.0) for k in ("xmin", "ymin", "xmax", "ymax")),  # type: ignore[arg-type]
                stac_item_id=r.get("stac_item_id"),
                stac_collection=r.get("stac_collection"),
                stac_provider=r.get("stac_provider"),
                datetime=_iso_datetime(r.get("datetime")),
                processing_baseline=r.get("processing_baseline"),
                harmonize_offset=r.get("harmonize_offset") or 0,
                cloud_fraction=r.get("cloud_fraction"),
                nodata_fraction=r.get("nodata_fraction"),
                scene_fractions={d["name"]: d["fraction"] for d in r.get("scene_fractions") or []},
                chip_tiff=r.get("chip"),
                overture_release=r.get("overture_release"),
                facts=None if facts is None else Facts.from_dict(facts),
                tags=list(r.get("tags") or []),
                preview_png=None if preview is None else preview["bytes"],
                preview_params=r.get("preview_params"),
                captioner=r.get("captioner"),
                model=r.get("model"),
                prompt_version=r.get("prompt_version"),
                prompt_hash=r.get("prompt_hash"),
                questions=list(r.get("questions") or []),
                answers=list(r.get("answers") or []),
                caption=r.get("caption"),
                prompt_tokens=r.get("prompt_tokens") or 0,
                completion_tokens=r.get("completion_tokens") or 0,
                filters=[FilterResult(**f) for f in r.get("filters") or []],
                keep=bool(r.get("keep")),
                status=r.get("status") or "ok",
                error=r.get("error"),
            )
        )
    return out


# --- files --------------------------------------------------------------------------------------------------


def shard_path(run_dir: Path, index: int) -> Path:
    return Path(run_dir) / SHARD_DIR / f"{index:05d}.parquet"


def marker_path(run_dir: Path, index: int) -> Path:
    # The leading underscore keeps markers out of `pq.read_table("RUN/shards")` (pyarrow skips _ and . names).
    return Path(run_dir) / SHARD_DIR / f"_{index:05d}.done.json"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Any) -> None:
    """Call write(tmp_path), fsync it, rename it onto `path`, fsync the folder."""
    # A hidden name: globs like shards/*.parquet and pyarrow datasets never see a temporary.
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file under a temporary name in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_shard(run_dir: Path, index: int, samples: list[Sample], stats: dict[str, Any]) -> Path:
    """Write shard `index` (parquet, zstd) and then its done-marker; returns the parquet path.

    An older marker of the same index is removed first, so a crash never leaves a marker next to a shard it
    does not describe.
    """
    if index < 0:
        raise InputError(f"shard index {index} must be >= 0")
    path = shard_path(run_dir, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = marker_path(run_dir, index)
    marker.unlink(missing_ok=True)
    table = samples_to_table(samples)
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    done = {
        "index": index,
        "rows": table.num_rows,
        "sha256": _sha256(path),
        "bytes": path.stat().st_size,
        "schema_version": SCHEMA_VERSION,
        "ids": [s.id for s in samples],
        "stats": stats,
    }
    write_text_atomic(marker, json.dumps(done, indent=1, sort_keys=True, default=str))
    return path


def read_marker(run_dir: Path, index: int) -> dict[str, Any] | None:
    """The done-marker of a shard, or None when it is missing or unreadable."""
    try:
        return json.loads(marker_path(run_dir, index).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


_SHARD_NAME = re.compile(r"^_?(\d{5,})\.(parquet|done\.json)$")


def _indices(run_dir: Path, kind: str) -> set[int]:
    folder = Path(run_dir) / SHARD_DIR
    if not folder.is_dir():
        return set()
    found = set()
    for p in folder.iterdir():
        m = _SHARD_NAME.match(p.name)
        if m and m.group(2) == kind:
            found.add(int(m.group(1)))
    return found


def shard_is_done(run_dir: Path, index: int, verify_hash: bool = False) -> bool:
    marker = read_marker(run_dir, index)
    path = shard_path(run_dir, index)
    if marker is None or not path.is_file():
        return False
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return False
    if rows != marker.get("rows"):
        return False
    return not verify_hash or _sha256(path) == marker.get("sha256")


def done_shards(run_dir: Path, verify_hash: bool = False) -> set[int]:
    """Indices of complete shards: marker present and parquet row count (and sha256 if asked) matching."""
    return {i for i in _indices(run_dir, "done.json") if shard_is_done(run_dir, i, verify_hash)}


def clean_partial(run_dir: Path) -> list[Path]:
    """Remove temporaries, parquet files without a valid marker, and markers without a valid shard."""
    folder = Path(run_dir) / SHARD_DIR
    if not folder.is_dir():
        return []
    done = done_shards(run_dir)
    removed = []
    for p in sorted(folder.iterdir()):
        m = _SHARD_NAME.match(p.name)
        stale = _TMP_MARK in p.name or (m is not None and int(m.group(1)) not in done)
        if stale and p.is_file():
            p.unlink()
            removed.append(p)
    return removed


def _projection(columns: list[str] | None) -> pa.Schema:
    unknown = sorted(set(columns or []) - set(SCHEMA.names))
    if unknown:
        raise InputError(f"unknown shard columns {unknown}: use some of {', '.join(SCHEMA.names)}")
    return SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns], metadata=SCHEMA.metadata)


def iter_shard_tables(
    run_dir: Path, columns: list[str] | None = None, indices: Iterable[int] | None = None
) -> Iterator[tuple[int, pa.Table]]:
    """(index, table) of every done shard (or of the done shards in `indices`) in index order, one shard in
    memory at a time."""
    schema = _projection(columns)
    for i in sorted(done_shards(run_dir) if indices is None else indices):
        yield i, pq.read_table(shard_path(run_dir, i), columns=columns).cast(schema)


def read_shards(run_dir: Path, columns: list[str] | None = None) -> pa.Table:
    """All done shards in index order as one table (an empty `SCHEMA` table when there are none). This holds the
    whole dataset: code that runs at dataset scale iterates `iter_shard_tables` instead."""
    tables = [t for _, t in iter_shard_tables(run_dir, columns)]
    return pa.concat_tables(tables) if tables else _projection(columns).empty_table()


def iter_shard_samples(run_dir: Path, columns: list[str] | None = None) -> Iterator[Sample]:
    """Samples of every done shard, in shard then row order."""
    for i in sorted(done_shards(run_dir)):
        yield from table_to_samples(pq.read_table(shard_path(run_dir, i), columns=columns))
