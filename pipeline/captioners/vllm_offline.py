"""The `vllm-offline` backend: batch inference with `vllm.LLM.chat` in this process, for one-GPU batch jobs.

Same chain and prompts as the server client; every step is one `LLM.chat` call over all samples of the batch
(all question prompts, then all answer prompts, then all captions), which keeps the GPU full without a server.
vLLM is imported lazily: the rest of the pipeline never needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.captioners.base import CaptionerError, CaptionRequest, CaptionResult
from pipeline.captioners.chain import ChatCall, ChatReply, caption_chain, run_lockstep
from prompts.loader import load_prompts


class VllmOfflineCaptioner:
    name = "vllm-offline"

    def __init__(self, model: str, prompt_version: str = "v1", max_model_len: int = 8192,
                 gpu_memory_utilization: float = 0.9, prompts_root: Path | None = None,
                 **llm_kwargs: Any) -> None:
        try:
            import vllm
            from vllm.sampling_params import SamplingParams, StructuredOutputsParams
        except ImportError as e:
            raise CaptionerError(f"the vllm-offline captioner needs vLLM ({e}): on a GPU machine run "
                                 "`pip install vllm`, or use the `vllm` captioner against a running server") from None
        self.model = model
        self.prompt_version = prompt_version
        self.prompts = load_prompts(prompt_version, prompts_root)
        self._sampling = SamplingParams
        self._structured = StructuredOutputsParams
        try:
            self.llm = vllm.LLM(model=model, max_model_len=max_model_len,
                                gpu_memory_utilization=gpu_memory_utilization,
                                limit_mm_per_prompt={"image": 1}, **llm_kwargs)
        except Exception as e:  # vLLM raises many types here; one line is enough to act on
            raise CaptionerError(f"vLLM could not load {model!r}: {type(e).__name__}: {str(e).splitlines()[0]}") \
                from None

    def _params(self, call: ChatCall) -> Any:
        p = call.params
        structured = self._structured(json=call.json_schema["schema"]) if call.json_schema else None
        return self._sampling(temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens, seed=p.seed,
                              structured_outputs=structured)

    def chat_batch(self, calls: list[ChatCall]) -> list[ChatReply]:
        if not calls:
            return []
        outputs = self.llm.chat([c.openai_messages() for c in calls], [self._params(c) for c in calls],
                                use_tqdm=False)
        replies = []
        for out in outputs:
            gen = out.outputs[0] if out.outputs else None
            replies.append(ChatReply(text=gen.text if gen else None,
                                     prompt_tokens=len(out.prompt_token_ids or []),
                                     completion_tokens=len(gen.token_ids) if gen else 0,
                                     error=None if gen else "vLLM returned no output"))
        return replies

    def caption_batch(self, requests: Sequence[CaptionRequest]) -> list[CaptionResult]:
        chains = [caption_chain(self.prompts, r, self.model) for r in requests]
        return run_lockstep(chains, self.chat_batch)

    def close(self) -> None:
        self.llm = None
