"""Run statistics on a hand-made run folder, stage-stat merging, the rich rendering and the dataset card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.card import copernicus_line, write_card
from pipeline.errors import InputError
from pipeline.record import FilterResult
from pipeline.shards import write_shard
from pipeline.stats import merge_stage_stats, print_stats, run_stats, write_stats

KEEP = [FilterResult("length", True), FilterResult("refusal", True)]


@pytest.fixture
def run_dir(tmp_path: Path, sample_factory) -> Path:
    """Two shards: 4 ok rows (2 kept), one no_scene, one read_error."""
    common = {"captioner": "vllm", "model": "llava-hf/llama3-llava-next-8b-hf", "prompt_version": "v1"}
    shard0 = [
        sample_factory(
            0, caption="Green fields and a small lake.", keep=True, filters=KEEP,
            datetime="2023-06-10T08:05:00Z", **common,
        ),
        sample_factory(
            1, caption="I cannot.", datetime="2023-06-12T08:05:00Z", filters=[
                FilterResult("length", False, "too_short", "2 words < 8"),
                FilterResult("refusal", False, "refusal", "I cannot"),
            ], **common,
        ),
        sample_factory(2, status="no_scene", error="no item"),
    ]  # fmt: skip
    shard1 = [
        sample_factory(
            3, caption="Snow and ice cover the whole chip near a frozen lake today.", keep=True, filters=KEEP,
            datetime="2020-01-11T16:40:00Z", **common,
        ),
        sample_factory(
            4, caption="A large lake in the dry fields.", datetime="2023-06-10T08:05:00Z", filters=[
                *KEEP, FilterResult("grounding_water", False, "grounding_water", "lake"),
            ], **common,
        ),
        sample_factory(5, status="read_error", error="HTTP 404", datetime="2023-06-10T08:05:00Z"),
    ]  # fmt: skip
    write_shard(tmp_path, 0, shard0, {"stages": {"search": {"seconds": 1.2, "ok": 2, "failed": {"no_scene": 1}}}})
    write_shard(
        tmp_path, 1, shard1, {"stages": {"search": {"seconds": 0.8, "ok": 3}, "read": {"seconds": 2.0, "ok": 2}}}
    )
    return tmp_path


def test_run_stats_numbers(run_dir: Path) -> None:
    s = run_stats(run_dir)
    assert s["shards"] == 2 and s["rows"] == 6
    assert s["kept"] == 2 and s["dropped"] == 2 and s["duplicate_ids"] == 0
    assert s["status"] == {"no_scene": 1, "ok": 4, "read_error": 1}
    assert s["filters"] == {"too_short": 1, "refusal": 1, "grounding_water": 1}
    # caption words of the ok rows: 6, 2, 12, 7
    assert s["captions"] == {"count": 4, "mean": 6.75, "median": 6.5, "p5": 2.6, "p95": 11.25, "min": 2, "max": 12}
    assert s["kept_captions"]["count"] == 2 and s["kept_captions"]["mean"] == 9.0
    assert s["vocabulary"]["size"] == 20
    assert s["vocabulary"]["top"][:2] == [["lake", 3], ["fields", 2]]
    assert s["years"] == [2020, 2023]
    assert s["sources"]["model"] == ["llava-hf/llama3-llava-next-8b-hf"]
    assert s["shard_stats"]["stages"] == {
        "search": {"seconds": pytest.approx(2.0), "ok": 5, "failed": {"no_scene": 1}},
        "read": {"seconds": 2.0, "ok": 2},
    }
    path = write_stats(run_dir, s)
    assert json.loads(path.read_text())["rows"] == 6


def test_run_stats_needs_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no shards/ folder"):
        run_stats(tmp_path)


def test_merge_stage_stats() -> None:
    merged = merge_stage_stats(
        [
            {"stages": {"search": {"seconds": 1.25, "ok": 10, "failed": {"no_scene": 2}}}, "provider": "earth-search"},
            {"stages": {"search": {"seconds": 0.75, "ok": 5, "failed": {"no_scene": 1, "http": 1}}}},
            {"stages": {"caption": {"seconds": 9.0, "ok": 15}}, "provider": "earth-search", "ids": ["a"]},
            {"ids": ["b"]},
        ]
    )
    assert merged == {
        "stages": {
            "search": {"seconds": 2.0, "ok": 15, "failed": {"no_scene": 3, "http": 1}},
            "caption": {"seconds": 9.0, "ok": 15},
        },
        "provider": "earth-search",
        "ids": ["a", "b"],
    }
    assert merge_stage_stats([]) == {}


def test_print_stats(run_dir: Path) -> None:
    console = Console(record=True, width=140)
    stats = print_stats(run_dir, console=console)
    text = console.export_text()
    assert stats["rows"] == 6
    for expected in ("read_error", "too_short", "grounding_water", "lake", "search", "2020, 2023"):
        assert expected in text


def test_card_has_sources_counts_filters_and_licences(run_dir: Path) -> None:
    manifest = {
        "run": "demo-dk",
        "stac": {"stac_url": "https://earth-search.aws.element84.com/v1", "collection": "sentinel-2-l2a"},
        "overture": {"overture_release": "2025-01-22.0"},
        "captioner": "vllm",
        "model": "llava-hf/llama3-llava-next-8b-hf",
        "prompt_version": "v1",
    }
    path = write_card(run_dir, manifest, run_stats(run_dir))
    assert path == run_dir / "card.md"
    text = path.read_text()
    assert "| STAC API | https://earth-search.aws.element84.com/v1 |" in text
    assert "| STAC collection | sentinel-2-l2a |" in text
    assert "| Overture Maps release | 2025-01-22.0 |" in text
    assert "| prompt version | v1 |" in text
    assert "| rows | 6 |" in text and "| kept (`keep == true`) | 2 |" in text
    assert "| grounding_water | 1 | 25.0 % |" in text
    assert "Meta Llama 3 Community License" in text and "Built with Meta Llama 3" in text
    assert "ODbL-1.0" in text and "CDLA-Permissive-2.0" in text
    assert "Contains modified Copernicus Sentinel data 2020-2023." in text
    assert 'load_dataset("parquet"' in text
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


def test_card_for_facts_captions(run_dir: Path) -> None:
    stats = run_stats(run_dir)
    text = write_card(run_dir, {"captioner": "facts", "model": "facts-v1"}, stats).read_text()
    assert "Llama 3" not in text
    assert "derived from Overture data" in text
    assert copernicus_line([2024]) == "Contains modified Copernicus Sentinel data 2024."


def test_length_stats_from_a_histogram_equal_numpy() -> None:
    """run_stats streams: caption lengths are kept as a histogram, and its percentiles equal numpy's on the rows."""
    from collections import Counter

    import numpy as np

    from pipeline.stats import _length_stats

    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 97, 1000):
        lengths = rng.integers(3, 80, size=n)
        got = _length_stats(Counter(int(v) for v in lengths))
        assert got["count"] == n and got["min"] == lengths.min() and got["max"] == lengths.max()
        for key, q in (("median", 50), ("p5", 5), ("p95", 95)):
            assert got[key] == round(float(np.percentile(lengths, q)), 2), (n, key)
        assert got["mean"] == round(float(lengths.mean()), 2)
