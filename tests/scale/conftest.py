"""A small tiled synthetic world for the scale tests (the Prefect server fixture is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from synthetic.large import LargeRegion, build_large


@pytest.fixture(scope="session")
def small_tiled_world(tmp_path_factory: pytest.TempPathFactory) -> LargeRegion:
    """4x3 chips in 2x2 tiles of up to 2x2 chips (4 scenes per date), 4 dates: 48 samples."""
    return build_large(
        tmp_path_factory.mktemp("tiled") / "world", n_chips_x=4, n_chips_y=3, seed=3, tile_chips=2, workers=1
    )
