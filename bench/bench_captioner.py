"""Client overhead of the VLM captioners: can our side feed a GPU?

1. Captions/s the vllm client sustains against a local OpenAI-compatible server that answers instantly
   (tests/captioners/openai_stub.py, in its own process), many chains in flight vs one request at a time.
2. CPU time per caption in our code (prompt rendering, PNG -> base64 data URL, JSON request bodies) and in the
   whole client process (with HTTP), against the time the tiny LLaVA-Next takes per caption (transformers, CPU).

Goal: >= 50 captions/s from one core (5 model calls per caption). Run: python bench/bench_captioner.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "captioners"))

from openai_stub import serve_forever  # noqa: E402

from overture.model import ClassArea, Facts, RoadLength  # noqa: E402
from pipeline.captioners.base import CaptionRequest  # noqa: E402
from pipeline.captioners.chain import caption_chain  # noqa: E402
from pipeline.captioners.vllm_client import VllmCaptioner  # noqa: E402
from prompts import load_prompts  # noqa: E402

GOAL = 50.0


def preview_png(i: int, size: int = 264) -> bytes:
    """A preview-like PNG (smooth fields plus texture), about the size of a real 264 px RGB preview."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([80 + 40 * np.sin(x / (9 + i % 7)), 100 + 30 * np.cos(y / 13), 70 + 20 * np.sin((x + y) / 17)],
                    axis=-1)
    img = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def requests(n: int) -> list[CaptionRequest]:
    facts = Facts(footprint_m2=6.97e6, classes=[ClassArea("land_use", "agriculture", "farmland", 3e6, 0.43),
                                                ClassArea("water", "river", "river", 2e5, 0.03)],
                  building_count=120, building_fraction=0.04, roads=[RoadLength("primary", 2100.0)])
    pngs = [preview_png(i) for i in range(min(n, 32))]
    out = []
    for i in range(n):
        png = pngs[i] if i < len(pngs) else _unique(pngs[i % len(pngs)], i)
        out.append(CaptionRequest(f"chip{i:05d}_2024-Q2", png, ["farmland", "river"], facts,
                                  {"vegetation": 0.7, "water": 0.03}))
    return out


