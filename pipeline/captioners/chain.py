"""The caption chain shared by every VLM backend, written once as a generator of model calls.

`caption_chain()` yields lists of `ChatCall`s (calls in one list are independent and may run in parallel) and
receives the matching `ChatReply`s; it returns the `CaptionResult`. Backends only differ in how they run calls:
`run_sync` (one call at a time), `run_async` (many samples in flight; the HTTP client) and `run_lockstep` (one
batched model call per step over all samples; vLLM offline). The chain never raises for a bad reply: a malformed
reply gets one re-ask, then the sample becomes a failure row whose error starts with "malformed model reply:".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.captioners.base import CaptionRequest, CaptionResult
from prompts.loader import N_QUESTIONS, GenerationParams, PromptSet, PromptStep

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPLY_EXCERPT = 160  # characters of a bad reply kept in the error text


class ChainImage:
    """The sample's PNG with its encodings computed once, on first use."""

    __slots__ = ("png", "_sha256", "_data_url", "_pil")

    def __init__(self, png: bytes) -> None:
        self.png = png
        self._sha256: str | None = None
        self._data_url: str | None = None
        self._pil: Any = None

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.png).hexdigest()
        return self._sha256

    @property
    def data_url(self) -> str:
        if self._data_url is None:
            self._data_url = "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")
        return self._data_url

    def pil(self) -> Any:
        if self._pil is None:
            from PIL import Image

            self._pil = Image.open(io.BytesIO(self.png)).convert("RGB")
        return self._pil


@dataclass(slots=True)
class ChatCall:
    """One single-turn chat request: optional system text, then a user turn with the image and `text`."""

    step: str  # questions | answer | caption
    system: str | None
    text: str
    image: ChainImage
    params: GenerationParams
    json_schema: dict[str, Any] | None = None  # {"name": ..., "schema": {...}} for structured output

    def openai_messages(self, image_url: str | None = None) -> list[dict[str, Any]]:
        """Messages in the OpenAI chat format (also what `vllm.LLM.chat` takes); `image_url` overrides the
        image's data URL (the HTTP client splices the image into the serialized JSON itself)."""
        msgs: list[dict[str, Any]] = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        msgs.append({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_url or self.image.data_url}},
            {"type": "text", "text": self.text},
        ]})
        return msgs


@dataclass(slots=True)
class ChatReply:
    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # the call itself failed (after the backend's retries)


ChainGen = Generator[list[ChatCall], list[ChatReply], CaptionResult]


@dataclass(slots=True)
class _Tally:
    rendered: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, reply: ChatReply) -> None:
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens


def parse_questions(text: str | None) -> tuple[list[str] | None, str]:
    """The three questions of a step-1 reply, or (None, why not)."""
    if not text or not text.strip():
        return None, "empty reply"
    t = text.strip()
    fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", t, re.S)
    if fence:
        t = fence.group(1)
    try:
        obj = json.loads(t, strict=False)  # strict=False: raw control characters inside strings are common
    except json.JSONDecodeError:
        start, end = t.find("{"), t.rfind("}")
        try:
            obj = json.loads(t[start:end + 1], strict=False) if 0 <= start < end else None
        except json.JSONDecodeError:
            obj = None
        if obj is None:
            return None, "not JSON"
    qs = obj.get("questions") if isinstance(obj, dict) else obj
    if not isinstance(qs, list):
        return None, 'no "questions" list'
    if len(qs) != N_QUESTIONS:
        return None, f"{len(qs)} questions instead of {N_QUESTIONS}"
    cleaned = [_clean(q) if isinstance(q, str) else "" for q in qs]
    if not all(cleaned):
        return None, "empty or non-string question"
    return cleaned, ""


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


def _clean(text: str | None) -> str:
    """One line of text: control characters and U+FFFD (undecodable bytes) dropped, whitespace collapsed."""
    return " ".join(_CONTROL.sub("", text or "").split())


def _excerpt(text: str | None) -> str:
    t = _clean(text)
    return json.dumps(t[:REPLY_EXCERPT] + ("..." if len(t) > REPLY_EXCERPT else ""), ensure_ascii=False)


def _call(step: PromptStep, text: str, image: ChainImage, reask: str | None = None) -> ChatCall:
    params = step.params
    if reask:
        # A different seed, or a seeded sampler would repeat the same bad reply.
        text = f"{text}\n\n{reask}"
        params = replace(params, seed=params.seed + 1)
    return ChatCall(step=step.name, system=step.system, text=text, image=image, params=params,
                    json_schema=step.response_format)


