"""Object-store output: the demo run copied to a real S3-compatible server on localhost (moto's server, spoken to by
s3fs/botocore over HTTP), shard by shard with the marker last; an upload lost before a rerun is redone."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import run_cli

pytest.importorskip("s3fs", reason="object-store output needs the s3 extra: pip install -e '.[s3]'")
MOTO = Path(sys.executable).with_name("moto_server")
BUCKET = "s2cap-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    if not MOTO.exists():
        pytest.skip("moto_server is absent: pip install -e '.[dev]'")
    port = _free_port()
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}
    os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_demo_published_to_s3_and_a_lost_upload_is_redone(s3_endpoint: str, tmp_path: Path) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(BUCKET)
    out = tmp_path / "demo"
    run_cli("demo", "--out", str(out), "--quiet", "--publish", f"s3://{BUCKET}/runs/demo")

    local = sorted(p.name for p in (out / "shards").iterdir())
    remote = sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{BUCKET}/runs/demo/shards"))
    assert remote == local and any(n.endswith(".done.json") for n in remote), "every shard and its marker"
    for name in ("plan.json", "manifest.json", "stats.json", "card.md"):
        assert fs.cat_file(f"{BUCKET}/runs/demo/{name}") == (out / name).read_bytes(), name
    with fs.open(f"{BUCKET}/runs/demo/shards/00000.parquet", "rb") as f:
        assert pq.read_table(f).equals(pq.read_table(out / "shards" / "00000.parquet"))

    # an upload lost (shard 1 and its marker gone from the store): the rerun has no shard to compute, and the
    # coordinator's sync puts the shard back, marker last
    fs.rm(f"{BUCKET}/runs/demo/shards/00001.parquet")
    fs.rm(f"{BUCKET}/runs/demo/shards/_00001.done.json")
    before = (out / "shards" / "00001.parquet").stat().st_mtime_ns
    run_cli("demo", "--out", str(out), "--quiet", "--publish", f"s3://{BUCKET}/runs/demo")
    assert (out / "shards" / "00001.parquet").stat().st_mtime_ns == before, "the shard was not recomputed"
    assert fs.cat_file(f"{BUCKET}/runs/demo/shards/_00001.done.json") == (
        out / "shards" / "_00001.done.json").read_bytes()


def test_unknown_store_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("demo", "--out", str(tmp_path / "d"), "--quiet", "--publish", "nosuchfs://bucket/x", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "nosuchfs://" in proc.stderr and "Traceback" not in proc.stderr
    shutil.rmtree(tmp_path / "d", ignore_errors=True)
