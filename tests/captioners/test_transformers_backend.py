"""The transformers backend on the tiny random LLaVA-Next (CPU): the chain always finishes.

The random model ignores the JSON instruction and transformers has no structured output, so the question step
takes the re-ask path and ends as a failure row; what the chain guarantees is asserted, not the text.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_requests

pytest.importorskip("transformers", reason="needs the transformers extra: pip install -e '.[transformers]'")

from pipeline.captioners.base import CaptionerError  # noqa: E402
from pipeline.captioners.chain import ChainImage, ChatCall  # noqa: E402
from pipeline.captioners.hf import TransformersCaptioner  # noqa: E402


@pytest.fixture(scope="module")
def captioner(tiny_model_dir: Path, short_prompts_root: Path) -> TransformersCaptioner:
    return TransformersCaptioner(tiny_model_dir, prompt_version="v1-short", prompts_root=short_prompts_root)


def test_chat_uses_the_processor_template_and_counts_tokens(captioner: TransformersCaptioner) -> None:
    (req,) = make_requests(1)
    p = captioner.prompts
    call = ChatCall(step="answer", system=p.answer.system, text="Is there water?", image=ChainImage(req.image_png),
                    params=p.answer.params)
    reply = captioner.chat(call)
    assert reply.error is None and isinstance(reply.text, str)
    assert 0 < reply.completion_tokens <= p.answer.params.max_tokens
    assert reply.prompt_tokens > 16  # the image expands to its patch tokens plus the text
    assert captioner.chat(call).text == reply.text  # seeded: reproducible


def test_chain_finishes_with_rows_for_every_sample(captioner: TransformersCaptioner) -> None:
    reqs = make_requests(2)
    results = captioner.caption_batch(reqs)
    assert [r.sample_id for r in results] == [r.sample_id for r in reqs]
    for r in results:
        assert r.model == captioner.model and r.prompt_version == "v1-short" and len(r.prompt_hash) == 64
        assert r.prompt_tokens > 0 and r.completion_tokens > 0
        if r.error is None:  # a lucky random model: then the chain is complete
            assert len(r.questions) == 3 and len(r.answers) == 3 and r.caption
        else:
            assert r.error.startswith("malformed model reply: questions:") and r.caption is None
            assert r.completion_tokens <= 2 * captioner.prompts.questions.params.max_tokens


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaptionerError, match="cannot load a LLaVA-Next model"):
        TransformersCaptioner(tmp_path / "nope")
