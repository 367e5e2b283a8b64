"""A real STAC API on localhost: `rustac serve` over a collection and an items file (tests, the offline demo).

`rustac serve` keeps everything in memory and implements item search with paging, but not `query=` or CQL2
`filter=`: the client filters on properties itself (see `sentinel.stac`).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pystac

READY_TIMEOUT_S = 30.0


class StacServerError(RuntimeError):
    """`rustac serve` could not be started."""


def rustac_executable() -> str:
    """The `rustac` CLI installed beside this Python (the venv), else the one on PATH."""
    local = Path(sys.executable).with_name("rustac")
    if local.exists():
        return str(local)
    found = shutil.which("rustac")
    if found:
        return found
    raise StacServerError(f"the `rustac` command is neither beside {sys.executable} nor on PATH: "
                          "pip install rustac (it ships the CLI)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def write_items_ndjson(items: Iterable[pystac.Item | dict[str, Any]], path: Path) -> Path:
    """One item per line (the format `rustac serve` loads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for it in items:
            d = it.to_dict(include_self_link=False, transform_hrefs=False) if isinstance(it, pystac.Item) else it
            f.write(json.dumps(d, separators=(",", ":")) + "\n")
    return path


def write_collection_json(path: Path, collection_id: str, bbox: tuple[float, float, float, float],
                          start: date, end: date, description: str = "Sentinel-2 L2A scenes") -> Path:
    """A minimal valid collection document for `rustac serve`."""
    doc = {
        "type": "Collection", "stac_version": "1.0.0", "id": collection_id, "description": description,
        "license": "proprietary", "links": [],
        "extent": {"spatial": {"bbox": [list(bbox)]},
                   "temporal": {"interval": [[f"{start}T00:00:00Z", f"{end}T23:59:59Z"]]}},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/", timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the parent dies, so a killed pipeline leaves no server behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@contextmanager
def serve_stac(collection_json: Path, items_ndjson: Path, port: int | None = None) -> Iterator[str]:
    """Run `rustac serve` on 127.0.0.1 for the duration of the block; yields the API root URL."""
    for p in (collection_json, items_ndjson):
        if not Path(p).is_file():
            raise StacServerError(f"{p}: no such file; write the collection JSON and the items NDJSON first")
    exe = rustac_executable()
    if port is not None and _port_busy(port):
        raise StacServerError(f"port {port} on 127.0.0.1 is already in use: pick another port or leave it None")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [exe, "serve", "--addr", f"127.0.0.1:{port}", "--use-duckdb", "false",
           str(collection_json), str(items_ndjson)]
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=_die_with_parent)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not _ready(url):
                if proc.poll() is not None:
                    log.seek(0)
                    tail = " ".join(log.read().split())[-400:]
                    raise StacServerError(f"`rustac serve` exited with code {proc.returncode} before it was ready "
                                          f"on {url}: {tail}")
                if time.monotonic() > deadline:
                    raise StacServerError(f"`rustac serve` did not answer on {url} within {READY_TIMEOUT_S:g} s")
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
