"""The human summary printed at the end of a run: what was found, captioned, kept, filtered and failed, and
where the time went."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def summarize(stats: dict[str, Any], stage_seconds: dict[str, float]) -> dict[str, Any]:
    """The summary's numbers from `run_stats` (one streaming pass over the shards serves both)."""
    return {
        "rows": stats["rows"],
        "status": dict(stats["status"]),
        "captioned": stats["captions"]["count"],
        "kept": stats["kept"],
        "dropped": dict(stats["filters"]),
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
