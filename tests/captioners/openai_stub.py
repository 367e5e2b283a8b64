"""A small but real OpenAI-compatible HTTP/1.1 server on localhost, with scripted misbehaviour.

It answers `/v1/models` and `/v1/chat/completions` instantly (questions as JSON when the request carries a
`response_format`, otherwise a short text). Each sample is recognised by its image (the base64 data URL), and a
behaviour registered for that image decides what its requests get: 500s, a stall longer than the client
timeout, a dropped connection, an unreadable body, a malformed model reply, a 400. Every request is logged.
Used by the client tests and by bench/bench_captioner.py (there in its own process).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

QUESTIONS = ["What covers most of the area?", "Is there water?", "Are there roads or buildings?"]


@dataclass
class Logged:
    server: str  # the StubServer's name
    image: str  # image_key() of the request's data URL
    step: str  # questions | answer | caption | models
    outcome: str  # ok | 500 | stall | drop | badbody | badjson | 400 | ...


@dataclass
class StubState:
    model: str = "stub-model"
    behaviours: dict[str, str] = field(default_factory=dict)  # image key -> behaviour name
    stall_s: float = 5.0
    delay_s: float = 0.0  # added to every completion, to make concurrency observable
    in_flight: int = 0
    max_in_flight: int = 0
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)  # (image, step) -> attempts so far
    log: list[Logged] = field(default_factory=list)


def image_key(data_url: str) -> str:
    return hashlib.sha1(data_url.encode()).hexdigest()[:16]


def _step(body: dict[str, Any]) -> tuple[str, str]:
    user = body["messages"][-1]["content"]
    text = next(p["text"] for p in user if p["type"] == "text")
    url = next(p["image_url"]["url"] for p in user if p["type"] == "image_url")
    if body.get("response_format"):
        return "questions", url
    return ("answer" if "Question:" in text else "caption"), url


def _completion(model: str, content: str) -> bytes:
    return json.dumps({
        "id": "cmpl-stub", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }).encode()


def _decide(state: StubState, behaviour: str, attempt: int, step: str) -> str:
    """What this attempt (0-based, per image and step) gets."""
    if behaviour == "ok":
        return "ok"
    if behaviour.startswith("500x"):  # the first N attempts of each step fail
        return "500" if attempt < int(behaviour[4:]) else "ok"
    if behaviour == "500always":
        return "500"
    if behaviour == "stall_once":
        return "stall" if attempt == 0 and step == "questions" else "ok"
    if behaviour == "drop_once":
        return "drop" if attempt == 0 else "ok"
    if behaviour == "drop_always":
        return "drop"
    if behaviour == "badbody":
        return "badbody"
    if behaviour == "badjson_once":  # the model ignores the schema once: the chain must re-ask
        return "badjson" if step == "questions" and attempt == 0 else "ok"
    if behaviour == "badjson":
        return "badjson" if step == "questions" else "ok"
    if behaviour == "two_questions":
        return "two_questions" if step == "questions" else "ok"
    if behaviour == "400":
        return "400"
    raise ValueError(f"unknown stub behaviour {behaviour!r}")


async def _handle(state: StubState, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status, payload = await _respond(state, name, method, path, body)
            if status == 0:  # dropped
                writer.close()
                return
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _respond(state: StubState, name: str, method: str, path: str, raw: bytes) -> tuple[int, bytes]:
    if method == "GET" and path == "/v1/models":
        state.log.append(Logged(name, "", "models", "ok"))
        return 200, json.dumps({"object": "list", "data": [{"id": state.model, "object": "model"}]}).encode()
    if method != "POST" or path != "/v1/chat/completions":
        return 404, b'{"error": "not found"}'
    body = json.loads(raw)
    if body.get("model") != state.model:
        return 404, json.dumps({"error": f"model {body.get('model')!r} not served"}).encode()
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        if state.delay_s:
            await asyncio.sleep(state.delay_s)
        return await _complete(state, name, body)
    finally:
        state.in_flight -= 1


async def _complete(state: StubState, name: str, body: dict[str, Any]) -> tuple[int, bytes]:
    step, url = _step(body)
    key = image_key(url)
    attempt = state.seen[(key, step)]
    state.seen[(key, step)] += 1
    outcome = _decide(state, state.behaviours.get(key, "ok"), attempt, step)
    state.log.append(Logged(name, key, step, outcome))
    if outcome == "500":
        return 500, b'{"error": "stub says no"}'
    if outcome == "400":
        return 400, b'{"error": "bad request"}'
    if outcome == "drop":
        return 0, b""
    if outcome == "stall":
        await asyncio.sleep(state.stall_s)
    if outcome == "badbody":
        return 200, b'{"choices": [ this is not json'
    if outcome == "badjson":
        return 200, _completion(state.model, "Sure! Here are three questions: 1) water? 2) roads? 3) fields?")
    if outcome == "two_questions":
        return 200, _completion(state.model, json.dumps({"questions": QUESTIONS[:2]}))
    if step == "questions":
        return 200, _completion(state.model, json.dumps({"questions": QUESTIONS}))
    if step == "answer":
        text = body["messages"][-1]["content"][-1]["text"]
        return 200, _completion(state.model, "Answer to: " + text.rsplit("Question:", 1)[1].strip())
    return 200, _completion(state.model, "A caption built from three answers.")


class StubServer:
    """Runs the stub on 127.0.0.1 in a background thread: `with StubServer() as s: s.url ...`."""

    def __init__(self, model: str = "stub-model", port: int = 0, state: StubState | None = None,
                 name: str = "stub") -> None:
        self.state = state or StubState(model=model)  # share one state between servers to see global load
        self.name = name
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="openai-stub")
        self._server: asyncio.base_events.Server | None = None
        self.url = ""

    def __enter__(self) -> StubServer:
        self._thread.start()

        async def start() -> asyncio.base_events.Server:
            return await asyncio.start_server(lambda r, w: _handle(self.state, self.name, r, w), "127.0.0.1",
                                              self._port)

        self._server = asyncio.run_coroutine_threadsafe(start(), self._loop).result()
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in others:
                t.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def serve_forever(port: int, model: str = "stub-model", delay_s: float = 0.0) -> None:
    """Entry point for a separate process (the benchmark)."""
    state = StubState(model=model, delay_s=delay_s)

    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: _handle(state, "stub", r, w), "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