def _unique(png: bytes, i: int) -> bytes:
    """A distinct image per sample without re-encoding: PNG readers ignore bytes after IEND."""
    return png + i.to_bytes(4, "big")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_run(url: str, reqs: list[CaptionRequest], max_in_flight: int) -> tuple[float, float, int]:
    client = VllmCaptioner([url], "stub-model", max_in_flight=max_in_flight, timeout_s=30)
    client.check()
    cpu0, t0 = time.process_time(), time.perf_counter()
    results = client.caption_batch(reqs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    client.close()
    bad = [r.error for r in results if r.error]
    if bad:
        raise SystemExit(f"bench: {len(bad)} captions failed, e.g. {bad[0]}")
    return wall, cpu, client.requests_sent


def our_code_cpu(reqs: list[CaptionRequest]) -> float:
    """Seconds of CPU per caption for rendering, encoding and request bodies, with no I/O at all."""
    prompts = load_prompts("v1")
    client = VllmCaptioner(["http://127.0.0.1:9"], "m")
    qs = json.dumps({"questions": ["What covers most of the area?", "Is there water?", "Are there roads?"]})
    t0 = time.process_time()
    for r in reqs:
        chain = caption_chain(prompts, r, "m")
        calls = next(chain)
        try:
            while True:
                for c in calls:
                    json.dumps(client._body(c))
                replies = [_reply(c.step, qs) for c in calls]
                calls = chain.send(replies)
        except StopIteration:
            pass
    return (time.process_time() - t0) / len(reqs)


def _reply(step: str, qs: str):  # noqa: ANN202
    from pipeline.captioners.chain import ChatReply

    return ChatReply(text=qs if step == "questions" else "Some fields and a river.", prompt_tokens=1,
                     completion_tokens=1)


def tiny_model_time() -> tuple[float, int] | None:
    """Wall seconds of one answer-step call of the tiny random LLaVA-Next (transformers, CPU) and its tokens."""
    try:
        import transformers  # noqa: F401

        from pipeline.captioners.chain import ChainImage, ChatCall
        from pipeline.captioners.hf import TransformersCaptioner
        from pipeline.captioners.tiny_model import build_tiny_llava_next
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cap = TransformersCaptioner(build_tiny_llava_next(Path(tmp) / "tiny"))
        step = cap.prompts.answer
        call = ChatCall(step="answer", system=step.system, text="Is there water?", image=ChainImage(preview_png(1)),
                        params=step.params)
        cap.chat(call)  # warm up
        t0 = time.perf_counter()
        reply = cap.chat(call)
        return time.perf_counter() - t0, reply.completion_tokens


def start_server(delay_s: float) -> tuple[mp.Process, str]:
    port = free_port()
    server = mp.get_context("spawn").Process(target=serve_forever, args=(port, "stub-model", delay_s), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/v1/models", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return server, url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer captions (about 15 s)")
    ap.add_argument("-n", type=int, default=None, help="captions for the concurrent run")
    ap.add_argument("--no-model", action="store_true", help="skip the tiny-model timing")
    ap.add_argument("--latency-ms", type=float, default=50.0, help="per-call delay of the second server run")
    args = ap.parse_args()
    n = args.n or (120 if args.quick else 400)
    n_seq = max(20, n // 10)

    reqs = requests(n)
    png_kb = sum(len(r.image_png) for r in reqs[:32]) / min(n, 32) / 1024
    server, url = start_server(0.0)
    try:
        client_run(url, reqs[:20], 16)  # warm up
        wall_c, cpu_c, sent_c = client_run(url, reqs, 64)
        wall_s, cpu_s, _ = client_run(url, reqs[:n_seq], 1)
    finally:
        server.terminate()
        server.join(5)
    latency = args.latency_ms / 1000
    server, url = start_server(latency)
    try:
        n_lat = max(20, n // 4)
        wall_lc, _, _ = client_run(url, reqs[:n_lat], 64)
        wall_ls, _, _ = client_run(url, reqs[:10], 1)
    finally:
        server.terminate()
        server.join(5)

    rate_c, rate_s = n / wall_c, n_seq / wall_s
    ours = our_code_cpu(reqs[:min(n, 200)])
    print(f"preview PNG ~{png_kb:.0f} KiB, 5 model calls per caption, instant local server (own process)")
    print(f"concurrent (64 in flight): {n} captions in {wall_c:.2f} s = {rate_c:.0f} captions/s "
          f"({sent_c / wall_c:.0f} requests/s); client CPU {cpu_c / n * 1000:.2f} ms/caption "
          f"-> {n / cpu_c:.0f} captions per CPU-second")
    print(f"one at a time:             {n_seq} captions in {wall_s:.2f} s = {rate_s:.0f} captions/s")
    print(f"ratio concurrent / sequential: {rate_c / rate_s:.1f}x (an instant server leaves nothing to overlap)")
    print(f"server with {args.latency_ms:.0f} ms per call: concurrent {n_lat / wall_lc:.0f} captions/s vs one at a "
          f"time {10 / wall_ls:.1f} captions/s = {(n_lat / wall_lc) / (10 / wall_ls):.0f}x")
    print(f"our code alone (render + base64 + JSON bodies): {ours * 1000:.2f} ms CPU/caption "
          f"= {1 / ours:.0f} captions/s per core")
    goal = min(rate_c, n / cpu_c)
    print(f"goal >= {GOAL:.0f} captions/s from one core: {'MET' if goal >= GOAL else 'NOT MET'} ({goal:.0f})")
    if not args.no_model:
        timed = tiny_model_time()
        if timed is None:
            print("tiny model: transformers extra not installed, skipped")
        else:
            t, tokens = timed
            print(f"tiny LLaVA-Next (transformers, CPU): {t:.2f} s for one answer call ({tokens} tokens), "
                  f"~{5 * t:.1f} s per 5-call caption; our code costs {ours / (5 * t) * 100:.2f} % of that")


if __name__ == "__main__":
    main()
