"""One real ephemeral Prefect server for every test that needs one (flows, scale): starting one costs 10-20 s."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API URL of a session-wide Prefect test server, with PREFECT_HOME in a temp dir and analytics off.
    The environment variables reach subprocesses and Dask workers too."""
    home = tmp_path_factory.mktemp("prefect-home")
    env = {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    try:
        with temporary_settings(updates={PREFECT_HOME: Path(home), PREFECT_SERVER_ANALYTICS_ENABLED: False}):
            with prefect_test_harness(server_startup_timeout=60):
                yield str(PREFECT_API_URL.value())
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
