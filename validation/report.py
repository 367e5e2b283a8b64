"""The validation report of a rated folder: distributions, agreement, filters against experts, charts,
Markdown.

Writes into OUT (default FOLDER/report): `report.md`, `report.json` (every number in the report),
`completeness.png`, `hallucinations.png`, `filters.png`.

Only rated samples count (a completeness value given); a rated sample's hallucination count is its number of
marked spans, bucketed 0, 1, 2, 3+. A sample "has hallucinations" for the filter comparison when at least
half of the raters who rated it marked one or more spans.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.shards import write_text_atomic
from validation.agreement import cohen_weighted_kappa, krippendorff_alpha_ordinal
from validation.ratings import (
    HALLUCINATION_BUCKETS,
    SCALE,
    RaterFile,
    captions_of,
    hallucination_bucket,
    load_all_raters,
    load_samples,
)

REPORT_DIR = "report"


def _distribution(ratings: list[tuple[str, int]]) -> dict[str, Any]:
    """(completeness label, hallucination count) pairs -> counts, shares and summary numbers."""
    n = len(ratings)
    comp = Counter(c for c, _ in ratings)
    hall = Counter(hallucination_bucket(h) for _, h in ratings)
    return {
        "n": n,
        "completeness": {label: comp.get(label, 0) for label in SCALE},
        "hallucinations": {b: hall.get(b, 0) for b in HALLUCINATION_BUCKETS},
        "mean_score": _mean([SCALE.index(c) + 1 for c, _ in ratings]),  # 1 = Excellent ... 6 = Terrible
        "mean_hallucinations": _mean([h for _, h in ratings]),
        "hallucination_rate": _mean([1.0 if h > 0 else 0.0 for _, h in ratings]),
    }


def _mean(values: list[float] | list[int]) -> float | None:
    return float(np.mean(values)) if values else None


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _agreement(raters: list[RaterFile], sample_ids: list[str]) -> dict[str, Any]:
    pairs = []
    for a, b in itertools.combinations(raters, 2):
        common = [
            s
            for s in sample_ids
            if a.ratings.get(s, None) and a.ratings[s].rated and b.ratings.get(s, None) and b.ratings[s].rated
        ]
        ca = [a.ratings[s].score or 0 for s in common]  # rated: never None here
        cb = [b.ratings[s].score or 0 for s in common]
        ha = [min(a.ratings[s].hallucinations, 3) for s in common]
        hb = [min(b.ratings[s].hallucinations, 3) for s in common]
        pairs.append(
            {
                "raters": [a.rater, b.rater],
                "n": len(common),
                "completeness_kappa_quadratic": _nan_to_none(
                    cohen_weighted_kappa(ca, cb, len(SCALE), "quadratic")
                ),
                "completeness_kappa_linear": _nan_to_none(cohen_weighted_kappa(ca, cb, len(SCALE), "linear")),
                "completeness_exact_agreement": _mean(
                    [1.0 if x == y else 0.0 for x, y in zip(ca, cb, strict=True)]
                ),
                "hallucination_kappa_quadratic": _nan_to_none(
                    cohen_weighted_kappa(ha, hb, len(HALLUCINATION_BUCKETS), "quadratic")
                ),
            }
        )
    comp = np.full((len(raters), len(sample_ids)), np.nan)
    hall = np.full((len(raters), len(sample_ids)), np.nan)
    for i, rf in enumerate(raters):
        for j, s in enumerate(sample_ids):
            r = rf.ratings.get(s)
            if r is not None and r.rated:
                comp[i, j] = r.score
                hall[i, j] = min(r.hallucinations, 3)
    pairable = int((np.sum(~np.isnan(comp), axis=0) >= 2).sum())
    return {
        "pairs": pairs,
        "units_rated_by_two_or_more": pairable,
        "completeness_alpha_ordinal": _nan_to_none(krippendorff_alpha_ordinal(comp, len(SCALE))),
        "hallucination_alpha_ordinal": _nan_to_none(
            krippendorff_alpha_ordinal(hall, len(HALLUCINATION_BUCKETS))
        ),
    }


def _filters(raters: list[RaterFile], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Hallucination rate of the ratings by filter outcome and reason, and how the filters' flags line up with
    the samples the experts found hallucinated."""
    groups: dict[str, list[int]] = {}
    table = {"flagged_hallucinated": 0, "flagged_clean": 0, "kept_hallucinated": 0, "kept_clean": 0}
    for s in samples:
        counts = [
            rf.ratings[s["id"]].hallucinations
            for rf in raters
            if s["id"] in rf.ratings and rf.ratings[s["id"]].rated
        ]
        if not counts:
            continue
        reasons = sorted(
            {
                f.get("reason") or f.get("name") or "unknown"
                for f in s.get("filters") or []
                if not f.get("keep")
            }
        )
        is_flagged = not s.get("keep", True) or bool(reasons)
        groups.setdefault("flagged" if is_flagged else "kept", []).extend(counts)
        for reason in reasons:
            groups.setdefault(f"reason:{reason}", []).extend(counts)
        hallucinated = sum(1 for c in counts if c > 0) >= len(counts) / 2
        table[f"{'flagged' if is_flagged else 'kept'}_{'hallucinated' if hallucinated else 'clean'}"] += 1
    by_group = {
        g: {
            "ratings": len(v),
            "hallucination_rate": _mean([1.0 if c > 0 else 0.0 for c in v]),
            "mean_hallucinations": _mean(v),
        }
        for g, v in sorted(groups.items(), key=lambda kv: (kv[0] != "kept", kv[0] != "flagged", kv[0]))
    }
    hall = table["flagged_hallucinated"] + table["kept_hallucinated"]
    flagged = table["flagged_hallucinated"] + table["flagged_clean"]
    return {
        "by_outcome": by_group,
        "samples": table,
        "recall": table["flagged_hallucinated"] / hall
        if hall
        else None,  # hallucinated samples the filters flag
        "precision": table["flagged_hallucinated"] / flagged
        if flagged
        else None,  # flagged ones experts confirm
    }


