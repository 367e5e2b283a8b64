"""Copy a run folder's results to an object store (or any fsspec URL) as shards are written.

The run folder stays the source of truth: shards are written there atomically (rename, then the done-marker),
which object stores cannot do. Each written shard is then uploaded, Parquet first and its done-marker last, so a
reader of the store trusts a shard exactly when its marker is there. `sync` uploads every written shard whose
marker the store lacks or holds in another version, so an upload lost to a crash or an outage is redone on the
next start and at the end of a run; the run's small files (plan, manifest, stats, card) follow at the end.

URLs: `s3://bucket/prefix` (needs `s3fs`: `pip install 's2cap[s3]'`; the endpoint and credentials come from the
usual AWS settings, e.g. `AWS_ENDPOINT_URL` for an S3-compatible store), `gs://...` (gcsfs), `file:///path`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, RunAborted
from pipeline.shards import done_shards, marker_path, shard_path

log = logging.getLogger(__name__)
RUN_FILES = ("plan.json", "manifest.json", "stats.json", "card.md")


class PublishError(RunAborted):
    """The object store could not take the run's files; the local run folder is complete, and a rerun of the same
    command uploads what is missing."""


class Publisher:
    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise InputError(f"--publish {url}: needs fsspec; pip install 's2cap[s3]'") from None

        from fsspec.core import split_protocol

        self.url = url.rstrip("/")
        protocol, self.root = split_protocol(self.url)
        protocol = protocol or "file"
        try:
            self.fs: Any = fsspec.filesystem(protocol)
        except (ImportError, ValueError) as exc:
            raise InputError(f"--publish {url}: no file system for '{protocol}://' ({exc}); for s3:// install "
                             "s3fs (pip install 's2cap[s3]')") from None

    def _remote(self, local: Path, run_dir: Path) -> str:
        return f"{self.root}/{local.relative_to(run_dir).as_posix()}"

    def _put(self, local: Path, run_dir: Path) -> None:
        try:
            self.fs.put_file(str(local), self._remote(local, run_dir))
        except Exception as exc:  # noqa: BLE001 - any backend fault becomes one message naming the store
            raise PublishError(f"cannot upload {local.name} to {self.url}: {type(exc).__name__}: {exc}") from None

    def publish_shard(self, run_dir: Path, index: int) -> None:
        """Upload one written shard: the Parquet file, then its done-marker."""
        self._put(shard_path(run_dir, index), run_dir)
        self._put(marker_path(run_dir, index), run_dir)

    def _published(self, run_dir: Path, index: int) -> bool:
        local = marker_path(run_dir, index)
        try:
            remote: bytes = self.fs.cat_file(self._remote(local, run_dir))
        except FileNotFoundError:
            return False
        except Exception as exc:  # noqa: BLE001
            raise PublishError(f"cannot read {self.url}: {type(exc).__name__}: {exc}") from None
        return remote == local.read_bytes()

    def sync(self, run_dir: Path, run_files: bool = False) -> int:
        """Upload every written shard the store lacks (or holds in another version); with `run_files`, also the
        plan, manifest, stats and card. Returns how many shards were uploaded."""
        uploaded = 0
        for index in sorted(done_shards(run_dir)):
            if not self._published(run_dir, index):
                self.publish_shard(run_dir, index)
                uploaded += 1
        if run_files:
            for name in RUN_FILES:
                if (run_dir / name).exists():
                    self._put(run_dir / name, run_dir)
        return uploaded
