"""Season windows: the time slices in which one chip per location is picked (SSL4EO-S12 takes four a year).

Every window is a closed date range [start, end], clipped to the requested range. Names are stable strings that
become part of sample ids ("2024-Q1", "2024-DJF", "whole-20240101-20241231").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

RULES = ("quarters", "meteorological", "whole")

# (name, first month, number of months); DJF starts in December of the previous year.
_QUARTERS = (("Q1", 1), ("Q2", 4), ("Q3", 7), ("Q4", 10))
_METEO = (("DJF", 12), ("MAM", 3), ("JJA", 6), ("SON", 9))


@dataclass(frozen=True)
class Season:
    name: str
    start: dt.date
    end: dt.date  # inclusive

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"season {self.name!r}: end {self.end} is before start {self.start}")

    @property
    def datetime_range(self) -> str:
        """The window as a STAC `datetime` interval in UTC, end day included."""
        return f"{self.start.isoformat()}T00:00:00Z/{self.end.isoformat()}T23:59:59Z"

    def contains(self, when: dt.date) -> bool:
        return self.start <= when <= self.end


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    idx = year * 12 + (month - 1) + n
    return idx // 12, idx % 12 + 1


def _three_months(year: int, month: int) -> tuple[dt.date, dt.date]:
    """First and last day of the three months starting at (year, month)."""
    ny, nm = _add_months(year, month, 3)
    return dt.date(year, month, 1), dt.date(ny, nm, 1) - dt.timedelta(days=1)


def season_windows(start: dt.date, end: dt.date, rule: str = "quarters") -> list[Season]:
    """The season windows of `rule` that overlap [start, end], each clipped to it, in time order."""
    if end < start:
        raise ValueError(f"time range {start}..{end} is empty: the end date must not be before the start date")
    if rule == "whole":
        return [Season(f"whole-{start:%Y%m%d}-{end:%Y%m%d}", start, end)]
    if rule == "quarters":
        starts = [(f"{y}-{name}", y, m) for y in range(start.year, end.year + 1) for name, m in _QUARTERS]
    elif rule == "meteorological":
        # DJF of year Y runs from December Y-1 to February Y, so December of the end year belongs to DJF Y+1.
        starts = [(f"{y}-{name}", y - 1 if name == "DJF" else y, m)
                  for y in range(start.year, end.year + 2) for name, m in _METEO]
    else:
        raise ValueError(f"unknown season rule {rule!r}: use one of {', '.join(RULES)}")
    out = []
    for name, y, m in starts:
        s, e = _three_months(y, m)
        s, e = max(s, start), min(e, end)
        if s <= e:
            out.append(Season(name, s, e))
    return sorted(out, key=lambda w: w.start)
