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
from pipeline.filters import ENGLISH_STOPWORDS, hash64, words
from pipeline.shards import SHARD_DIR, iter_shard_tables, read_marker, write_text_atomic

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


def _quantile(hist: list[tuple[int, int]], n: int, q: float) -> float:
    """numpy's default (linear) percentile of the n values that `hist` (sorted (value, count)) holds."""
    pos = q * (n - 1)
    lo = int(pos)

    def nth(k: int) -> int:
        seen = 0
        for value, count in hist:
            seen += count
            if k < seen:
                return value
        return hist[-1][0]

    a = nth(lo)
    return a + (pos - lo) * (nth(lo + 1) - a) if lo + 1 < n else float(a)


def _length_stats(lengths: Counter[int]) -> dict[str, float]:
    """Count, mean, median, p5, p95, min and max from a histogram of lengths (flat memory at any scale)."""
    n = sum(lengths.values())
    if not n:
        return {"count": 0}
    hist = sorted(lengths.items())
    return {
        "count": n,
        "mean": round(sum(v * c for v, c in hist) / n, 2),
        "median": round(_quantile(hist, n, 0.5), 2),
        "p5": round(_quantile(hist, n, 0.05), 2),
        "p95": round(_quantile(hist, n, 0.95), 2),
        "min": hist[0][0],
        "max": hist[-1][0],
    }


def _id_hashes(ids: list[str]) -> np.ndarray:
    return np.array([hash64(i.encode()) for i in ids], dtype=np.uint64)


def run_stats(run_dir: Path) -> dict[str, Any]:
    """Counts by status and filter reason, caption length and vocabulary, merged per-shard stats.

    Streams the shards one at a time: what it keeps grows with the vocabulary and the distinct caption lengths,
    plus 8 bytes per row (a hash of each id, to count duplicate ids), never with the rows themselves."""
    run_dir = Path(run_dir)
    if not (run_dir / SHARD_DIR).is_dir():
        raise InputError(f"{run_dir} has no {SHARD_DIR}/ folder: pass a run folder made by `s2cap run`")
    cols = ["id", "status", "keep", "filters", "caption", "datetime", *_SOURCE_COLUMNS]
    status: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    lengths: Counter[int] = Counter()
    kept_lengths: Counter[int] = Counter()
    vocab: Counter[str] = Counter()
    years: set[int] = set()
    sources: dict[str, set[str]] = {c: set() for c in _SOURCE_COLUMNS}
    id_hashes: list[np.ndarray] = []
    shard_stats: dict[str, Any] = {}
    n_rows = n_ok = n_kept = n_shards = 0
    for index, table in iter_shard_tables(run_dir, cols):
        n_shards += 1
        shard_stats = merge_stage_stats([shard_stats, (read_marker(run_dir, index) or {}).get("stats", {})])
        rows = table.to_pylist()
        n_rows += len(rows)
        id_hashes.append(_id_hashes([r["id"] for r in rows]))
        for r in rows:
            status[r["status"]] += 1
            if r["datetime"] is not None:
                years.add(r["datetime"].year)
            for c in _SOURCE_COLUMNS:
                if r[c]:
                    sources[c].add(r[c])
            if r["status"] != "ok":
                continue
            n_ok += 1
            for f in r["filters"] or []:
                if not f["keep"]:
                    reasons[f["reason"] or f["name"]] += 1
            n_kept += bool(r["keep"])
            if r["caption"]:
                tokens = words(r["caption"])
                vocab.update(tokens)
                lengths[len(tokens)] += 1
                if r["keep"]:
                    kept_lengths[len(tokens)] += 1
    hashes = np.concatenate(id_hashes) if id_hashes else np.zeros(0, dtype=np.uint64)
    _, counts = np.unique(hashes, return_counts=True)
    content = Counter({w: n for w, n in vocab.items() if w not in ENGLISH_STOPWORDS and not w.isdigit()})
    return {
        "run_dir": str(run_dir),
        "shards": n_shards,
        "rows": n_rows,
        "kept": n_kept,
        "dropped": n_ok - n_kept,
        "duplicate_ids": int((counts > 1).sum()),
        "status": dict(sorted(status.items())),
        "filters": dict(reasons.most_common()),
        "captions": _length_stats(lengths),
        "kept_captions": _length_stats(kept_lengths),
        "vocabulary": {"size": len(vocab), "top": [[w, n] for w, n in content.most_common(TOP_WORDS)]},
        "years": sorted(years),
        "sources": {c: sorted(v) for c, v in sources.items()},
        "shard_stats": shard_stats,
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
