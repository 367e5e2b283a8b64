"""The CLI refuses bad input with one line that names the problem, before touching any service."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bbox", "10,10,5,5"], "west (10.0) must be less than east (5.0)"),
        (["--geojson", "does/not/exist.geojson"], "file not found"),
        (["--bbox", "10,47,10.1,47.1", "--start", "2024-06-01", "--end", "2024-01-01"], "time range is empty"),
        (["--bbox", "10,47,10.1,47.1", "--start", "June"], "not a date"),
        (["--bbox", "10,47,10.1,47.1", "--captioner", "gpt"], "choose one of"),
        ([], "exactly one of --bbox"),
    ],
)
def test_bad_region_input_exits_with_one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    proc = run_cli("caption-region", *args, "--out", str(tmp_path / "run"), check=False, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert not (tmp_path / "run" / "shards").exists()


def test_stats_on_a_non_run_folder(tmp_path: Path) -> None:
    proc = run_cli("stats", str(tmp_path), check=False, timeout=60)
    assert proc.returncode == 2
    assert "no shards/ folder" in proc.stderr
