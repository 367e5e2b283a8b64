"""The caption cache: hits skip the backend, only successes are stored, keys follow the inputs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import make_requests

from pipeline.captioners.base import CaptionRequest, CaptionResult
from pipeline.captioners.cache import CachedCaptioner, CaptionCache, request_key
from pipeline.captioners.chain import ChatCall, ChatReply, caption_chain, run_sync
from prompts import load_prompts


class CountingCaptioner:
    """A real chain over a scripted model; fails the samples whose id is in `fail`."""

    name = "scripted"
    model = "scripted-model"
    prompt_version = "v1"

    def __init__(self, fail: set[str] | None = None) -> None:
        self.prompts = load_prompts("v1")
        self.fail = fail or set()
        self.seen: list[str] = []

    def _chat(self, call: ChatCall) -> ChatReply:
        if call.step == "questions":
            return ChatReply(json.dumps({"questions": ["a?", "b?", "c?"]}), 5, 5)
        return ChatReply("fine", 5, 1)

    def caption_batch(self, requests: Sequence[CaptionRequest]) -> list[CaptionResult]:
        out = []
        for r in requests:
            self.seen.append(r.sample_id)
            if r.sample_id in self.fail:
                out.append(CaptionResult(sample_id=r.sample_id, caption=None, error="server gone"))
            else:
                out.append(run_sync(caption_chain(self.prompts, r, self.model), self._chat))
        return out

    def close(self) -> None:
        pass


def test_hits_skip_the_backend_and_survive_reopen(tmp_path: Path) -> None:
    reqs = make_requests(5)
    inner = CountingCaptioner(fail={reqs[3].sample_id})
    cached = CachedCaptioner(inner, CaptionCache(tmp_path / "cache" / "captions.db"))
    first = cached.caption_batch(reqs)
    assert inner.seen == [r.sample_id for r in reqs] and len(cached.cache) == 4  # the failure is not stored
    assert first[3].error == "server gone"
    cached.cache.close()

    inner2 = CountingCaptioner()
    again = CachedCaptioner(inner2, CaptionCache(tmp_path / "cache" / "captions.db"))
    second = again.caption_batch(reqs)
    assert inner2.seen == [reqs[3].sample_id]  # only the earlier failure goes to the backend
    assert (again.hits, again.misses) == (4, 1)
    assert [r.sample_id for r in second] == [r.sample_id for r in reqs]
    assert second[0] == first[0] and second[3].error is None and second[3].caption == "fine"
    again.close()


def test_key_follows_inputs_not_ids(tmp_path: Path) -> None:
    a, b = make_requests(2)
    k = request_key("m", "v1", a, "fp")
    assert k == request_key("m", "v1", CaptionRequest("other-id", a.image_png, a.tags, a.facts,
                                                      a.scene_fractions), "fp")
    assert k != request_key("m2", "v1", a, "fp") and k != request_key("m", "v2", a, "fp")
    assert k != request_key("m", "v1", a, "fp2") and k != request_key("m", "v1", b, "fp")
    assert k != request_key("m", "v1", CaptionRequest(a.sample_id, a.image_png, ["x"], a.facts), "fp")
    assert k != request_key("m", "v1", CaptionRequest(a.sample_id, a.image_png, a.tags, None,
                                                      a.scene_fractions), "fp")

    # the same inputs under a new id come back from the cache with the new id
    cached = CachedCaptioner(CountingCaptioner(), CaptionCache(tmp_path / "c.db"))
    cached.caption_batch([a])
    (hit,) = cached.caption_batch([CaptionRequest("renamed", a.image_png, a.tags, a.facts, a.scene_fractions)])
    assert hit.sample_id == "renamed" and cached.hits == 1


def test_bad_cache_paths_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a directory"):
        CaptionCache(tmp_path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ValueError, match="not a usable SQLite file"):
        CaptionCache(junk)
