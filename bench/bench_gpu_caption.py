"""Captioning throughput of the Llama3-LLaVA-Next-8B architecture with transformers on one CUDA GPU.

No download: the model is llava-hf/llama3-llava-next-8b-hf's architecture (Llama-3-8B text model, CLIP ViT-L/14-336
vision tower, anyres tiling, mlp2x_gelu projector) built with RANDOM weights in bf16 directly on the GPU, with the
real LLaVA-Next image processor and a byte-level BPE tokenizer trained here (the Llama-3 tokenizer is not available
offline; text token counts differ a little from the real ones, image token counts are exact). Random weights emit
random tokens, so every call generates exactly its token budget (min_new_tokens = max_new_tokens).

Measured, with the v1 prompts rendered by prompts.load_prompts("v1"):
  1. batch 1, per step of the chain: prefill latency (image + text), decode tokens/s, call latency;
  2. the whole 5-call chain (1 questions + 3 answers + 1 caption) at batch 1 (the baseline, what the
     `transformers` captioner does today: one call at a time) and at larger batches (left padding), as
     captions/hour per GPU, with peak GPU memory;
  3. the same with the v1 token budgets (256/96/160) instead of realistic reply lengths.
It prints the batched/batch-1 throughput ratio. Not run in CI (needs a CUDA GPU; exits with a message otherwise).

Torch's cuDNN attention builds a plan per new sequence length, so the first calls at unseen lengths run up to
~2x slower and repeats disagree; it is turned off by default (--sdpa no-cudnn) so repeats agree within 1 %.

Run: PYTHONPATH=. python3 bench/bench_gpu_caption.py [--batch-sizes 8,32,64] [--out results.json]   (~6 min, H100)
     PYTHONPATH=. python3 bench/bench_gpu_caption.py --quick   # batch 1 vs 8 only, ~1 min
     PYTHONPATH=. python3 bench/bench_gpu_caption.py --smoke   # tiny dims on CPU: checks the script only
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from overture.model import ClassArea, Facts, NamedFeature, RoadLength  # noqa: E402
from pipeline.captioners.base import CaptionRequest  # noqa: E402
from pipeline.captioners.tiny_model import CHAT_TEMPLATE, IMAGE_TOKEN, SPECIAL_TOKENS  # noqa: E402
from prompts import load_prompts  # noqa: E402

MODEL_ID = "llava-hf/llama3-llava-next-8b-hf"
PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
VOCAB = 128320  # the real model's embedding rows (128256 Llama-3 tokens + added ones)
STEPS = ("questions", "answer", "caption")
# Reply lengths of a working chain: a 3-question JSON, a one-sentence answer, a 1-2 sentence caption.
REALISTIC = {"questions": 60, "answer": 40, "caption": 80}
QUESTIONS = ["What type of land cover dominates this area?", "Is there a river or lake visible in the image?",
             "Are there any roads or settlements visible?"]
ANSWERS = ["Cropland in rectangular fields covers most of the area, with some patches of forest in the north.",
           "Yes, a narrow river crosses the image from the north-west to the south-east.",
           "A few roads and a small village with clustered buildings are visible near the river."]
CORPUS = [
    "This is a true-colour Sentinel-2 image of an area seen from above, with fields, forest, water and roads.",
    "The image shows farmland with rectangular fields, a river, a small town and patches of forest.",
    "Most of the area is covered by cropland; a motorway runs along the eastern edge next to a lake.",
    "Question: Is there a river? Answer: Yes, a river crosses the image from north to south.",
    "Grassland, wetland, urban area, buildings, lake, sea, snow, ice, cloud, mountains, desert, vineyard.",
    "0123456789 %.,:;!?-()[]{}\"' km² m",
]


@dataclass(frozen=True, slots=True)
class Dims:
    """Model sizes: the real 8B ones, or tiny ones for --smoke (same image geometry, so image tokens match)."""

    text_hidden: int = 4096
    text_layers: int = 32
    text_heads: int = 32
    text_kv_heads: int = 8
    text_intermediate: int = 14336
    vision_hidden: int = 1024
    vision_layers: int = 24
    vision_heads: int = 16
    vision_intermediate: int = 4096


TINY = Dims(text_hidden=64, text_layers=2, text_heads=2, text_kv_heads=1, text_intermediate=128,
            vision_hidden=64, vision_layers=2, vision_heads=2, vision_intermediate=128)


# --- inputs ---------------------------------------------------------------------------------------------------


def preview_png(i: int, size: int) -> bytes:
    """A preview-like RGB PNG (smooth fields, a river band, texture), distinct per i."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([80 + 40 * np.sin(x / (9 + i % 7)), 100 + 30 * np.cos(y / 13), 70 + 20 * np.sin((x + y) / 17)],
                    axis=-1)
    river = np.abs(y - x * 0.6 - (i % 50)) < 4
    base[river] = (40, 60, 110)
    img = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def make_requests(n: int, size: int) -> list[CaptionRequest]:
    """n samples with realistic facts (a few vary, so batched prompts differ in length and need padding)."""
    out = []
    for i in range(n):
        classes = [ClassArea("land_use", "agriculture", "farmland", 3.0e6, 0.43),
                   ClassArea("land_cover", "forest", "forest", 1.4e6, 0.2),
                   ClassArea("water", "river", "river", 2.0e5, 0.03)]
        if i % 2:
            classes.append(ClassArea("land_use", "residential", "residential", 5.0e5, 0.07))
        if i % 3 == 0:
            classes.append(ClassArea("water", "lake", "lake", 3.0e5, 0.04))
        facts = Facts(footprint_m2=6.97e6, classes=classes, building_count=120 + i, building_fraction=0.04,
                      roads=[RoadLength("primary", 2100.0), RoadLength("residential", 5300.0)],
                      named=[NamedFeature("Loire", "water", "river", "river")] if i % 4 == 0 else [])
        out.append(CaptionRequest(f"chip{i:05d}", preview_png(i, size), ["farmland", "river", "forest"], facts,
                                  {"vegetation": 0.62, "not_vegetated": 0.21, "water": 0.03}))
    return out


