"""The rating server over real HTTP on 127.0.0.1: page, images, state, saves to ratings/<rater>.json."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.errors import InputError
from validation.server import RatingServer, make_server, start_in_thread


@pytest.fixture
def server(exported: Path) -> Iterator[RatingServer]:
    srv = make_server(exported, port=0, rater="alice")
    start_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


def get(srv: RatingServer, path: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(srv.url.rstrip("/") + path, timeout=5) as r:
            return r.status, r.read(), r.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers["Content-Type"]


def post(srv: RatingServer, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        srv.url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_page_static_files_and_images(server: RatingServer, exported: Path) -> None:
    assert server.server_address[0] == "127.0.0.1"
    status, body, ctype = get(server, "/")
    assert status == 200 and ctype.startswith("text/html") and b"/static/app.js" in body
    assert get(server, "/static/app.js")[0] == 200 and get(server, "/static/style.css")[0] == 200
    sample = json.loads((exported / "samples.json").read_text())[0]
    status, body, ctype = get(server, "/" + sample["images"]["false_colour"])
    assert status == 200 and ctype == "image/png" and body[:8] == b"\x89PNG\r\n\x1a\n"
    for bad in ("/images/../samples.json", "/images/%2e%2e/manifest.json", "/static/../server.py", "/nope"):
        assert get(server, bad)[0] == 404


def test_state_save_merge_and_resume(server: RatingServer, exported: Path) -> None:
    samples = json.loads((exported / "samples.json").read_text())
    state = json.loads(get(server, "/api/state")[1])
    assert state["rater"] == "alice" and len(state["samples"]) == 12 and state["ratings"] == {}
    assert state["scale"] == ["Excellent", "Good", "Average", "Below Average", "Poor", "Terrible"]
    sid, caption = samples[1]["id"], samples[1]["caption"]
    word = caption.split()[1]
    start = caption.index(word)
    assert post(server, "/api/rating", {"sample_id": sid, "completeness": "Average"})[0] == 200
    code, reply = post(
        server,
        "/api/rating",
        {
            "sample_id": sid,
            "comment": "ok",
            "spans": [{"start": start, "end": start + len(word), "text": word}],
        },
    )
    assert code == 200 and reply["rating"]["completeness"] == "Average"  # merged, not replaced
    assert post(server, "/api/position", {"sample_id": samples[4]["id"]})[0] == 200
    doc = json.loads((exported / "ratings" / "alice.json").read_text())
    assert doc["position"] == samples[4]["id"]
    assert doc["ratings"][sid]["spans"] == [{"start": start, "end": start + len(word), "text": word}]
    assert doc["ratings"][sid]["comment"] == "ok" and doc["ratings"][sid]["updated"].endswith("Z")
    assert [p.name for p in (exported / "ratings").iterdir()] == ["alice.json"]  # no temporaries left

    # a fresh server (a reopened tab after a restart) resumes from the file
    again = make_server(exported, port=0, rater="alice")
    start_in_thread(again)
    try:
        state = json.loads(get(again, "/api/state")[1])
    finally:
        again.shutdown()
        again.server_close()
    assert state["position"] == samples[4]["id"] and state["ratings"][sid]["completeness"] == "Average"


def test_bad_answers_are_refused_and_nothing_is_written(server: RatingServer, exported: Path) -> None:
    sid = json.loads((exported / "samples.json").read_text())[0]["id"]
    cases = [
        ({"sample_id": sid, "completeness": "Great"}, "not one of Excellent"),
        ({"sample_id": sid, "spans": [{"start": 0, "end": 2, "text": "zz"}]}, "does not match caption"),
        ({"sample_id": "missing"}, "not in samples.json"),
        ({"sample_id": sid, "rater": "../etc"}, "rater name"),
    ]
    for body, message in cases:
        code, reply = post(server, "/api/rating", body)
        assert code == 400 and message in reply["error"]
    req = urllib.request.Request(
        server.url + "api/rating",
        data=json.dumps({"sample_id": sid, "completeness": "Good"}).encode(),
        method="POST",
        headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 403
    assert not (exported / "ratings" / "alice.json").exists()


def test_raters_keep_separate_files_and_parallel_saves_all_land(server: RatingServer, exported: Path) -> None:
    samples = json.loads((exported / "samples.json").read_text())
    scale = ["Excellent", "Good", "Average", "Below Average", "Poor", "Terrible"]

    def rate(i: int) -> int:
        return post(
            server,
            "/api/rating",
            {"rater": "bob", "sample_id": samples[i]["id"], "completeness": scale[i % 6]},
        )[0]

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(rate, range(12))) == {200}
    post(server, "/api/rating", {"sample_id": samples[0]["id"], "completeness": "Terrible"})
    bob = json.loads((exported / "ratings" / "bob.json").read_text())
    alice = json.loads((exported / "ratings" / "alice.json").read_text())
    assert {sid: r["completeness"] for sid, r in bob["ratings"].items()} == {
        s["id"]: scale[i % 6] for i, s in enumerate(samples)
    }
    assert list(alice["ratings"]) == [samples[0]["id"]]
    assert (
        json.loads(get(server, "/api/state?rater=bob")[1])["ratings"][samples[0]["id"]]["completeness"]
        == "Excellent"
    )


def test_server_input_errors(tmp_path: Path, exported: Path) -> None:
    with pytest.raises(InputError, match="no samples.json"):
        make_server(tmp_path, port=0)
    with pytest.raises(InputError, match="rater name"):
        make_server(exported, port=0, rater="a b")
