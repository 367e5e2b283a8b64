"""caption_region on a real ephemeral Prefect server: the demo region, a transient STAC fault healed by task
retries, and a killed flow run resumed without duplicates."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import pytest
from flowdemo import FACTS, SOURCES, assert_complete_run, demo_region, latest_artifact, written_rows

REPO = Path(__file__).resolve().parents[2]


def _task_runs(flow_run_id: UUID, expect: int) -> list[Any]:
    """The flow run's task runs as the server recorded them (task states arrive as events: wait for them)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    deadline = time.monotonic() + 15
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200,
                sort=TaskRunSort.EXPECTED_START_TIME_ASC)
        if (len(runs) >= expect and all(r.state and r.state.is_final() for r in runs)) \
                or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)


def test_demo_region_through_caption_region(prefect_server: str, tmp_path: Path) -> None:
    from flows.caption import caption_region
    from flows.settings import Captioning, Execution, RegionSpec, Sources, run_config
    from pipeline.execute import execute

    with demo_region(tmp_path, "demo", seed=0, nx=3, ny=2) as region:
        params = dict(region=region, output=str(tmp_path / "runs"), sources=SOURCES, captioning=FACTS,
                      execution={"shard_size": 8, "shards_in_flight": 2})
        state = caption_region(**params, return_state=True)
        assert state.is_completed(), state.message
        summary = state.result()
        # the same stage functions called directly (the CLI's path), on the same config in another folder
        cfg = run_config(RegionSpec.model_validate(region), region["start"], region["end"],
                         str(tmp_path / "direct"), Sources(**SOURCES), Captioning(**FACTS),
                         Execution(shard_size=8))
        execute(cfg, progress=False)
    run_dir = tmp_path / "runs" / "demo"
    rows = assert_complete_run(run_dir)
    direct = written_rows(tmp_path / "direct" / "demo")
    # `keep` may differ: near-duplicate detection is per worker in a flow (see docs/flows.md)
    key = lambda r: (r["id"], r["status"], r["caption"])  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, direct)), "the flow writes what the CLI path writes"
    assert summary["rows written"] == len(rows) == summary["samples planned"]
    assert summary["captioned"] >= len(rows) // 2

    n_shards = len(json.loads((run_dir / "plan.json").read_text())["shards"])
    runs = _task_runs(state.state_details.flow_run_id, 3 * n_shards)
    names = sorted(r.name.split("-")[0] for r in runs)
    assert names == sorted(["prepare", "caption", "finish"] * n_shards)
    assert all(r.state.is_completed() for r in runs)
    assert all("captioner" in r.tags for r in runs if r.name.startswith("caption"))

    table = latest_artifact("demo-summary")
    assert json.loads(table["data"])[0]["rows written"] == len(rows)
    assert "| ok |" in latest_artifact("demo-stats")["data"]
    assert latest_artifact("demo-progress")["data"] == pytest.approx(100.0)


class _FlakyProxy(ThreadingHTTPServer):
    """A reverse proxy in front of the STAC API that answers 503 to the first `failures` search requests:
    a real transient fault on the wire."""

    def __init__(self, upstream: str, failures: int) -> None:
        self.upstream = urlsplit(upstream)
        self.failures_left = failures
        self.refused = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _FlakyProxy

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "search" in self.path:
            with self.server.lock:
                fail = self.server.failures_left > 0
                if fail:
                    self.server.failures_left -= 1
                    self.server.refused += 1
            if fail:
                msg = b'{"code": "ServiceUnavailable", "description": "flaky proxy"}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)
                return
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        # links in STAC responses point at the upstream: rewrite them so paging goes through the proxy too
        data = data.replace(f"{up.scheme}://{up.netloc}".encode(),
                            f"http://127.0.0.1:{self.server.server_address[1]}".encode())
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = _handle


@contextmanager
def flaky_proxy(upstream: str, failures: int) -> Iterator[_FlakyProxy]:
    proxy = _FlakyProxy(upstream, failures)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_a_transient_stac_fault_is_healed_by_task_retries(prefect_server: str, tmp_path: Path) -> None:
    from flows.caption import caption_region

    with demo_region(tmp_path, "flaky", seed=5, nx=1, ny=1) as region:
        upstream = region["stac_url"]
        with flaky_proxy(upstream, failures=2) as proxy:
            region["stac_url"] = upstream.replace(urlsplit(upstream).netloc,
                                                  f"127.0.0.1:{proxy.server_address[1]}")
            # inner STAC retries off: each task attempt makes one search, so Prefect's retries heal the fault
            state = caption_region(region=region, output=str(tmp_path / "runs"),
                                   sources={**SOURCES, "stac_retries": 0},
                                   captioning=FACTS, return_state=True,
                                   execution={"shard_size": 8, "retries": 2, "retry_delay_seconds": 0.2})
    assert state.is_completed(), state.message
    assert proxy.refused == 2, "the proxy refused the first two searches"
    assert_complete_run(tmp_path / "runs" / "flaky")
    runs = _task_runs(state.state_details.flow_run_id, 3)
    prepare = [r for r in runs if r.name.startswith("prepare")]
    assert len(prepare) == 1 and prepare[0].run_count == 3, "two failed attempts, then success"
    assert prepare[0].state.is_completed()


def test_a_killed_flow_run_resumes_without_duplicates(prefect_server: str, tmp_path: Path) -> None:
    from flows.caption import caption_region

    with demo_region(tmp_path, "crash", seed=3, nx=4, ny=2) as region:
        params = dict(region=region, output=str(tmp_path / "runs"), sources=SOURCES, captioning=FACTS,
                      execution={"shard_size": 2, "shards_in_flight": 1})
        run_dir = tmp_path / "runs" / "crash"
        env = {**os.environ, "PREFECT_API_URL": prefect_server}
        script = "import json, sys\nfrom flows.caption import caption_region\n" \
                 "caption_region(**json.loads(sys.argv[1]))\n"
        proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(params)], cwd=REPO, env=env,
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 90
            while not list(run_dir.glob("shards/*.done.json")):
                assert proc.poll() is None, f"the flow exited early: {proc.stderr.read().decode()[-2000:]}"
                assert time.monotonic() < deadline, "no shard written in 90 s"
                time.sleep(0.02)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        n_shards = len(json.loads((run_dir / "plan.json").read_text())["shards"])
        done_before = len(list((run_dir / "shards").glob("*.done.json")))
        assert 0 < done_before < n_shards, "killed mid-run"
        assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"

        state = caption_region(**params, return_state=True)
    assert state.is_completed(), state.message
    assert_complete_run(run_dir)
    runs = _task_runs(state.state_details.flow_run_id, 3 * (n_shards - done_before))
    prepared = [r for r in runs if r.name.startswith("prepare")]
    assert len(prepared) == n_shards - done_before, "the resumed run skips every shard that has its marker"
