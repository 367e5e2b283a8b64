"""Run statistics: per-shard marker stats merged once, plus counts computed from the shards themselves.

`run_stats(run_dir)` backs `s2cap stats RUN`; `print_stats` renders it with rich.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from pipeline.errors import InputError
from pipeline.filters import ENGLISH_STOPWORDS, words
from pipeline.shards import SHARD_DIR, done_shards, read_marker, read_shards, write_text_atomic

TOP_WORDS = 25
_SOURCE_COLUMNS = ("captioner", "model", "prompt_version", "overture_release", "stac_collection", "stac_provider")


def merge_stage_stats(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge stats dicts: numbers are summed, dicts merged recursively, lists concatenated; other values are
    kept when the parts agree, else collected into a list."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in (part or {}).items():
            if key not in merged:
                merged[key] = merge_stage_stats([value]) if isinstance(value, dict) else value
                continue
            old = merged[key]
            if isinstance(old, dict) and isinstance(value, dict):
                merged[key] = merge_stage_stats([old, value])
            elif _number(old) and _number(value):
                merged[key] = old + value
            elif isinstance(old, list):
                merged[key] = old + (value if isinstance(value, list) else [value])
            elif old != value:
                merged[key] = [old, value]
    return merged


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _length_stats(lengths: list[int]) -> dict[str, float]:
    if not lengths:
        return {"count": 0}
    a = np.asarray(lengths, dtype=float)
    return {
        "count": int(a.size),
        "mean": round(float(a.mean()), 2),
        "median": round(float(np.median(a)), 2),
        "p5": round(float(np.percentile(a, 5)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "min": int(a.min()),
        "max": int(a.max()),
    }


def run_stats(run_dir: Path) -> dict[str, Any]:
    """Counts by status and filter reason, caption length and vocabulary, merged per-shard stats."""
    run_dir = Path(run_dir)
    if not (run_dir / SHARD_DIR).is_dir():
        raise InputError(f"{run_dir} has no {SHARD_DIR}/ folder: pass a run folder made by `s2cap run`")
    indices = sorted(done_shards(run_dir))
    markers = [read_marker(run_dir, i) or {} for i in indices]
    cols = ["id", "status", "keep", "filters", "caption", "datetime", *_SOURCE_COLUMNS]
    table = read_shards(run_dir, columns=cols)
    rows = table.to_pylist()

    status = Counter(r["status"] for r in rows)
    ok = [r for r in rows if r["status"] == "ok"]
    reasons: Counter[str] = Counter()
    for r in ok:
        for f in r["filters"] or []:
            if not f["keep"]:
                reasons[f["reason"] or f["name"]] += 1
    kept = [r for r in ok if r["keep"]]

    tokens = [words(r["caption"]) for r in ok if r["caption"]]
    kept_tokens = [words(r["caption"]) for r in kept if r["caption"]]
    vocab: Counter[str] = Counter(t for ts in tokens for t in ts)
    content = Counter({w: n for w, n in vocab.items() if w not in ENGLISH_STOPWORDS and not w.isdigit()})
    ids = Counter(r["id"] for r in rows)

    return {
        "run_dir": str(run_dir),
        "shards": len(indices),
        "rows": len(rows),
        "kept": len(kept),
        "dropped": len(ok) - len(kept),
        "duplicate_ids": sum(1 for n in ids.values() if n > 1),
        "status": dict(sorted(status.items())),
        "filters": dict(reasons.most_common()),
        "captions": _length_stats([len(t) for t in tokens]),
        "kept_captions": _length_stats([len(t) for t in kept_tokens]),
        "vocabulary": {"size": len(vocab), "top": [[w, n] for w, n in content.most_common(TOP_WORDS)]},
        "years": sorted({r["datetime"].year for r in rows if r["datetime"] is not None}),
        "sources": {c: sorted({r[c] for r in rows if r[c]}) for c in _SOURCE_COLUMNS},
        "shard_stats": merge_stage_stats(m.get("stats", {}) for m in markers),
    }


def write_stats(run_dir: Path, stats: dict[str, Any]) -> Path:
    """`stats.json` in the run folder, written atomically."""
    path = Path(run_dir) / "stats.json"
    write_text_atomic(path, json.dumps(stats, indent=1, sort_keys=True, default=str))
    return path


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f} %" if total else "-"


def render_stats(stats: dict[str, Any]) -> list[Table]:
    """Rich tables: overview, status, filter reasons, captions, top words, stages."""
    rows, checked = stats["rows"], stats["status"].get("ok", 0)
    overview = Table(title=f"run {stats.get('run_dir', '')}")
    overview.add_column("what")
    overview.add_column("value", justify="right")
    for label, value in [
        ("shards", stats["shards"]),
        ("rows", rows),
        ("kept", f"{stats['kept']} ({_pct(stats['kept'], rows)})"),
        ("dropped by filters", stats["dropped"]),
        ("duplicate ids", stats["duplicate_ids"]),
        ("acquisition years", ", ".join(map(str, stats["years"])) or "-"),
        ("vocabulary (distinct words)", stats["vocabulary"]["size"]),
    ]:
        overview.add_row(label, str(value))

    status = Table(title="status")
    status.add_column("status")
    status.add_column("rows", justify="right")
    status.add_column("share", justify="right")
    for name, n in stats["status"].items():
        status.add_row(name, str(n), _pct(n, rows))

    filters = Table(title="filter reasons (a row may have several)")
    filters.add_column("reason")
    filters.add_column("rows", justify="right")
    filters.add_column("share of ok rows", justify="right")
    for name, n in stats["filters"].items():
        filters.add_row(name, str(n), _pct(n, checked))

    captions = Table(title="caption length (words)")
    for col in ("set", "count", "mean", "median", "p5", "p95", "min", "max"):
        captions.add_column(col, justify="right")
    for label in ("captions", "kept_captions"):
        c = stats[label]
        captions.add_row(label, *(str(c.get(k, "-")) for k in ("count", "mean", "median", "p5", "p95", "min", "max")))

    vocab = Table(title="top content words")
    vocab.add_column("word")
    vocab.add_column("count", justify="right")
    for word, n in stats["vocabulary"]["top"]:
        vocab.add_row(word, str(n))

    tables = [overview, status, filters, captions, vocab]
    stages = (stats.get("shard_stats") or {}).get("stages") or {}
    if stages:
        st = Table(title="stages (summed over shards)")
        for col in ("stage", "seconds", "ok", "failed"):
            st.add_column(col, justify="right" if col != "stage" else "left")
        for name, s in stages.items():
            failed = s.get("failed", {})
            failed_text = ", ".join(f"{k}={v}" for k, v in failed.items()) if isinstance(failed, dict) else str(failed)
            st.add_row(name, f"{float(s.get('seconds', 0.0)):.1f}", str(s.get("ok", "")), failed_text or "-")
        tables.append(st)
    return tables


def print_stats(run_dir: Path, console: Console | None = None) -> dict[str, Any]:
    """Compute and print the stats of a run folder (the `s2cap stats RUN` command); returns them."""
    stats = run_stats(run_dir)
    console = console or Console()
    for table in render_stats(stats):
        console.print(table)
    return stats
