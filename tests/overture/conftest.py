"""Fixtures for the overture tests (writers live in ovt_data.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from ovt_data import write_overture

from overture.connect import connect

SHARED_OVERTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "overture"


@pytest.fixture(scope="session")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = connect(threads=2)
    yield c
    c.close()


@pytest.fixture
def overture_writer(tmp_path: Path) -> Callable[..., Path]:
    root = tmp_path / "overture"
    root.mkdir()

    def write(theme: str, type_: str, features: list[dict[str, Any]], **kw: Any) -> Path:
        return write_overture(root, theme, type_, features, **kw)

    write.root = root  # type: ignore[attr-defined]
    return write
