"""The chain logic on its own: parsing, re-asks, failure rows, and the three drivers agree."""

from __future__ import annotations

import asyncio
import json

from conftest import make_requests

from pipeline.captioners.chain import (
    ChatCall,
    ChatReply,
    caption_chain,
    parse_questions,
    run_async,
    run_lockstep,
    run_sync,
)
from prompts import load_prompts

QS = ["Is there water?", "What covers most of it?", "Are there roads?"]


class ScriptedModel:
    """A deterministic stand-in for a model: replies depend on the step and on how often it was asked."""

    def __init__(self, questions_replies: list[str], answer: str = "Yes.", caption: str = "A lake by fields.") -> None:
        self.questions_replies = questions_replies
        self.answer = answer
        self.caption = caption
        self.calls: list[ChatCall] = []

    def __call__(self, call: ChatCall) -> ChatReply:
        self.calls.append(call)
        if call.step == "questions":
            n = sum(c.step == "questions" for c in self.calls) - 1
            text = self.questions_replies[min(n, len(self.questions_replies) - 1)]
        else:
            text = self.answer if call.step == "answer" else self.caption
        return ChatReply(text=text, prompt_tokens=10, completion_tokens=3)


def test_parse_questions_accepts_json_fences_and_control_chars() -> None:
    assert parse_questions(json.dumps({"questions": QS}))[0] == QS
    assert parse_questions("```json\n" + json.dumps({"questions": QS}) + "\n```")[0] == QS
    assert parse_questions('Sure: {"questions": ["a\x12b?", "c", "d"]} hope it helps')[0] == ["ab?", "c", "d"]
    assert parse_questions(json.dumps(QS))[0] == QS
    assert parse_questions(json.dumps({"questions": QS[:2]})) == (None, "2 questions instead of 3")
    assert parse_questions("{not json")[1] == "not JSON"
    assert parse_questions("")[1] == "empty reply"
    assert parse_questions(json.dumps({"questions": ["a", "", "c"]}))[1] == "empty or non-string question"


def test_full_chain_counts_tokens_and_hashes() -> None:
    prompts = load_prompts("v1")
    (req,) = make_requests(1)
    model = ScriptedModel([json.dumps({"questions": QS})])
    r = run_sync(caption_chain(prompts, req, "m"), model)
    assert r.error is None and r.caption == "A lake by fields."
    assert r.questions == QS and r.answers == ["Yes."] * 3
    assert [c.step for c in model.calls] == ["questions", "answer", "answer", "answer", "caption"]
    assert model.calls[0].json_schema is not None and model.calls[1].json_schema is None
    assert (r.prompt_tokens, r.completion_tokens) == (50, 15)
    assert r.prompt_version == "v1" and len(r.prompt_hash) == 64
    assert "Q: Is there water?" in model.calls[-1].text and "A: Yes." in model.calls[-1].text
    assert all(c.image.png == req.image_png for c in model.calls)


def test_malformed_questions_reask_once_then_failure_row() -> None:
    prompts = load_prompts("v1")
    (req,) = make_requests(1)
    fixed = ScriptedModel(["I cannot do JSON", json.dumps({"questions": QS})])
    r = run_sync(caption_chain(prompts, req, "m"), fixed)
    assert r.error is None and r.questions == QS
    first, second = fixed.calls[0], fixed.calls[1]
    assert second.params.seed == first.params.seed + 1 and "not usable (not JSON)" in second.text

    broken = ScriptedModel([json.dumps({"questions": QS[:2]})])
    r = run_sync(caption_chain(prompts, req, "m"), broken)
    assert r.caption is None and r.error.startswith("malformed model reply: questions: 2 questions instead of 3")
    assert len(broken.calls) == 2 and r.prompt_tokens == 20 and r.questions == []


def test_empty_answers_and_caption_fail_cleanly() -> None:
    prompts = load_prompts("v1")
    (req,) = make_requests(1)
    r = run_sync(caption_chain(prompts, req, "m"), ScriptedModel([json.dumps({"questions": QS})], answer="  "))
    assert r.error == "malformed model reply: answer 1: empty reply after a re-ask" and r.caption is None
    r = run_sync(caption_chain(prompts, req, "m"), ScriptedModel([json.dumps({"questions": QS})], caption=""))
    assert r.error == "malformed model reply: caption: empty reply after a re-ask" and r.answers == ["Yes."] * 3


def test_transport_error_and_non_png_become_rows() -> None:
    prompts = load_prompts("v1")
    (req,) = make_requests(1)
    r = run_sync(caption_chain(prompts, req, "m"), lambda c: ChatReply(text=None, error="HTTP 500 from x"))
    assert r.error == "model call failed (questions): HTTP 500 from x"
    req.image_png = b"GIF89a..."
    r = run_sync(caption_chain(prompts, req, "m"), ScriptedModel([json.dumps({"questions": QS})]))
    assert r.error is not None and "is not a PNG" in r.error


def test_drivers_agree_and_lockstep_batches_per_step() -> None:
    prompts = load_prompts("v1")
    reqs = make_requests(4)
    good = json.dumps({"questions": QS})
    sync = [run_sync(caption_chain(prompts, r, "m"), ScriptedModel([good])) for r in reqs]

    async def areply(call: ChatCall) -> ChatReply:
        return ScriptedModel([good])(call)

    async def all_async() -> list:
        return await asyncio.gather(*(run_async(caption_chain(prompts, r, "m"), areply) for r in reqs))

    batches: list[list[str]] = []

    def batch(calls: list[ChatCall]) -> list[ChatReply]:
        batches.append([c.step for c in calls])
        return [ScriptedModel([good])(c) for c in calls]

    lock = run_lockstep([caption_chain(prompts, r, "m") for r in reqs], batch)
    assert sync == asyncio.run(all_async()) == lock
    assert [r.sample_id for r in lock] == [r.sample_id for r in reqs]
    assert batches == [["questions"] * 4, ["answer"] * 12, ["caption"] * 4]
