"""A DuckDB connection with the spatial extension loaded fully offline from the pinned wheel.

`duckdb-extension-spatial` ships `spatial.duckdb_extension` for exactly one DuckDB version; it is loaded by path
and extension auto-install/auto-load are switched off, so nothing reaches the network. httpfs (for the S3
release) is loaded only when an s3:// source is used.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from overture.source import S3_REGION, OvertureSource, OvertureSourceError


def spatial_extension_path() -> Path:
    """The spatial extension binary inside the `duckdb-extension-spatial` wheel, for this DuckDB version."""
    try:
        import duckdb_extension_spatial
    except ImportError as e:
        raise RuntimeError(
            f"duckdb-extension-spatial is not installed: pip install 'duckdb-extension-spatial=={duckdb.__version__}'"
        ) from e
    path = Path(duckdb_extension_spatial.__file__).parent / "extensions" / f"v{duckdb.__version__}" / (
        "spatial.duckdb_extension"
    )
    if not path.is_file():
        raise RuntimeError(
            f"no spatial extension for duckdb {duckdb.__version__} in {path.parent.parent}: install the matching "
            f"wheel, pip install 'duckdb-extension-spatial=={duckdb.__version__}'"
        )
    return path


MEMORY_LIMIT = "2GB"


def connect(threads: int | None = None, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with spatial loaded offline (no extension is ever downloaded)."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads}: give a positive number of DuckDB threads (or None for all cores)")
    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        # DuckDB's default (80 % of RAM) lets its buffer pool and file cache grow with everything a long-lived
        # worker has read; a shard's query needs far less, so the cap keeps memory per shard, not per dataset
        "memory_limit": MEMORY_LIMIT,
    }
    if threads is not None:
        config["threads"] = str(threads)
    con = duckdb.connect(database, config=config)
    con.execute(f"LOAD '{spatial_extension_path()}'")
    return con


def ensure_source(con: duckdb.DuckDBPyConnection, source: OvertureSource, allow_install: bool = True) -> None:
    """Make `source` readable on `con`: a no-op for a local mirror; httpfs + anonymous S3 for the release.

    `allow_install=False` never tries `INSTALL httpfs` (which needs the network)."""
    if not source.is_remote:
        return
    try:
        con.execute("LOAD httpfs")
    except duckdb.Error:
        loaded = False
        if allow_install and not os.environ.get("S2CAP_OFFLINE"):
            try:
                con.execute("INSTALL httpfs")
                con.execute("LOAD httpfs")
                loaded = True
            except duckdb.Error:
                loaded = False
        if not loaded:
            raise OvertureSourceError(
                f"the S3 Overture source {source.root} needs network access and DuckDB's httpfs extension, which "
                f"could not be loaded or installed: use a local extract instead (--overture-path DIR, written by "
                f"overture.extract.extract_region on a machine with network)"
            ) from None
    con.execute(f"SET s3_region='{S3_REGION}'")
    # Overture's bucket is public: an anonymous (key-less) secret avoids picking up unrelated credentials.
    con.execute(f"CREATE OR REPLACE SECRET overture_anon (TYPE s3, PROVIDER config, REGION '{S3_REGION}')")
