from __future__ import annotations

import datetime as dt

import pytest

from sentinel.seasons import Season, season_windows

D = dt.date


def test_quarters_of_a_year_tile_it_without_gaps() -> None:
    w = season_windows(D(2024, 1, 1), D(2024, 12, 31))
    assert [s.name for s in w] == ["2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]
    assert w[0].end == D(2024, 3, 31) and w[1].start == D(2024, 4, 1) and w[3].end == D(2024, 12, 31)
    for a, b in zip(w, w[1:], strict=False):
        assert b.start - a.end == dt.timedelta(days=1)


def test_windows_are_clipped_to_the_range() -> None:
    w = season_windows(D(2023, 11, 15), D(2024, 2, 10))
    assert [(s.name, s.start, s.end) for s in w] == [
        ("2023-Q4", D(2023, 11, 15), D(2023, 12, 31)),
        ("2024-Q1", D(2024, 1, 1), D(2024, 2, 10)),
    ]


def test_meteorological_djf_spans_the_year_boundary() -> None:
    w = season_windows(D(2023, 12, 1), D(2024, 11, 30), "meteorological")
    assert [s.name for s in w] == ["2024-DJF", "2024-MAM", "2024-JJA", "2024-SON"]
    djf = w[0]
    assert (djf.start, djf.end) == (D(2023, 12, 1), D(2024, 2, 29))  # leap year
    # December of the end year opens the next DJF
    tail = season_windows(D(2024, 12, 5), D(2024, 12, 20), "meteorological")
    assert [(s.name, s.start, s.end) for s in tail] == [("2025-DJF", D(2024, 12, 5), D(2024, 12, 20))]


def test_whole_is_one_window_with_a_stable_name() -> None:
    (w,) = season_windows(D(2024, 3, 1), D(2024, 9, 30), "whole")
    assert (w.name, w.start, w.end) == ("whole-20240301-20240930", D(2024, 3, 1), D(2024, 9, 30))
    assert w.datetime_range == "2024-03-01T00:00:00Z/2024-09-30T23:59:59Z"
    assert w.contains(D(2024, 9, 30)) and not w.contains(D(2024, 10, 1))


def test_single_day_range_gives_one_window() -> None:
    assert [s.name for s in season_windows(D(2024, 5, 5), D(2024, 5, 5))] == ["2024-Q2"]


def test_bad_ranges_and_rules_are_named() -> None:
    with pytest.raises(ValueError, match="2024-05-01..2024-04-01 is empty"):
        season_windows(D(2024, 5, 1), D(2024, 4, 1))
    with pytest.raises(ValueError, match="unknown season rule 'monthly'.*quarters"):
        season_windows(D(2024, 1, 1), D(2024, 2, 1), "monthly")
    with pytest.raises(ValueError, match="before start"):
        Season("x", D(2024, 2, 1), D(2024, 1, 1))
