"""The vLLM client against a real local HTTP server that misbehaves on purpose (tests/captioners/openai_stub.py)."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import make_requests
from openai_stub import StubServer, StubState, image_key

from pipeline.captioners.base import CaptionerError
from pipeline.captioners.chain import ChainImage
from pipeline.captioners.vllm_client import VllmCaptioner

BEHAVIOURS = ["ok", "500x2", "500always", "stall_once", "drop_once", "drop_always", "badbody", "badjson_once",
              "badjson", "two_questions", "400", "ok"]


def _client(*urls: str, **kw: object) -> VllmCaptioner:
    opts: dict = {"timeout_s": 0.5, "retries": 3, "backoff_s": 0.01, "max_in_flight": 8} | kw
    return VllmCaptioner(list(urls), "stub-model", **opts)


def test_misbehaving_server_gives_retries_then_rows_in_order() -> None:
    reqs = make_requests(len(BEHAVIOURS))
    keys = [image_key(ChainImage(r.image_png).data_url) for r in reqs]
    with StubServer() as stub, _client(stub.url) as client:
        stub.state.stall_s = 1.5
        stub.state.behaviours = dict(zip(keys, BEHAVIOURS, strict=True))
        results = client.caption_batch(reqs)

    assert [r.sample_id for r in results] == [r.sample_id for r in reqs]  # nothing lost, order kept
    by = dict(zip(BEHAVIOURS, results, strict=False))
    for name in ("ok", "500x2", "stall_once", "drop_once", "badjson_once"):
        r = by[name]
        assert r.error is None, (name, r.error)
        assert r.caption == "A caption built from three answers." and len(r.questions) == 3
        assert r.answers == [f"Answer to: {q}" for q in r.questions]
        assert r.prompt_tokens > 0 and r.model == "stub-model" and r.prompt_version == "v1"
    assert by["500always"].error.startswith("model call failed (questions): HTTP 500") and \
        "after 4 attempts" in by["500always"].error
    assert "transport: RemoteProtocolError" in by["drop_always"].error
    assert "unreadable body" in by["badbody"].error
    assert by["badjson"].error.startswith("malformed model reply: questions: not JSON")
    assert by["two_questions"].error.startswith("malformed model reply: questions: 2 questions instead of 3")
    assert by["400"].error.startswith("model call failed (questions): HTTP 400")
    for name in ("500always", "drop_always", "badbody", "badjson", "400"):
        assert by[name].caption is None and by[name].prompt_hash

    # What reached the server: retries where they belong, no step of a finished sample sent twice.
    tries = Counter((e.image, e.step) for e in stub.state.log if e.step != "models")
    ok_outcomes = Counter((e.image, e.step) for e in stub.state.log if e.outcome == "ok")
    k = dict(zip(BEHAVIOURS, keys, strict=False))
    assert tries[(k["500always"], "questions")] == 4 and tries[(k["400"], "questions")] == 1
    assert tries[(k["500x2"], "questions")] == 3 and tries[(k["drop_once"], "questions")] == 2
    assert tries[(k["badjson"], "questions")] == 2 and tries[(k["badbody"], "questions")] == 4
    for name in ("ok", "500x2", "stall_once", "drop_once", "badjson_once"):
        assert ok_outcomes[(k[name], "questions")] == 1 and ok_outcomes[(k[name], "caption")] == 1
        assert ok_outcomes[(k[name], "answer")] == 3
    assert tries[(k["badjson"], "answer")] == 0


def test_bounded_concurrency_and_spread_over_servers() -> None:
    reqs = make_requests(24)
    shared = StubState(delay_s=0.02)
    with StubServer(state=shared, name="a") as a, StubServer(state=shared, name="b") as b, \
            _client(a.url, b.url, max_in_flight=6) as client:
        results = client.caption_batch(reqs)
    assert all(r.error is None for r in results)
    sent = Counter(e.server for e in shared.log if e.step != "models")
    assert sum(sent.values()) == 24 * 5 == client.requests_sent
    assert 3 <= shared.max_in_flight <= 6  # many chains in flight, never more than the bound
    assert abs(sent["a"] - sent["b"]) <= 24  # both servers carry a fair share


def test_failover_when_one_server_dies() -> None:
    reqs = make_requests(6)
    with StubServer() as good, _client(good.url, retries=4) as client:
        with StubServer() as doomed:
            client.servers.append(type(client.servers[0])(doomed.url))
            client.check()
        results = client.caption_batch(reqs)  # `doomed` is gone: its share fails over to `good`
    assert all(r.error is None for r in results), [r.error for r in results]
    assert len([e for e in good.state.log if e.outcome == "ok" and e.step != "models"]) == 6 * 5


def test_unreachable_server_at_start_is_fatal_with_the_fix() -> None:
    with StubServer() as stub:
        url = stub.url
    client = _client(url)
    with pytest.raises(CaptionerError, match=rf"vLLM server {url} is unreachable .*start it with: vllm serve"):
        client.caption_batch(make_requests(1))
    client.close()


def test_wrong_model_and_bad_urls_are_clear() -> None:
    with StubServer(model="other") as stub, _client(stub.url) as client:
        with pytest.raises(CaptionerError, match=r"serves \['other'\], not 'stub-model'"):
            client.caption_batch(make_requests(1))
    with pytest.raises(CaptionerError, match="not an http"):
        VllmCaptioner(["localhost:8000"], "m")
    with pytest.raises(CaptionerError, match="at least one base URL"):
        VllmCaptioner([], "m")
    assert VllmCaptioner(["http://h:1/v1/"], "m").servers[0].url == "http://h:1"
    assert _client("http://127.0.0.1:9").caption_batch([]) == []


def test_all_servers_gone_mid_run_is_fatal() -> None:
    with StubServer() as stub:
        client = _client(stub.url, retries=1)
        client.check()
    with pytest.raises(CaptionerError, match="unreachable"):
        client.caption_batch(make_requests(3))
    client.close()
