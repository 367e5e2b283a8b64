"""The `vllm` backend: an async client for one or more OpenAI-compatible vLLM servers.

Many samples' chains are in flight at once; `max_in_flight` bounds the HTTP requests open across the whole
batch (and across all servers). Each request goes to the least-loaded server (ties: round robin). 5xx, 429,
timeouts and dropped connections are retried with exponential backoff and jitter, possibly on another server;
other 4xx are not retried. A call that stays broken becomes a failure row for its sample, never an exception.
The model's own chat template is applied by the server: we send chat messages, never hand-built prompts.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpx

from pipeline.captioners.base import CaptionerError, CaptionRequest, CaptionResult
from pipeline.captioners.chain import ChatCall, ChatReply, caption_chain, run_async
from prompts.loader import load_prompts

T = TypeVar("T")
TRANSPORT_ERROR = "transport:"  # prefix of ChatReply.error when no HTTP answer came back
_IMAGE_SLOT = "@@s2cap-image-data-url@@"
_JSON_HEADERS = {"Content-Type": "application/json"}
DOWN_BASE_S, DOWN_MAX_S = 1.0, 30.0  # a server that dropped a connection is avoided this long (doubling)


def serve_hint(model: str, port: int = 8000) -> str:
    return (f"vllm serve {model} --host 0.0.0.0 --port {port} --max-model-len 8192 "
            "--limit-mm-per-prompt '{\"image\": 1}'")


@dataclass(slots=True)
class _Server:
    url: str  # base URL without /v1
    in_flight: int = 0
    idle: list[httpx.AsyncClient] = field(default_factory=list)  # single-connection clients not in use
    fails: int = 0  # consecutive transport failures
    down_until: float = 0.0  # monotonic time; skipped while another server is up

    def failed(self) -> None:
        self.fails += 1
        self.down_until = time.monotonic() + min(DOWN_MAX_S, DOWN_BASE_S * 2 ** (self.fails - 1))

    def worked(self) -> None:
        self.fails = 0
        self.down_until = 0.0


class VllmCaptioner:
    """Captions through `/v1/chat/completions` of one or more vLLM servers."""

    name = "vllm"

    def __init__(self, base_urls: Sequence[str] | str, model: str, prompt_version: str = "v1",
                 max_in_flight: int = 32, timeout_s: float = 120.0, retries: int = 4,
                 backoff_s: float = 0.5, backoff_max_s: float = 20.0, api_key: str | None = None,
                 prompts_root: Path | None = None) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise CaptionerError("VllmCaptioner needs at least one base URL, e.g. http://127.0.0.1:8000")
        for u in urls:
            p = urlparse(u)
            if p.scheme not in ("http", "https") or not p.netloc:
                raise CaptionerError(f"vLLM base URL {u!r} is not an http(s) URL; pass e.g. http://127.0.0.1:8000")
        if not model:
            raise CaptionerError("VllmCaptioner needs the served model name, e.g. llava-hf/llama3-llava-next-8b-hf")
        if max_in_flight < 1 or timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise CaptionerError(f"bad client limits: max_in_flight={max_in_flight} (>=1), timeout_s={timeout_s} "
                                 f"(>0), retries={retries} (>=0), backoff_s={backoff_s} (>=0)")
        self.model = model
        self.prompts = load_prompts(prompt_version, prompts_root)
        self.prompt_version = prompt_version
        self.servers = [_Server(_strip_v1(u)) for u in urls]
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.requests_sent = 0  # HTTP attempts, retries included
        self._rr = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._clients: list[httpx.AsyncClient] = []
        self._ssl: ssl.SSLContext | None = None
        self._sem: asyncio.Semaphore | None = None
        self._checked = False

    # --- public API ---------------------------------------------------------------------------------------

    def caption_batch(self, requests: Sequence[CaptionRequest]) -> list[CaptionResult]:
        if not requests:
            return []
        if not self._checked:
            self._submit(self._check())
            self._checked = True
        results = self._submit(self._caption_all(list(requests)))
        if all(r.error and TRANSPORT_ERROR in r.error for r in results):
            # Every sample lost its connection: if the servers are gone for good, that is fatal, not a row each.
            self._submit(self._check())
        return results

    def check(self) -> None:
        """Raise CaptionerError unless every server answers and serves `model`."""
        self._submit(self._check())
        self._checked = True

    def close(self) -> None:
        if self._loop is None:
            return
        self._submit(self._close_clients())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop.close()
        self._loop = self._thread = None
        self._sem = None

    def __enter__(self) -> VllmCaptioner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- event loop in a private thread (callers may or may not run their own loop) -------------------------

    def _submit(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-client", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _lane(self, server: _Server) -> httpx.AsyncClient:
        """An idle single-connection client for `server`. One client per in-flight request keeps httpcore's
        pool scan O(1): one shared pool of 64 connections spends more CPU scanning itself than sending."""
        if server.idle:
            return server.idle.pop()
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # one for all lanes: building one costs ~40 ms
        client = httpx.AsyncClient(
            verify=self._ssl, timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), headers=self.headers)
        self._clients.append(client)
        return client

    async def _close_clients(self) -> None:
        for c in self._clients:
            await c.aclose()
        self._clients.clear()
        for s in self.servers:
            s.idle.clear()

    # --- server checks --------------------------------------------------------------------------------------

    async def _check(self) -> None:
        for s in self.servers:
            port = urlparse(s.url).port or 8000
            client = self._lane(s)
            try:
                resp = await client.get(f"{s.url}/v1/models", timeout=min(self.timeout_s, 10.0))
            except httpx.HTTPError as e:
                raise CaptionerError(f"vLLM server {s.url} is unreachable ({type(e).__name__}); start it with: "
                                     f"{serve_hint(self.model, port)}") from None
            finally:
                s.idle.append(client)
            if resp.status_code != 200:
                raise CaptionerError(f"vLLM server {s.url}/v1/models answered HTTP {resp.status_code}; is it an "
                                     f"OpenAI-compatible server? Start one with: {serve_hint(self.model, port)}")
            try:
                ids = [m["id"] for m in resp.json()["data"]]
            except (ValueError, KeyError, TypeError):
                raise CaptionerError(f"{s.url}/v1/models did not return an OpenAI model list; start a vLLM "
                                     f"server with: {serve_hint(self.model, port)}") from None
            if self.model not in ids:
                raise CaptionerError(f"vLLM server {s.url} serves {ids}, not {self.model!r}; pass the served "
                                     f"name as the model or start: {serve_hint(self.model, port)}")

    # --- captioning -----------------------------------------------------------------------------------------

    async def _caption_all(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_in_flight)
        chains = asyncio.Semaphore(self.max_in_flight)

        async def one(req: CaptionRequest) -> CaptionResult:
            async with chains:
                try:
                    return await run_async(caption_chain(self.prompts, req, self.model), self._chat)
                except CaptionerError:
                    raise
                except Exception as e:  # a bug must not lose the rest of the batch; the row says what broke
                    return CaptionResult(sample_id=req.sample_id, caption=None, model=self.model,
                                         prompt_version=self.prompt_version,
                                         error=f"internal error: {type(e).__name__}: {e}")

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def _pick(self) -> _Server:
        """Least loaded among the servers that are up (all of them when none is), ties in round robin."""
        n = len(self.servers)
        self._rr = (self._rr + 1) % n
        ring = [self.servers[(self._rr + i) % n] for i in range(n)]
        now = time.monotonic()
        up = [s for s in ring if s.down_until <= now] or ring
        return min(up, key=lambda s: s.in_flight)

    def _body(self, call: ChatCall, image_url: str | None = None) -> dict[str, Any]:
        p = call.params
        body: dict[str, Any] = {"model": self.model, "messages": call.openai_messages(image_url),
                                "temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_tokens,
                                "seed": p.seed}
        if call.json_schema:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": call.json_schema["name"], "schema": call.json_schema["schema"], "strict": True}}
        return body

    def encode_body(self, call: ChatCall) -> bytes:
        """The request JSON. The base64 image (most of the bytes) is spliced in unescaped: base64 and the data
        URL prefix never need JSON escaping, and json.dumps would scan it once per call."""
        text = json.dumps(self._body(call, _IMAGE_SLOT), ensure_ascii=False)
        return text.replace(f'"{_IMAGE_SLOT}"', f'"{call.image.data_url}"', 1).encode()

    async def _chat(self, call: ChatCall) -> ChatReply:
        assert self._sem is not None
        body = self.encode_body(call)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)) * (0.5 + random.random())
                await asyncio.sleep(delay)
            server = self._pick()
            async with self._sem:
                server.in_flight += 1
                self.requests_sent += 1
                client = self._lane(server)
                try:
                    resp = await client.post(f"{server.url}/v1/chat/completions", content=body,
                                             headers=_JSON_HEADERS)
                except httpx.TimeoutException:
                    last = f"{TRANSPORT_ERROR} timed out after {self.timeout_s:g} s at {server.url}"
                    continue
                except httpx.TransportError as e:
                    server.failed()
                    last = f"{TRANSPORT_ERROR} {type(e).__name__} at {server.url}"
                    continue
                finally:
                    server.in_flight -= 1
                    server.idle.append(client)
            server.worked()
            if resp.status_code == 200:
                reply = _parse_completion(resp)
                if reply is not None:
                    return reply
                last = f"HTTP 200 with an unreadable body from {server.url}: {resp.text[:120]!r}"
                continue
            last = f"HTTP {resp.status_code} from {server.url}: {resp.text[:200]!r}"
            if resp.status_code != 429 and resp.status_code < 500:
                return ChatReply(text=None, error=last)  # the request itself is wrong: retrying cannot help
        return ChatReply(text=None, error=f"{last} (after {self.retries + 1} attempts)")


def _strip_v1(url: str) -> str:
    url = url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def _parse_completion(resp: httpx.Response) -> ChatReply | None:
    try:
        data = resp.json()
        content = data["choices"][0]["message"]["content"]
        usage = data.get("usage") or {}
        return ChatReply(text=content if isinstance(content, str) else "",
                         prompt_tokens=int(usage.get("prompt_tokens") or 0),
                         completion_tokens=int(usage.get("completion_tokens") or 0))
    except (ValueError, KeyError, IndexError, TypeError):
        return None
