"""A pipeline killed with SIGKILL must not leave its `rustac serve` behind (it would hold a port forever)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from synthetic.demo import build_demo

CHILD = """
import sys, time
from pathlib import Path
from sentinel.stac_server import serve_stac
with serve_stac(Path(sys.argv[1]), Path(sys.argv[2])) as url:
    print(url, flush=True)
    time.sleep(120)
"""


def _server_alive(port: str) -> bool:
    out = subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True).stdout
    return bool(out.strip())


def test_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    world = build_demo(tmp_path / "world", n_chips_x=1, n_chips_y=1)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(world.collection_json), str(world.items_ndjson)],
                            stdout=subprocess.PIPE, text=True, cwd=repo)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip().rsplit(":", 1)[1]
    assert _server_alive(port)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while _server_alive(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _server_alive(port), "rustac serve outlived its killed parent"
