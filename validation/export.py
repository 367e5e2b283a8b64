"""Export a reproducible stratified sample of a run's `ok` rows as a self-contained rating folder.

    OUT/samples.json          one object per sample: images, caption, Q&A, tags, facts, filters, stratum
    OUT/images/<id>.rgb.png   the RGB preview stored in the shard
    OUT/images/<id>.fcc.png   a false-colour preview (B08/B04/B03) rendered from the chip GeoTIFF
    OUT/manifest.json         run, seed, strata, counts per stratum, source shard files
    OUT/ratings/              filled by `s2cap rate`

Strata: `landcover` (dominant Overture class of the facts), `season` (the season label without its year),
`region` (a 1-degree lon/lat cell), `location` (the location id) and `outcome` (kept or flagged by the
filters). Allocation is proportional with at least one sample per stratum when n allows (rare strata are
seen).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from pipeline.errors import InputError
from pipeline.shards import done_shards, read_marker, shard_path, write_text_atomic
from sentinel.bands import BAND_INDEX, FALSE_COLOR_BANDS
from sentinel.preview import PreviewConfig, png_bytes, render_rgb
from validation.ratings import RATINGS_DIR, SAMPLES_FILE

STRATA: tuple[str, ...] = ("landcover", "season", "region", "location", "outcome")
DEFAULT_STRATA: tuple[str, ...] = ("landcover", "season", "region", "outcome")
IMAGES_DIR = "images"
# Vegetation reflects 0.3-0.5 in the NIR: a visible-light range (0..3000 DN) would saturate most of a summer
# chip, so with a fixed stretch B08 is shown over 0..vmax / NIR_SCALE (0..5000 DN by default).
NIR_SCALE = 0.6
_COLUMNS = [
    "id", "location_id", "season", "lon", "lat", "epsg", "datetime", "stac_item_id", "chip", "preview",
    "preview_params", "facts", "tags", "questions", "answers", "caption", "model", "prompt_version",
    "filters",
    "keep", "status",
]  # fmt: skip


def parse_strata(strata: str | Sequence[str]) -> tuple[str, ...]:
    """`"landcover,season"` or a list -> checked stratum names (none: one stratum for everything)."""
    names = [s.strip() for s in (strata.split(",") if isinstance(strata, str) else strata) if s.strip()]
    bad = [s for s in names if s not in STRATA]
    if bad:
        raise InputError(f"--strata {','.join(bad)}: unknown; use a comma list of {', '.join(STRATA)}")
    if len(set(names)) != len(names):
        raise InputError(f"--strata {','.join(names)}: a stratum is named twice")
    return tuple(names)


# --- strata keys --------------------------------------------------------------------------------------------


def dominant_class(facts: dict[str, Any] | None) -> str:
    """The land-cover class covering most of the footprint: an Overture class, 'buildings', or 'none'."""
    if not facts:
        return "none"
    area: dict[str, float] = {}
    for c in facts.get("classes") or []:
        name = c.get("cls") or c.get("subtype") or c.get("type") or "unknown"
        area[name] = area.get(name, 0.0) + float(c.get("fraction") or 0.0)
    area["buildings"] = area.get("buildings", 0.0) + float(facts.get("building_fraction") or 0.0)
    best = max(sorted(area), key=lambda k: area[k], default=None)
    return best if best is not None and area[best] > 0 else "none"


def season_label(season: str) -> str:
    m = re.match(r"^\d{4}-(.+)$", season or "")
    return m.group(1) if m else (season or "unknown")


def region_cell(lon: float | None, lat: float | None) -> str:
    if lon is None or lat is None or not (math.isfinite(lon) and math.isfinite(lat)):
        return "unknown"
    la, lo = math.floor(lat), math.floor(lon)
    return f"{'N' if la >= 0 else 'S'}{abs(la):02d}{'E' if lo >= 0 else 'W'}{abs(lo):03d}"


def stratum_of(row: dict[str, Any]) -> dict[str, str]:
    return {
        "landcover": dominant_class(row.get("facts")),
        "season": season_label(row.get("season") or ""),
        "region": region_cell(row.get("lon"), row.get("lat")),
        "location": row.get("location_id") or "unknown",
        "outcome": "kept" if row.get("keep") else "flagged",
    }


def _key(stratum: dict[str, str], strata: tuple[str, ...]) -> str:
    return "|".join(f"{s}={stratum[s]}" for s in strata) or "all"


# --- allocation ---------------------------------------------------------------------------------------------


def allocate(sizes: dict[str, int], n: int, rng: np.random.Generator) -> dict[str, int]:
    """Samples per stratum: all when n >= total; else one per stratum first (when n is smaller than the number
    of strata: n strata drawn at random, weighted by size), the rest proportional to what each stratum has
    left (largest remainder), never more than a stratum holds."""
    keys = sorted(sizes)
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    alloc = dict.fromkeys(keys, 0)
    if n < len(keys):
        p = np.array([sizes[k] for k in keys], dtype=float)
        for i in rng.choice(len(keys), size=n, replace=False, p=p / p.sum()):
            alloc[keys[int(i)]] = 1
        return alloc
    for k in keys:
        alloc[k] = 1
    left = n - len(keys)
    while left > 0:
        room = {k: sizes[k] - alloc[k] for k in keys if sizes[k] > alloc[k]}
        cap = sum(room.values())
        shares = {k: left * room[k] / cap for k in room}
        floors = {k: min(room[k], int(shares[k])) for k in room}
        given = sum(floors.values())
        order = sorted(room, key=lambda k: (-(shares[k] - int(shares[k])), k))
        extra = left - given
        for k in order:
            if extra <= 0:
                break
            if floors[k] < room[k]:
                floors[k] += 1
                extra -= 1
        for k, v in floors.items():
            alloc[k] += v
        left = n - sum(alloc.values())
    return alloc


# --- images -------------------------------------------------------------------------------------------------


def preview_config(params: str | None) -> PreviewConfig:
    """The run's RGB preview settings (its `preview_params` JSON) with the false-colour bands B08/B04/B03.

    Unknown keys are ignored; an older `{"stretch": [lo, hi]}` means a fixed lo..hi range; anything that does
    not make a valid config falls back to the defaults.
    """
    try:
        p = json.loads(params) if params else {}
    except ValueError:
        p = {}
    p = p if isinstance(p, dict) else {}
    known = {f.name for f in dataclasses.fields(PreviewConfig)} - {"bands", "size"}
    kwargs = {k: v for k, v in p.items() if k in known}
    s = p.get("stretch")
    if isinstance(s, list | tuple) and len(s) == 2 and all(isinstance(v, int | float) for v in s):
        kwargs.update(stretch="fixed", vmin=float(s[0]), vmax=float(s[1]))
    try:
        return PreviewConfig(**kwargs, bands=FALSE_COLOR_BANDS)
    except (TypeError, ValueError):
        return PreviewConfig(bands=FALSE_COLOR_BANDS)


def false_colour_png(chip_tiff: bytes, preview_params: str | None = None, size: int | None = None) -> bytes:
    """B08/B04/B03 of a chip GeoTIFF as a PNG, rendered by `sentinel.preview` with the run's own stretch
    (fixed range or percentiles, same gamma), resized to `size` (the RGB preview's side) when given. With a
    fixed range, B08 is shown over a range 1/NIR_SCALE times as wide as the visible bands.
    Vegetation shows red, water dark, built-up areas cyan-grey."""
    from rasterio.io import MemoryFile

    with MemoryFile(chip_tiff) as mem, mem.open() as src:
        if src.count != len(BAND_INDEX):
            raise ValueError(f"chip has {src.count} bands, expected {len(BAND_INDEX)}")
        data = src.read()
    cfg = preview_config(preview_params)
    if cfg.stretch == "fixed":
        data = data.astype(np.float32)
        data[BAND_INDEX["B08"]] *= NIR_SCALE
    return png_bytes(render_rgb(data, cfg), size=size)


def _safe_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return str(value)


# --- export -------------------------------------------------------------------------------------------------


def _read_ok_rows(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows with status ok (each with its source shard name), and the list of source shard files."""
    shards = sorted(done_shards(run_dir))
    if not shards:
        raise InputError(
            f"{run_dir}: no finished shards (shards/*.parquet with a done-marker); give a run folder "
            "written by `s2cap caption-region` or `s2cap demo`"
        )
    rows: list[dict[str, Any]] = []
    sources = []
    for i in shards:
        path = shard_path(run_dir, i)
        names = pq.ParquetFile(path).schema_arrow.names
        missing = sorted({"id", "caption", "status", "keep"} - set(names))
        if missing:
            raise InputError(f"{path}: columns {missing} missing; this is not a shard written by s2cap")
        table = pq.read_table(path, columns=[c for c in _COLUMNS if c in names])
        marker = read_marker(run_dir, i) or {}
        sources.append(
            {"file": f"shards/{path.name}", "rows": table.num_rows, "sha256": marker.get("sha256")}
        )
        for r in table.to_pylist():
            if r.get("status") == "ok":
                r["_shard"] = f"shards/{path.name}"
                rows.append(r)
    return rows, sources


def _sample_json(r: dict[str, Any], stratum: dict[str, str], images: dict[str, str | None]) -> dict[str, Any]:
    questions, answers = list(r.get("questions") or []), list(r.get("answers") or [])
    filters = list(r.get("filters") or [])
    return {
        "id": r["id"],
        "location_id": r.get("location_id"),
        "season": r.get("season"),
        "lon": r.get("lon"),
        "lat": r.get("lat"),
        "epsg": r.get("epsg"),
        "datetime": _iso(r.get("datetime")),
        "stac_item_id": r.get("stac_item_id"),
        "images": images,
        "caption": r.get("caption") or "",
        "qa": [{"question": q, "answer": a} for q, a in zip(questions, answers, strict=False)],
        "tags": list(r.get("tags") or []),
        "facts": r.get("facts"),
        "filters": filters,
        "keep": bool(r.get("keep")),
        "flagged_reasons": sorted({f.get("reason") or f.get("name") for f in filters if not f.get("keep")}),
        "model": r.get("model"),
        "prompt_version": r.get("prompt_version"),
        "stratum": stratum,
        "source": r["_shard"],
    }


def export_validation(
    run_dir: Path,
    out: Path,
    n: int = 200,
    strata: str | Sequence[str] = DEFAULT_STRATA,
    seed: int = 0,
) -> Path:
    """Write a stratified sample of `n` ok rows of `run_dir` to the folder `out` (created); returns `out`.

    The same run, n, strata and seed give the same folder. The sample order in samples.json is shuffled with
    the seed too, so raters do not see strata in blocks.
    """
    run_dir, out = Path(run_dir), Path(out)
    names = parse_strata(strata)
    if not isinstance(n, int) or n < 1:
        raise InputError(f"--n {n!r}: give a positive number of samples to export")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a folder; give a run folder (it holds shards/ and manifest.json)")
    if (out / SAMPLES_FILE).exists():
        raise InputError(
            f"{out}: already holds an export (and maybe ratings); choose a new --out or remove it"
        )
    rows, sources = _read_ok_rows(run_dir)
    if not rows:
        raise InputError(f"{run_dir}: no rows with status ok to validate")
    rows.sort(key=lambda r: r["id"])
    rng = np.random.default_rng(seed)
    groups: dict[str, list[dict[str, Any]]] = {}
    strata_of: dict[str, dict[str, str]] = {}
    for r in rows:
        st = stratum_of(r)
        strata_of[r["id"]] = {k: st[k] for k in names}
        groups.setdefault(_key(st, names), []).append(r)
    alloc = allocate({k: len(v) for k, v in groups.items()}, n, rng)
    chosen: list[dict[str, Any]] = []
    for key in sorted(groups):
        members = groups[key]
        picks = sorted(int(i) for i in rng.choice(len(members), size=alloc[key], replace=False))
        chosen.extend(members[i] for i in picks)
    order = rng.permutation(len(chosen))
    chosen = [chosen[int(i)] for i in order]

    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    (out / RATINGS_DIR).mkdir(exist_ok=True)
    samples, problems = [], []
    for r in chosen:
        stem = _safe_name(r["id"])
        images: dict[str, str | None] = {"rgb": None, "false_colour": None}
        preview = r.get("preview") or {}
        side = None
        if preview.get("bytes"):
            with Image.open(io.BytesIO(preview["bytes"])) as im:
                side = im.size[0] if im.size[0] == im.size[1] else None
            (out / IMAGES_DIR / f"{stem}.rgb.png").write_bytes(preview["bytes"])
            images["rgb"] = f"{IMAGES_DIR}/{stem}.rgb.png"
        else:
            problems.append(f"{r['id']}: no RGB preview in the shard")
        if r.get("chip"):
            try:
                png = false_colour_png(r["chip"], r.get("preview_params"), size=side)
            except Exception as exc:  # noqa: BLE001 - one unreadable chip must not stop the export; it is listed
                problems.append(f"{r['id']}: chip not readable for the false-colour preview ({exc})")
            else:
                (out / IMAGES_DIR / f"{stem}.fcc.png").write_bytes(png)
                images["false_colour"] = f"{IMAGES_DIR}/{stem}.fcc.png"
        else:
            problems.append(f"{r['id']}: no chip in the shard (no false-colour preview)")
        samples.append(_sample_json(r, strata_of[r["id"]], images))

    run_manifest: dict[str, Any] = {}
    try:
        run_manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    manifest = {
        "kind": "s2cap-validation-export",
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "run": str(run_dir.resolve()),
        "run_manifest": run_manifest,
        "seed": seed,
        "n_requested": n,
        "n_exported": len(samples),
        "population_ok": len(rows),
        "strata": list(names),
        "counts": {k: {"population": len(groups[k]), "sample": alloc[k]} for k in sorted(groups)},
        "sources": sources,
        "problems": problems,
        "order": [s["id"] for s in samples],
    }
    write_text_atomic(out / SAMPLES_FILE, json.dumps(samples, indent=1, ensure_ascii=False, default=str))
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False, default=str))
    return out