def compute_report(folder: Path) -> dict[str, Any]:
    """Every number of the report, from `samples.json` and `ratings/*.json` of a validation folder."""
    folder = Path(folder)
    samples = load_samples(folder)
    raters = load_all_raters(folder, captions_of(samples))
    if not any(r.rated for rf in raters for r in rf.ratings.values()):
        raise InputError(
            f"{folder}: no ratings yet (ratings/*.json with a completeness value); "
            "rate first with `s2cap rate FOLDER --rater NAME`"
        )
    ids = [s["id"] for s in samples]
    per_rater = {}
    everything: list[tuple[str, int]] = []
    for rf in raters:
        pairs = [(r.completeness, r.hallucinations) for sid in ids if (r := rf.ratings.get(sid)) and r.rated]
        per_rater[rf.rater] = _distribution(pairs)  # type: ignore[arg-type]
        everything.extend(pairs)  # type: ignore[arg-type]
    manifest: dict[str, Any] = {}
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    return {
        "folder": str(folder.resolve()),
        "run": manifest.get("run"),
        "seed": manifest.get("seed"),
        "strata": manifest.get("strata"),
        "samples": len(samples),
        "raters": [rf.rater for rf in raters],
        "per_rater": per_rater,
        "overall": _distribution(everything),
        "agreement": _agreement(raters, ids),
        "filters": _filters(raters, samples),
    }


# --- charts -------------------------------------------------------------------------------------------------


