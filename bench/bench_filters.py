"""Filter stage benchmark: every filter on synthetic captions, and the near-duplicate index on disk vs in memory.

The near-duplicate index is one SQLite file per run, shared by every worker, so its memory stays flat at any
dataset size. Its baseline, measured in the same run, is the same index in an in-memory SQLite database (what a
single process without a run folder uses): the ratio is what the shared file costs. Also printed: the whole filter
stage per sample (all filters, grounding included), and the index's size on disk per kept caption.

    python bench/bench_filters.py              # 4,000 captions
    python bench/bench_filters.py --n 20000
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.filters import FilterConfig, NearDuplicateIndex, apply_filters, build_filters  # noqa: E402
from pipeline.record import Sample  # noqa: E402

WORDS = (
    "fields forest river lake village town road motorway farmland meadow orchard vineyard quarry harbour "
    "railway bridge wetland hills valley coast beach dunes glacier snow urban suburb industrial park airport "
    "canal reservoir pasture grassland shrubland cropland greenhouses church castle stadium"
).split()
SHAPES = (
    "A {a} of {b} and {c} crossed by a {d}, with a small {e} in the {f} and {g} along the {h}.",
    "The chip shows {a} beside {b}; a {c} runs from the {f} edge past the {d} towards the {e} and the {g}.",
    "Patches of {a}, {b} and {c} surround a {d}; the {e} lies to the {f}, near {g} and a {h}.",
)
SIDES = ("north", "south", "east", "west", "centre")


def captions(n: int, seed: int = 0, repeat: float = 0.3) -> list[str]:
    """n captions from three shapes with random words; a share `repeat` re-uses an earlier caption with one
    punctuation change (a near duplicate)."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < repeat:
            out.append(rng.choice(out).replace(".", "!"))
            continue
        w = {k: rng.choice(WORDS) for k in "abcdegh"}
        out.append(rng.choice(SHAPES).format(f=rng.choice(SIDES), **w))
    return out


def sample(i: int, caption: str) -> Sample:
    return Sample(id=f"loc{i:06d}_2024-Q2", location_id=f"loc{i:06d}", season="2024-Q2", season_start="2024-04-01",
                  season_end="2024-06-30", epsg=32632, utm_bounds=(0.0, 0.0, 2640.0, 2640.0), lon=11.0, lat=47.0,
                  footprint_wkb=b"", bbox=(11.0, 47.0, 11.03, 47.03), caption=caption, cloud_fraction=0.0,
                  shard=i // 64)


def time_index(index: NearDuplicateIndex, texts: list[str]) -> tuple[float, int]:
    """Seconds for query-then-add of every caption (what the filter does), and how many were kept."""
    kept = 0
    t0 = time.perf_counter()
    for i, text in enumerate(texts):
        if index.query(text) is None:
            index.add(f"s{i}", text, shard=i // 64)
            kept += 1
    return time.perf_counter() - t0, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000, help="captions")
    args = ap.parse_args()
    texts = captions(args.n)

    memory_s, kept = time_index(NearDuplicateIndex(), texts)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "near_duplicates.sqlite"
        index = NearDuplicateIndex(path=path)
        file_s, kept_file = time_index(index, texts)
        index.close()
        disk = sum(p.stat().st_size for p in Path(tmp).iterdir())
    assert kept_file == kept, "the file-backed index decides like the in-memory one"

    samples = [sample(i, t) for i, t in enumerate(texts)]
    t0 = time.perf_counter()
    counts = apply_filters(samples, build_filters(FilterConfig()))
    stage_s = time.perf_counter() - t0

    n = len(texts)
    print(f"{n} captions, {kept} kept by the near-duplicate index ({n - kept} near duplicates)")
    print(f"{'what':<44} {'per caption':>12} {'captions/s':>11}")
    print(f"{'index in memory (baseline)':<44} {1e3 * memory_s / n:>9.2f} ms {n / memory_s:>11.0f}")
    print(f"{'index in the run folder (shared file, WAL)':<44} {1e3 * file_s / n:>9.2f} ms {n / file_s:>11.0f}")
    print(f"{'whole filter stage (every filter, file-less)':<44} {1e3 * stage_s / n:>9.2f} ms {n / stage_s:>11.0f}")
    print(f"shared file vs in memory: {file_s / memory_s:.2f}x the time; on disk {disk / kept / 1024:.2f} KiB per kept "
          f"caption ({disk / 2**20:.1f} MiB), flat in memory")
    print(f"filter stage kept {counts['kept']}, dropped {counts['dropped']} "
          f"(near_duplicate {counts['dropped_near_duplicate']})")


if __name__ == "__main__":
    main()
