"""Shared fixtures of the synthetic-world tests: one demo build per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthetic.demo import DemoRegion, build_demo


@pytest.fixture(scope="session")
def demo_region(tmp_path_factory: pytest.TempPathFactory) -> DemoRegion:
    return build_demo(tmp_path_factory.mktemp("demo") / "world", seed=0)


@pytest.fixture(scope="session")
def demo_root(demo_region: DemoRegion) -> Path:
    return demo_region.root