def step_texts(requests: list[CaptionRequest]) -> dict[str, list[tuple[str | None, str]]]:
    """(system, user text) per sample and step, rendered with the real v1 templates. The answer and caption
    steps use canned questions/answers of realistic length (a random model's own replies are gibberish)."""
    p = load_prompts("v1")
    return {
        "questions": [(p.questions.system, p.render_questions(r)) for r in requests],
        "answer": [(p.answer.system, p.render_answer(r, QUESTIONS[i % 3])) for i, r in enumerate(requests)],
        "caption": [(p.caption.system, p.render_caption(r, QUESTIONS, ANSWERS)) for r in requests],
    }


def budgets() -> dict[str, int]:
    p = load_prompts("v1")
    return {"questions": p.questions.params.max_tokens, "answer": p.answer.params.max_tokens,
            "caption": p.caption.params.max_tokens}


# --- model ----------------------------------------------------------------------------------------------------


def build_processor(corpus: list[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlavaNextProcessor, PreTrainedTokenizerFast

    try:
        from transformers import LlavaNextImageProcessor as ImageProcessor
    except ImportError:  # no torchvision
        from transformers import LlavaNextImageProcessorPil as ImageProcessor  # type: ignore[no-redef]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(corpus, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                  pad_token="<pad>", extra_special_tokens={"image_token": IMAGE_TOKEN})
    tok.padding_side = "left"
    tok.chat_template = CHAT_TEMPLATE
    image_processor = ImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                     image_grid_pinpoints=PINPOINTS, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    return LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                              vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                              image_token=IMAGE_TOKEN, num_additional_image_tokens=1)


def build_model(dims: Dims, tok: Any, device: str, dtype: Any) -> Any:
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration

    vision = CLIPVisionConfig(hidden_size=dims.vision_hidden, intermediate_size=dims.vision_intermediate,
                              num_hidden_layers=dims.vision_layers, num_attention_heads=dims.vision_heads,
                              image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
    text = LlamaConfig(hidden_size=dims.text_hidden, intermediate_size=dims.text_intermediate,
                       num_hidden_layers=dims.text_layers, num_attention_heads=dims.text_heads,
                       num_key_value_heads=dims.text_kv_heads, vocab_size=VOCAB, max_position_embeddings=8192,
                       rope_theta=500000.0, rms_norm_eps=1e-5, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    config = LlavaNextConfig(vision_config=vision, text_config=text,
                             image_token_index=int(tok.convert_tokens_to_ids(IMAGE_TOKEN)),
                             image_grid_pinpoints=PINPOINTS, projector_hidden_act="gelu", vision_feature_layer=-2,
                             vision_feature_select_strategy="default", image_seq_length=576,
                             tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaNextForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


# --- timing ---------------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, model: Any, processor: Any, texts: dict[str, list[tuple[str | None, str]]],
                 images: list[Any], device: str, sample: bool = True) -> None:
        import torch

        self.torch, self.model, self.processor, self.texts, self.images = torch, model, processor, texts, images
        self.device = device
        self.sample = sample
        self.image_id = int(processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
        self.prompts = {step: [self._prompt(s, t) for s, t in rows] for step, rows in texts.items()}

    def _prompt(self, system: str | None, text: str) -> str:
        conv: list[dict[str, Any]] = []
        if system:
            conv.append({"role": "system", "content": [{"type": "text", "text": system}]})
        conv.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]})
        return str(self.processor.apply_chat_template(conv, add_generation_prompt=True))

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def call(self, step: str, batch: int, new_tokens: int, offset: int = 0) -> dict[str, Any]:
        """One generate() over `batch` samples of one step; returns timings and token counts."""
        torch = self.torch
        idx = [(offset + i) % len(self.images) for i in range(batch)]
        t0 = time.perf_counter()
        inputs = self.processor(images=[self.images[i] for i in idx], text=[self.prompts[step][i] for i in idx],
                                padding=True, return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        t_prep = time.perf_counter() - t0
        ids = inputs["input_ids"]
        real = inputs["attention_mask"].bool()
        image_tokens = int((ids[0] == self.image_id).sum())
        prompt_tokens = real.sum(dim=1).tolist()
        kw: dict[str, Any] = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens}
        if self.sample:
            kw.update(do_sample=True, temperature=0.2, top_p=0.9)
        else:
            kw.update(do_sample=False)
        self.sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            try:
                out = self.model.generate(**inputs, **kw)
            except RuntimeError as e:  # random weights can give a degenerate distribution: fall back to greedy
                if "probability" not in str(e):
                    raise
                self.sample = False
                kw.update(do_sample=False, temperature=None, top_p=None)
                out = self.model.generate(**inputs, **kw)
        self.sync()
        t_gen = time.perf_counter() - t0
        made = int(out.shape[1] - ids.shape[1])
        if made != new_tokens:
            raise SystemExit(f"bench: generate made {made} tokens instead of {new_tokens} ({step}, batch {batch})")
        return {"step": step, "batch": batch, "new_tokens": new_tokens, "gen_s": t_gen, "prep_s": t_prep,
                "image_tokens": image_tokens, "prompt_tokens_mean": statistics.mean(prompt_tokens),
                "padded_len": int(ids.shape[1])}

    def chain(self, batch: int, lengths: dict[str, int], offset: int = 0) -> dict[str, Any]:
        """The 5 calls of the chain for `batch` samples: questions, 3 answers, caption (each one generate)."""
        calls = [self.call("questions", batch, lengths["questions"], offset)]
        calls += [self.call("answer", batch, lengths["answer"], offset + k) for k in range(3)]
        calls.append(self.call("caption", batch, lengths["caption"], offset))
        gen = sum(c["gen_s"] for c in calls)
        prep = sum(c["prep_s"] for c in calls)
        return {"batch": batch, "gen_s": gen, "prep_s": prep, "calls": calls,
                "captions_per_hour": batch * 3600.0 / gen,
                "captions_per_hour_with_prep": batch * 3600.0 / (gen + prep),
                "new_tokens_per_s": batch * sum(c["new_tokens"] for c in calls) / gen}


def peak_gib(torch: Any, device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0


def reset_peak(torch: Any, device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--batch-sizes", default="8,32,64", help="comma-separated batch sizes for the chain")
    ap.add_argument("--repeats", type=int, default=2, help="timed chain runs per batch size (median kept)")
    ap.add_argument("--preview-px", type=int, default=336, help="side of the square RGB preview")
    ap.add_argument("--sdpa", choices=("no-cudnn", "default"), default="no-cudnn",
                    help="no-cudnn: turn off torch's cuDNN attention, which builds a plan per new sequence length "
                         "(first calls at unseen lengths run ~2x slower); default: torch's own choice")
    ap.add_argument("--no-budget", action="store_true", help="skip the chain at the v1 token budgets")
    ap.add_argument("--out", type=Path, default=None, help="write all numbers as JSON here")
    ap.add_argument("--quick", action="store_true", help="batch 8 only, one repeat, no budget run (~1 min)")
    ap.add_argument("--smoke", action="store_true", help="tiny dims on CPU, short replies: checks the script")
    a = ap.parse_args(argv)
    if a.quick:
        a.batch_sizes, a.repeats, a.no_budget = "8", 1, True
    try:
        sizes = [int(s) for s in a.batch_sizes.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"bench: --batch-sizes must be integers like 8,32,64, got {a.batch_sizes!r}") from None
    if not sizes or min(sizes) < 1 or a.repeats < 1 or a.preview_px < 16:
        raise SystemExit("bench: need batch sizes >= 1, --repeats >= 1 and --preview-px >= 16")

    try:
        import torch
        import transformers
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise SystemExit(f"bench: needs torch and transformers ({e}); run it where a CUDA torch is installed") from None
    if not a.smoke and not torch.cuda.is_available():
        raise SystemExit("bench: no CUDA device here; this bench measures the 8B model on a GPU and is not run in "
                         "CI. Use --smoke to check the script on CPU with tiny dimensions.")
    hf_logging.set_verbosity_error()
    if a.sdpa == "no-cudnn":
        torch.backends.cuda.enable_cudnn_sdp(False)
    device = "cpu" if a.smoke else "cuda"
    dims = TINY if a.smoke else Dims()
    dtype = torch.float32 if a.smoke else torch.bfloat16
    lengths = {k: 3 for k in REALISTIC} if a.smoke else dict(REALISTIC)
    budget = {k: 4 for k in REALISTIC} if a.smoke else budgets()

    n = max(sizes)
    requests = make_requests(n, a.preview_px)
    texts = step_texts(requests)
    corpus = CORPUS * 4 + [t for rows in texts.values() for s, t in rows[:8]] + [texts["questions"][0][0] or ""]
    processor = build_processor(corpus)
    images = [Image.open(io.BytesIO(r.image_png)).convert("RGB") for r in requests]

    t0 = time.perf_counter()
    model = build_model(dims, processor.tokenizer, device, dtype)
    runner = Runner(model, processor, texts, images, device)
    runner.sync()
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    weights_gib = torch.cuda.memory_allocated() / 2**30 if device == "cuda" else 0.0
    gpu = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    print(f"model: {MODEL_ID} architecture, random {str(dtype).removeprefix('torch.')} weights, "
          f"{params / 1e9:.2f} B parameters, built in {build_s:.1f} s on {gpu}; weights {weights_gib:.1f} GiB",
          flush=True)

    res: dict[str, Any] = {"model": MODEL_ID, "weights": "random", "dtype": str(dtype), "device": gpu,
                           "torch": torch.__version__, "transformers": transformers.__version__,
                           "smoke": a.smoke, "sdpa": a.sdpa, "params": params, "weights_gib": weights_gib,
                           "build_s": build_s, "preview_px": a.preview_px, "lengths": lengths, "budgets": budget}

    def save() -> None:  # after every section, so a run cut short still leaves its numbers
        if a.out:
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(res, indent=2))

    tok = processor.tokenizer
    res["text_tokens"] = {step: {"ours": len(tok(rows[0][1])["input_ids"]), "chars": len(rows[0][1]),
                                 "chars_div_4": round(len(rows[0][1]) / 4)} for step, rows in texts.items()}

    # warm-up: kernels, allocator, cuBLAS handles
    runner.call("questions", 1, 4)
    runner.call("questions", min(sizes), 4)

    # 1. batch 1, per step: prefill (1 new token) and full call
    per_step = {}
    for step in STEPS:
        pre = statistics.median(runner.call(step, 1, 1)["gen_s"] for _ in range(3))
        full = [runner.call(step, 1, lengths[step]) for _ in range(2)]
        f = statistics.median(c["gen_s"] for c in full)
        per_step[step] = {"prefill_s": pre, "call_s": f, "new_tokens": lengths[step],
                          "decode_tokens_per_s": (lengths[step] - 1) / max(f - pre, 1e-9),
                          "image_tokens": full[0]["image_tokens"],
                          "prompt_tokens": full[0]["prompt_tokens_mean"], "prep_s": full[0]["prep_s"]}
        print(f"batch 1 {step:9s}: prompt {per_step[step]['prompt_tokens']:.0f} tok "
              f"({per_step[step]['image_tokens']} image), prefill {pre * 1e3:.0f} ms, "
              f"{lengths[step]} new tok in {f:.2f} s, decode {per_step[step]['decode_tokens_per_s']:.1f} tok/s",
              flush=True)
    res["batch1_steps"] = per_step
    save()

    # 2. the chain at batch 1 (baseline) and batched
    chains: dict[int, Any] = {}
    for b in [1, *[s for s in sizes if s != 1]]:
        reset_peak(torch, device)
        try:
            runner.call("questions", b, 2)  # warm-up at this shape
            runs = [runner.chain(b, lengths, offset=r) for r in range(a.repeats)]
        except torch.cuda.OutOfMemoryError:
            chains[b] = {"batch": b, "error": "CUDA out of memory"}
            print(f"batch {b}: CUDA out of memory", flush=True)
            continue
        times = [r["gen_s"] for r in runs]
        med = statistics.median(times)
        best = min(runs, key=lambda r: abs(r["gen_s"] - med))  # the calls of the run nearest the median
        best.update(gen_s=med, captions_per_hour=b * 3600.0 / med,
                    captions_per_hour_with_prep=b * 3600.0 / (med + best["prep_s"]),
                    new_tokens_per_s=b * sum(c["new_tokens"] for c in best["calls"]) / med)
        best["peak_gib"] = peak_gib(torch, device)
        best["repeats_gen_s"] = times
        chains[b] = best
        res["chain"] = {str(k): v for k, v in chains.items()}
        save()
        print(f"chain batch {b:3d}: {best['gen_s']:.2f} s model time ({best['prep_s']:.2f} s CPU preprocessing) "
              f"-> {best['captions_per_hour']:.0f} captions/h/GPU, {best['new_tokens_per_s']:.0f} new tok/s, "
              f"peak {best['peak_gib']:.1f} GiB", flush=True)
    res["chain"] = {str(k): v for k, v in chains.items()}

    # 3. the chain at the v1 token budgets (every reply as long as allowed): batch 1 and the largest batch that ran
    ok = [b for b, c in chains.items() if "error" not in c]
    if not a.no_budget:
        res["chain_budget"] = {}
        for b in sorted({1, max(ok)}):
            reset_peak(torch, device)
            try:
                c = runner.chain(b, budget)
            except torch.cuda.OutOfMemoryError:
                res["chain_budget"][str(b)] = {"batch": b, "error": "CUDA out of memory"}
                continue
            c["peak_gib"] = peak_gib(torch, device)
            res["chain_budget"][str(b)] = c
            save()
            print(f"chain batch {b:3d} at v1 budgets {budget}: {c['gen_s']:.2f} s -> "
                  f"{c['captions_per_hour']:.0f} captions/h/GPU", flush=True)
    res["sampling"] = "temperature 0.2, top_p 0.9" if runner.sample else "greedy (sampling fell back)"

    base = chains[1]["captions_per_hour"]
    best_b = max(ok, key=lambda b: chains[b]["captions_per_hour"])
    ratio = chains[best_b]["captions_per_hour"] / base
    res["ratio_best_batched_vs_batch1"] = ratio
    res["best_batch"] = best_b
    print("\n| batch | chain model s | captions/h/GPU | new tok/s | peak GiB | vs batch 1 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b, c in chains.items():
        if "error" in c:
            print(f"| {b} | {c['error']} | | | | |")
            continue
        print(f"| {b} | {c['gen_s']:.2f} | {c['captions_per_hour']:.0f} | {c['new_tokens_per_s']:.0f} | "
              f"{c['peak_gib']:.1f} | {c['captions_per_hour'] / base:.2f}x |")
    hours = 1e6 / chains[best_b]["captions_per_hour"]
    print(f"\nbatched (batch {best_b}) vs batch 1: {ratio:.1f}x captions/h; 1,000,000 captions at batch {best_b}: "
          f"{hours:.0f} GPU-hours (transformers generate, lower bound for vLLM)")
    if a.smoke:
        print("(--smoke: tiny random model on CPU; these numbers say nothing about a GPU)")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
