"""Scene-classification (SCL) summaries of a chip: the pixels' own evidence of water, snow, vegetation, cloud."""

from __future__ import annotations

import numpy as np

from sentinel.bands import SCL_CLASSES, SCL_CLOUD, SCL_NODATA


def scl_fractions(scl: np.ndarray) -> dict[str, float]:
    """Fraction of the chip's pixels per SCL class name, plus `cloud` (cloud + shadow + cirrus) and `nodata`."""
    total = scl.size
    if total == 0:
        return {}
    counts = np.bincount(scl.ravel().astype(np.int64), minlength=12)
    out = {name: float(counts[code]) / total for code, name in SCL_CLASSES.items() if counts[code]}
    out["cloud"] = float(sum(counts[c] for c in SCL_CLOUD)) / total
    out["nodata"] = float(sum(counts[c] for c in SCL_NODATA)) / total
    return out
