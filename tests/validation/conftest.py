"""Fixtures for the validation tests: a small run folder (see vfixtures.py), its export, rating files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from vfixtures import write_ratings, write_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")


@pytest.fixture
def exported(run_dir: Path, tmp_path: Path) -> Path:
    from validation.export import export_validation

    return export_validation(run_dir, tmp_path / "val", n=12, seed=3)


@pytest.fixture
def ratings_writer() -> Callable[..., Path]:
    return write_ratings
