"""The vllm-offline backend (`vllm.LLM.chat`, batched per step) on the tiny model, run inside .venv-vllm.

Slow (engine start ~1-2 min on 2 cores): marked `vllm` and `slow`, skipped locally with `-m "not vllm"`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, VLLM_ENV, png_bytes

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

SCRIPT = """
import json, sys
from pathlib import Path
from pipeline.captioners.base import CaptionRequest
from pipeline.captioners.vllm_offline import VllmOfflineCaptioner

if __name__ == "__main__":  # vLLM starts its engine with spawn: the module is imported again there
    cap = VllmOfflineCaptioner(sys.argv[1], max_model_len=2048, dtype="float32")
    calls = []
    inner = cap.chat_batch
    cap.chat_batch = lambda batch: calls.append([c.step for c in batch]) or inner(batch)
    pngs = sorted(Path(sys.argv[3]).glob("*.png"))
    results = cap.caption_batch([CaptionRequest(p.stem, p.read_bytes(), ["farmland"], None) for p in pngs])
    with open(sys.argv[2], "w") as f:
        json.dump({"calls": calls, "results": [{"id": r.sample_id, "error": r.error, "q": r.questions,
                   "a": r.answers, "caption": r.caption, "pt": r.prompt_tokens, "ct": r.completion_tokens}
                   for r in results]}, f)
"""


def test_offline_batches_each_step_over_all_samples(vllm_python: Path, tiny_model_dir: Path,
                                                    tmp_path: Path) -> None:
    script, out = tmp_path / "run_offline.py", tmp_path / "out.json"
    script.write_text(SCRIPT)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        (images / f"chip{i:03d}_2024-Q2.png").write_bytes(png_bytes(i))
    env = {**os.environ, **VLLM_ENV, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([str(vllm_python), str(script), str(tiny_model_dir), str(out),
                           str(images)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(out.read_text())
    assert doc["calls"] == [["questions"] * 3, ["answer"] * 9, ["caption"] * 3]
    for r in doc["results"]:
        assert r["error"] is None, r["error"]
        assert len(r["q"]) == 3 and len(r["a"]) == 3 and r["caption"] and r["pt"] > 0 and r["ct"] > 0
    assert [r["id"] for r in doc["results"]] == [f"chip{i:03d}_2024-Q2" for i in range(3)]
