"""Processing-baseline harmonization: one reflectance scale for chips from before and after baseline 04.00.

From baseline 04.00 (acquisitions from 2022-01-25) ESA adds BOA_ADD_OFFSET = 1000 to every valid L2A digital
number, so reflectance = (DN - 1000) / 10000 instead of DN / 10000. Who removed it already differs:

- Planetary Computer serves ESA's pixels unchanged: subtract 1000 when the baseline is >= 04.00.
- Earth Search `sentinel-2-l2a` items with `earthsearch:boa_offset_applied: true` were rewritten without it:
  subtract nothing (subtracting again would darken the chip by 0.1 reflectance).
- Earth Search `sentinel-2-c1-l2a` (Collection 1, reprocessed, every date at baseline >= 05.00) is raw: subtract.

`harmonize_offset` decides once per scene and `apply_offset` is the only place pixels change, so a chip is
harmonized exactly once; the offset used is recorded with the chip.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from sentinel.bands import BOA_ADD_OFFSET, HARMONIZE_FROM_BASELINE

if TYPE_CHECKING:
    from sentinel.stac import SceneRef

# The first acquisition day processed with baseline 04.00 (used only when an item does not state its baseline).
BASELINE_0400_FROM = date(2022, 1, 25)

_BASELINE = re.compile(r"^\s*N?(\d{1,2})\.?(\d{2})\s*$")


def parse_baseline(text: str) -> tuple[int, int]:
    """'05.11' (or 'N0511', '5.11') -> (5, 11)."""
    m = _BASELINE.match(str(text))
    if not m:
        raise ValueError(f"processing baseline {text!r}: expected the form '05.11' (major.minor, two-digit minor)")
    return int(m.group(1)), int(m.group(2))


def harmonize_offset(scene: SceneRef) -> int:
    """The DN offset to subtract from this scene's pixels: 1000 or 0."""
    if scene.boa_offset_applied:
        return 0
    if scene.processing_baseline:
        baseline = parse_baseline(scene.processing_baseline)
    else:
        # No baseline in the item: ESA reprocessed nothing before 2022-01-25 with 04.00+ except in
        # Collection 1, whose items always state their baseline, so the acquisition date decides.
        acquired = date.fromisoformat(scene.datetime[:10])
        baseline = HARMONIZE_FROM_BASELINE if acquired >= BASELINE_0400_FROM else (0, 0)
    return BOA_ADD_OFFSET if baseline >= HARMONIZE_FROM_BASELINE else 0


def apply_offset(data: np.ndarray, offset: int) -> np.ndarray:
    """Subtract `offset` from the valid pixels of `data` as uint16; nodata (0) stays 0.

    A valid pixel darker than the offset (negative reflectance after the shift, seen over dark water) becomes 1,
    not 0: clipping it to 0 would turn it into nodata.
    """
    if offset < 0:
        raise ValueError(f"offset {offset}: must be >= 0 (the DN added by the processing baseline)")
    if offset == 0:
        return data.astype(np.uint16, copy=False)
    wide = data.astype(np.int32)
    out = np.where(wide == 0, 0, np.maximum(wide - offset, 1))
    return out.astype(np.uint16)
