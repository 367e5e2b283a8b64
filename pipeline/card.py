"""The dataset card (`card.md`) written with every run: sources, model, counts, filters, licences, loading.

`manifest` is the run manifest; values are looked up by key anywhere in it (nested dicts included), so the
card does not depend on the manifest's layout. Keys used: stac_url, stac_collection / collection,
stac_provider / provider, overture_release, captioner, model, prompt_version, prompt_hash, region, seasons,
run / name, created. Missing values fall back on what the shards record (`stats["sources"]`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipeline.shards import write_text_atomic

# Overture Maps licences by theme (https://docs.overturemaps.org/attribution/).
OVERTURE_LICENCES: tuple[tuple[str, str, str], ...] = (
    ("base (land, land_use, land_cover, water, infrastructure)", "ODbL-1.0", "land, water and land use facts"),
    ("buildings", "ODbL-1.0", "building count and fraction"),
    ("transportation", "ODbL-1.0", "road lengths"),
    ("places", "CDLA-Permissive-2.0", "place count and place names"),
    ("divisions", "ODbL-1.0", "named areas, when used"),
)


def _find(obj: Any, *keys: str) -> Any:
    """The first non-empty value stored under one of `keys`, searching nested dicts depth-first."""
    if isinstance(obj, dict):
        for key in keys:
            if obj.get(key) not in (None, "", [], {}):
                return obj[key]
        for value in obj.values():
            found = _find(value, *keys)
            if found is not None:
                return found
    return None


def _value(manifest: dict[str, Any], stats: dict[str, Any], keys: tuple[str, ...], source: str) -> str:
    found = _find(manifest, *keys)
    if found is None:
        found = (stats.get("sources") or {}).get(source) or None
    if found is None:
        return "unknown"
    if isinstance(found, list | tuple):
        return ", ".join(str(v) for v in found)
    return str(found)


def _optional_rows(manifest: dict[str, Any], rows: dict[str, tuple[str, ...]]) -> list[str]:
    out = []
    for label, keys in rows.items():
        value = _value(manifest, {}, keys, "")
        if value != "unknown":
            out.append(f"| {label} | {value} |")
    return out


def copernicus_line(years: list[int]) -> str:
    """The attribution the Copernicus Sentinel data terms ask for."""
    if not years:
        return "Contains modified Copernicus Sentinel data (acquisition years: see the `datetime` column)."
    span = str(years[0]) if years[0] == years[-1] else f"{years[0]}-{years[-1]}"
    return f"Contains modified Copernicus Sentinel data {span}."


def _uses_llama3(model: str) -> bool:
    return "llama3" in re.sub(r"[^a-z0-9]", "", model.lower())


def _caption_licence(model: str, captioner: str) -> list[str]:
    if _uses_llama3(model):
        return [
            f"- Captions were generated with `{model}`, a Llama 3 based model: they are subject to the "
            "**Meta Llama 3 Community License** (https://llama.meta.com/llama3/license/), including its "
            "Acceptable Use Policy. Built with Meta Llama 3.",
        ]
    if captioner == "facts":
        return [
            "- Captions were written by the deterministic `facts` captioner from Overture Maps facts; they are "
            "derived from Overture data and carry its licences (below).",
        ]
    return [f"- Captions were generated with `{model}`: check that model's licence for the use of its outputs."]


def render_card(manifest: dict[str, Any], stats: dict[str, Any]) -> str:
    """The Markdown text of the card (with Hugging Face YAML front matter)."""
    name = _value(manifest, stats, ("run", "name", "run_name"), "")
    model = _value(manifest, stats, ("model",), "model")
    captioner = _value(manifest, stats, ("captioner",), "captioner")
    release = _value(manifest, stats, ("overture_release",), "overture_releases")
    rows, kept = stats.get("rows", 0), stats.get("kept", 0)
    checked = (stats.get("status") or {}).get("ok", 0)

    lines = [
        "---",
        "license: other",
        "task_categories:",
        "- image-to-text",
        "tags:",
        "- sentinel-2",
        "- remote-sensing",
        "- multispectral",
        "- image-captioning",
        "configs:",
        "- config_name: default",
        "  data_files: shards/*.parquet",
        "---",
        "",
        f"# s2cap dataset{'' if name == 'unknown' else f': {name}'}",
        "",
        "Multispectral Sentinel-2 L2A chips (12 bands, SSL4EO-S12 layout) with RGB previews, Overture Maps facts "
        "and captions. Rows flagged by a filter stay in the shards: select `keep == true` for the clean set.",
        "",
        "## Sources",
        "",
        "| what | value |",
        "|---|---|",
        f"| STAC API | {_value(manifest, stats, ('stac_url', 'stac_api', 'catalog_url'), '')} |",
        f"| STAC collection | {_value(manifest, stats, ('stac_collection', 'collection'), 'stac_collection')} |",
        f"| STAC provider | {_value(manifest, stats, ('stac_provider', 'provider'), 'stac_provider')} |",
        f"| Overture Maps release | {release} |",
        *_optional_rows(
            manifest, {"region": ("region",), "seasons": ("seasons",), "created": ("created", "created_at")}
        ),
        "",
        "## Captions",
        "",
        "| what | value |",
        "|---|---|",
        f"| captioner | {captioner} |",
        f"| model | {model} |",
        f"| prompt version | {_value(manifest, stats, ('prompt_version',), 'prompt_version')} |",
        f"| prompt hash | {_value(manifest, stats, ('prompt_hash',), '')} |",
        "",
        "## Counts",
        "",
        "| what | rows |",
        "|---|---|",
        f"| rows | {rows} |",
        f"| kept (`keep == true`) | {kept} |",
        f"| shards | {stats.get('shards', 0)} |",
    ]
    lines += [f"| status `{s}` | {n} |" for s, n in (stats.get("status") or {}).items()]
    captions = stats.get("kept_captions") or {}
    if captions.get("count"):
        lines += [
            "",
            f"Kept captions: {captions['count']}, {captions['mean']} words on average "
            f"(median {captions['median']}, 5-95 %: {captions['p5']}-{captions['p95']}); "
            f"vocabulary {(stats.get('vocabulary') or {}).get('size', 0)} distinct words.",
        ]
    lines += [
        "",
        "## Filters",
        "",
        "Each filter's result is stored per row in `filters` (name, keep, reason, detail); a row can fail several.",
        "",
        "| reason | rows flagged | share of ok rows |",
        "|---|---|---|",
    ]
    reasons = stats.get("filters") or {}
    for reason, n in reasons.items():
        share = f"{100 * n / checked:.1f} %" if checked else "-"
        lines.append(f"| {reason} | {n} | {share} |")
    if not reasons:
        lines.append("| (none) | 0 | - |")
    lines += [
        "",
        "## Licences",
        "",
        *_caption_licence(model, captioner),
        f"- Overture Maps data (release {release}), used for the `facts`, `tags` and grounding, is licensed "
        "per theme; attribution: © OpenStreetMap contributors, Overture Maps Foundation.",
        "",
        "| Overture theme | licence | used for |",
        "|---|---|---|",
        *(f"| {theme} | {lic} | {use} |" for theme, lic, use in OVERTURE_LICENCES),
        "",
        "  The base theme's land_cover is derived from ESA WorldCover (CC-BY-4.0).",
        f"- Sentinel-2 imagery (`chip`, `preview`): {copernicus_line(list(stats.get('years') or []))} "
        "Use is free under the Legal notice on the use of Copernicus Sentinel Data and Service Information.",
        "",
        "## How to load",
        "",
        "```python",
        "import glob",
        "",
        "import pyarrow.dataset as ds",
        "",
        'shards = ds.dataset(sorted(glob.glob("shards/*.parquet")), format="parquet")',
        'table = shards.to_table(filter=ds.field("keep") == True)',
        "```",
        "",
        "```python",
        "from datasets import load_dataset  # datasets >= 4",
        "",
        'rows = load_dataset("parquet", data_files="shards/*.parquet", split="train")',
        'rows = rows.filter(lambda r: r["keep"])  # `preview` decodes as a PIL image',
        "```",
        "",
        "The `chip` column holds a 12-band GeoTIFF (B01..B12 without B10, L2A reflectance x 10000, harmonized): "
        "open it with `rasterio.MemoryFile(row['chip'])`. Footprints are WKB polygons in EPSG:4326 with a `bbox` "
        "covering column (GeoParquet 1.1 metadata).",
        "",
    ]
    return "\n".join(lines)


def write_card(run_dir: Path, manifest: dict[str, Any], stats: dict[str, Any]) -> Path:
    """Write `card.md` in the run folder atomically; returns its path."""
    path = Path(run_dir) / "card.md"
    write_text_atomic(path, render_card(manifest, stats))
    return path
