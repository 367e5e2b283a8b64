"""The human summary printed at the end of a run: what was found, captioned, kept, filtered and failed, and
where the time went."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rich.table import Table

from pipeline import shards as shard_io


def summarize(run_dir: Path, stage_seconds: dict[str, float]) -> dict[str, Any]:
    table = shard_io.read_shards(run_dir, columns=["status", "keep", "filters", "caption"])
    status = Counter(table.column("status").to_pylist())
    dropped: Counter[str] = Counter()
    for results in table.column("filters").to_pylist():
        for r in results or []:
            if not r["keep"]:
                dropped[r["reason"] or r["name"]] += 1
    captions = [c for c in table.column("caption").to_pylist() if c]
    return {
        "rows": table.num_rows,
        "status": dict(status),
        "captioned": len(captions),
        "kept": sum(1 for k in table.column("keep").to_pylist() if k),
        "dropped": dict(dropped),
        "stage_seconds": stage_seconds,
    }


def summary_table(summary: dict[str, Any], planned: int, wall_s: float) -> Table:
    t = Table(title="s2cap run summary", show_lines=False)
    t.add_column("", style="bold")
    t.add_column("count / seconds", justify="right")
    t.add_row("samples planned", str(planned))
    t.add_row("rows written", str(summary["rows"]))
    status = summary["status"]
    t.add_row("chips read (status ok)", str(status.get("ok", 0)))
    t.add_row("captioned", str(summary["captioned"]))
    t.add_row("kept after filters", str(summary["kept"]))
    for reason, n in sorted(summary["dropped"].items()):
        t.add_row(f"  flagged: {reason}", str(n))
    for st, n in sorted(status.items()):
        if st != "ok":
            t.add_row(f"  failed: {st}", str(n))
    for stage, sec in summary["stage_seconds"].items():
        t.add_row(f"time in {stage} (s)", f"{sec:.2f}")
    t.add_row("wall time (s)", f"{wall_s:.2f}")
    return t
