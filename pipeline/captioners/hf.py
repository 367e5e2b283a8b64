"""The `transformers` backend: LLaVA-Next with Hugging Face transformers, for a machine without vLLM.

One call at a time through the processor's own chat template. There is no structured output here, so a model
that ignores the JSON instruction takes the chain's re-ask/failure path. Needs the `transformers` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.captioners.base import CaptionerError, CaptionRequest, CaptionResult
from pipeline.captioners.chain import ChatCall, ChatReply, caption_chain, run_sync
from prompts.loader import load_prompts


class TransformersCaptioner:
    """Captions with `LlavaNextForConditionalGeneration` loaded from a local folder or a cached hub id."""

    name = "transformers"

    def __init__(self, model_path: str | Path, prompt_version: str = "v1", device: str = "cpu",
                 dtype: str = "auto", prompts_root: Path | None = None) -> None:
        try:
            import torch
            from transformers import AutoProcessor, LlavaNextForConditionalGeneration
            from transformers.utils import logging as hf_logging
        except ImportError as e:
            raise CaptionerError(f"the transformers captioner needs torch and transformers ({e}); "
                                 "run: pip install -e '.[transformers]'") from None
        hf_logging.set_verbosity_error()
        self.prompts = load_prompts(prompt_version, prompts_root)
        self.prompt_version = prompt_version
        self.model = str(model_path)
        self.device = device
        self._torch = torch
        try:
            self.processor = AutoProcessor.from_pretrained(self.model)
            net: Any = LlavaNextForConditionalGeneration.from_pretrained(
                self.model, dtype=dtype if dtype == "auto" else getattr(torch, dtype))
            self.net: Any = net.to(device).eval()
        except (OSError, ValueError) as e:
            raise CaptionerError(f"cannot load a LLaVA-Next model from {self.model!r}: {str(e).splitlines()[0]}; "
                                 "pass a folder with config.json, weights and processor files") from None
        self.eos_ids = _eos_ids(self.processor, self.net)

    def caption_batch(self, requests: Sequence[CaptionRequest]) -> list[CaptionResult]:
        return [run_sync(caption_chain(self.prompts, r, self.model), self.chat) for r in requests]

    def chat(self, call: ChatCall) -> ChatReply:
        torch = self._torch
        conv: list[dict[str, Any]] = []
        if call.system:
            conv.append({"role": "system", "content": [{"type": "text", "text": call.system}]})
        conv.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": call.text}]})
        try:
            prompt = self.processor.apply_chat_template(conv, add_generation_prompt=True)
            inputs = self.processor(images=call.image.pil(), text=prompt, return_tensors="pt").to(self.device)
        except Exception as e:  # an unreadable image is this sample's problem, not the backend's
            return ChatReply(text=None, error=f"preprocessing failed: {type(e).__name__}: {e}")
        p = call.params
        sample = p.temperature > 0
        torch.manual_seed(p.seed)
        with torch.inference_mode():
            out = self.net.generate(**inputs, max_new_tokens=p.max_tokens, do_sample=sample,
                                    temperature=p.temperature if sample else None,
                                    top_p=p.top_p if sample else None, eos_token_id=self.eos_ids,
                                    pad_token_id=self.processor.tokenizer.pad_token_id)
        n_in = inputs["input_ids"].shape[1]
        new = out[0, n_in:]
        text = self.processor.decode(new, skip_special_tokens=True)
        return ChatReply(text=text, prompt_tokens=int(n_in), completion_tokens=int(new.shape[0]))

    def close(self) -> None:
        self.net = None


def _eos_ids(processor: Any, net: Any) -> list[int]:
    ids = set()
    gen = getattr(net, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    tok = processor.tokenizer
    for t in ("<|eot_id|>", tok.eos_token):
        i = tok.convert_tokens_to_ids(t) if t else None
        if isinstance(i, int) and i != tok.unk_token_id:
            ids.add(i)
    return sorted(ids)