def _bars(path: Path, title: str, categories: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(categories) + 2), 3.8), dpi=110)
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(categories))
    for i, (name, values) in enumerate(series.items()):
        hatch = "//" if name == "overall" else None
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            values,
            width,
            label=name,
            hatch=hatch,
            edgecolor="black",
            linewidth=0.4,
        )
    ax.set_xticks(x, categories, rotation=15 if len(categories) > 4 else 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if len(series) > 1:
        ax.legend(fontsize=8, frameon=False, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _share(counts: dict[str, int], n: int) -> list[float]:
    return [100.0 * v / n if n else 0.0 for v in counts.values()]


def _charts(data: dict[str, Any], out: Path) -> None:
    rows = (
        {**data["per_rater"], "overall": data["overall"]} if len(data["per_rater"]) > 1 else data["per_rater"]
    )
    _bars(
        out / "completeness.png",
        "Caption completeness",
        list(SCALE),
        {k: _share(v["completeness"], v["n"]) for k, v in rows.items()},
        "% of rated captions",
    )
    _bars(
        out / "hallucinations.png",
        "Hallucinations per caption",
        list(HALLUCINATION_BUCKETS),
        {k: _share(v["hallucinations"], v["n"]) for k, v in rows.items()},
        "% of rated captions",
    )
    groups = data["filters"]["by_outcome"]
    if groups:
        _bars(
            out / "filters.png",
            "Hallucination rate by filter outcome",
            [f"{g.removeprefix('reason:')}\n(n={v['ratings']})" for g, v in groups.items()],
            {"with >= 1 hallucination": [100.0 * (v["hallucination_rate"] or 0.0) for v in groups.values()]},
            "% of ratings",
        )


# --- Markdown -----------------------------------------------------------------------------------------------


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _dist_table(rows: dict[str, dict[str, Any]], key: str, cats: tuple[str, ...]) -> list[str]:
    lines = ["| rater | n | " + " | ".join(cats) + " |", "|---|---:|" + "---:|" * len(cats)]
    for name, d in rows.items():
        cells = [f"{d[key][c]} ({100 * d[key][c] / d['n']:.0f} %)" if d["n"] else "0" for c in cats]
        lines.append(f"| {name} | {d['n']} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(data: dict[str, Any]) -> str:
    rows = {**data["per_rater"], "**overall**": data["overall"]}
    ag, fl = data["agreement"], data["filters"]
    md = [
        "# Expert validation report",
        "",
        f"- folder: `{data['folder']}`",
        f"- run: `{data['run']}`; seed {data['seed']}; strata {', '.join(data['strata'] or []) or 'none'}",
        f"- samples exported: {data['samples']}; raters: {', '.join(data['raters'])}; "
        f"ratings: {data['overall']['n']}",
        "",
        "## Completeness",
        "",
        *_dist_table(rows, "completeness", SCALE),
        "",
        "Mean score (1 = Excellent ... 6 = Terrible): "
        + "; ".join(f"{k.strip('*')} {_f(v['mean_score'], 2)}" for k, v in rows.items()),
        "",
        "![completeness](completeness.png)",
        "",
        "## Hallucinations per caption",
        "",
        *_dist_table(rows, "hallucinations", HALLUCINATION_BUCKETS),
        "",
        "Captions with at least one hallucination: "
        + "; ".join(f"{k.strip('*')} {_pct(v['hallucination_rate'])}" for k, v in rows.items()),
        "",
        "![hallucinations](hallucinations.png)",
        "",
        "## Agreement between raters",
        "",
    ]
    if ag["pairs"]:
        md += [
            "| raters | common samples | weighted kappa (quadratic) | weighted kappa (linear) "
            "| exact agreement "
            "| hallucination kappa (quadratic) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for p in ag["pairs"]:
            md.append(
                f"| {' / '.join(p['raters'])} | {p['n']} | {_f(p['completeness_kappa_quadratic'])} | "
                f"{_f(p['completeness_kappa_linear'])} | {_pct(p['completeness_exact_agreement'])} | "
                f"{_f(p['hallucination_kappa_quadratic'])} |"
            )
        md += [
            "",
            f"Krippendorff's alpha (ordinal, all raters, {ag['units_rated_by_two_or_more']} samples rated "
            "by two "
            f"or more): completeness {_f(ag['completeness_alpha_ordinal'])}, hallucination count "
            f"{_f(ag['hallucination_alpha_ordinal'])}.",
        ]
    else:
        md.append("One rater only: agreement needs two or more raters on the same samples.")
    md += [
        "",
        "## Do the filters catch what the experts mark?",
        "",
        "| filter outcome | ratings | with >= 1 hallucination | mean hallucinations |",
        "|---|---:|---:|---:|",
    ]
    for g, v in fl["by_outcome"].items():
        label = f"flagged: {g.removeprefix('reason:')}" if g.startswith("reason:") else g
        md.append(
            f"| {label} | {v['ratings']} | {_pct(v['hallucination_rate'])} | "
            f"{_f(v['mean_hallucinations'], 2)} |"
        )
    t = fl["samples"]
    md += [
        "",
        "Samples (hallucinated = at least half of its raters marked a hallucination):",
        "",
        "| | hallucinated | clean |",
        "|---|---:|---:|",
        f"| flagged by a filter | {t['flagged_hallucinated']} | {t['flagged_clean']} |",
        f"| kept | {t['kept_hallucinated']} | {t['kept_clean']} |",
        "",
        f"Filter recall (hallucinated samples that are flagged): {_pct(fl['recall'])}; "
        f"precision (flagged samples the experts found hallucinated): {_pct(fl['precision'])}.",
        "",
        "![filters](filters.png)" if fl["by_outcome"] else "",
        "",
    ]
    return "\n".join(md)


def validation_report(folder: Path, out: Path | None = None) -> Path:
    """Write report.md, report.json and the PNG charts of a rated folder into `out` (default FOLDER/report);
    returns the path of report.md."""
    folder = Path(folder)
    data = compute_report(folder)
    out = Path(out) if out is not None else folder / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    _charts(data, out)
    write_text_atomic(out / "report.json", json.dumps(data, indent=1, ensure_ascii=False))
    path = out / "report.md"
    write_text_atomic(path, render_markdown(data))
    return path