def caption_chain(prompts: PromptSet, request: CaptionRequest, model: str) -> ChainGen:
    """questions -> answers (in parallel) -> caption, with one re-ask per malformed reply."""
    tally = _Tally()
    image = ChainImage(request.image_png)
    questions: list[str] = []
    answers: list[str] = []

    def result(caption: str | None = None, error: str | None = None) -> CaptionResult:
        return CaptionResult(
            sample_id=request.sample_id, caption=caption, questions=questions, answers=answers, model=model,
            prompt_version=prompts.version, prompt_hash=prompts.prompt_hash(tally.rendered, image.sha256),
            prompt_tokens=tally.prompt_tokens, completion_tokens=tally.completion_tokens, error=error)

    if not request.image_png.startswith(PNG_SIGNATURE):
        return result(error=f"image_png of {request.sample_id!r} is not a PNG; render the preview first")

    # 1. three questions (structured output)
    q_text = prompts.render_questions(request)
    call = _call(prompts.questions, q_text, image)
    why = ""
    for attempt in range(2):
        tally.rendered.append(call.text)
        (reply,) = yield [call]
        tally.add(reply)
        if reply.error:
            return result(error=f"model call failed (questions): {reply.error}")
        parsed, why = parse_questions(reply.text)
        if parsed is not None:
            questions = parsed
            break
        if attempt == 0:
            call = _call(prompts.questions, q_text, image, reask=(
                f"Your previous reply was not usable ({why}). Reply with JSON only, exactly three questions: "
                '{"questions": ["...", "...", "..."]}'))
    else:
        return result(error=f"malformed model reply: questions: {why}; reply: {_excerpt(reply.text)}")

    # 2. one answer per question, all in flight at once
    a_texts = [prompts.render_answer(request, q) for q in questions]
    got: list[str] = [""] * len(questions)
    todo = list(range(len(questions)))
    for attempt in range(2):
        calls = [_call(prompts.answer, a_texts[i], image,
                       reask="Your previous reply was empty. Answer in one short sentence." if attempt else None)
                 for i in todo]
        tally.rendered.extend(c.text for c in calls)
        replies = yield calls
        for i, reply in zip(todo, replies, strict=True):
            tally.add(reply)
            if reply.error:
                answers = got
                return result(error=f"model call failed (answer {i + 1}): {reply.error}")
            got[i] = _clean(reply.text)
        todo = [i for i in todo if not got[i]]
        if not todo:
            break
    answers = got
    if todo:
        return result(error=f"malformed model reply: answer {todo[0] + 1}: empty reply after a re-ask")

    # 3. the caption
    c_text = prompts.render_caption(request, questions, answers)
    call = _call(prompts.caption, c_text, image)
    for attempt in range(2):
        tally.rendered.append(call.text)
        (reply,) = yield [call]
        tally.add(reply)
        if reply.error:
            return result(error=f"model call failed (caption): {reply.error}")
        caption = _clean(reply.text)
        if caption:
            return result(caption=caption)
        if attempt == 0:
            call = _call(prompts.caption, c_text, image,
                         reask="Your previous reply was empty. Write the caption now.")
    return result(error="malformed model reply: caption: empty reply after a re-ask")


# --- drivers ------------------------------------------------------------------------------------------------


def run_sync(chain: ChainGen, chat: Callable[[ChatCall], ChatReply]) -> CaptionResult:
    """Run one chain, one call at a time."""
    try:
        calls = next(chain)
        while True:
            calls = chain.send([chat(c) for c in calls])
    except StopIteration as stop:
        return stop.value


async def run_async(chain: ChainGen, chat: Callable[[ChatCall], Awaitable[ChatReply]]) -> CaptionResult:
    """Run one chain; independent calls of a step go out together."""
    try:
        calls = next(chain)
        while True:
            replies = await asyncio.gather(*(chat(c) for c in calls))
            calls = chain.send(list(replies))
    except StopIteration as stop:
        return stop.value


def run_lockstep(chains: Sequence[ChainGen], chat_batch: Callable[[list[ChatCall]], list[ChatReply]]
                 ) -> list[CaptionResult]:
    """Run many chains together: every round sends all pending calls of all chains in one batch."""
    results: list[CaptionResult | None] = [None] * len(chains)
    pending: dict[int, list[ChatCall]] = {}
    for i, ch in enumerate(chains):
        try:
            pending[i] = next(ch)
        except StopIteration as stop:
            results[i] = stop.value
    while pending:
        order = list(pending.items())
        flat = [c for _, calls in order for c in calls]
        replies = chat_batch(flat)
        if len(replies) != len(flat):
            raise RuntimeError(f"chat_batch returned {len(replies)} replies for {len(flat)} calls")
        pos = 0
        pending = {}
        for i, calls in order:
            mine, pos = replies[pos:pos + len(calls)], pos + len(calls)
            try:
                pending[i] = chains[i].send(list(mine))
            except StopIteration as stop:
                results[i] = stop.value
    return [r for r in results if r is not None]
