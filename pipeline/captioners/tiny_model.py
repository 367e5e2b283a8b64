"""Build a tiny random LLaVA-Next on disk, offline, in seconds: for tests and benchmarks of the VLM backends.

It has the real architecture (CLIP vision tower, projector, Llama text model, any-resolution tiling) and a
Llama-3-like chat template, so vLLM and transformers load it exactly as they load llava-hf/llama3-llava-next-8b-hf;
its replies are gibberish. The weights are saved in the original llava-hf key layout
(`language_model.model.*`, `vision_tower.vision_model.*`): vLLM's loader wants that, and transformers maps it.
Needs the `transformers` extra (torch, transformers, tokenizers).
"""

from __future__ import annotations

import json
from pathlib import Path

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<|eot_id|>", IMAGE_TOKEN, "<pad>"]
# The llava-hf llama3-llava-next-8b-hf template, also accepting plain-string content (system messages).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['content'] is string %}{{ message['content'] + '<|eot_id|>' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + '<|eot_id|>' }}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
_CORPUS = [
    "This is a true-colour Sentinel-2 image of an area seen from above, with fields, forest, water and roads.",
    'Reply with JSON only: {"questions": ["Is there water?", "What covers most of the area?", "Are there roads?"]}',
    "Question: Is there a river? Answer: Yes, a river crosses the image from north to south.",
    "Farmland, grassland, wetland, urban area, buildings, lake, sea, snow, ice, cloud, mountains, desert.",
    "Write one caption of one or two sentences for this image that merges these answers.",
    "0123456789 %.,:;!?-()[]{}\"' km² m",
]
MARKER = "s2cap-tiny-llava-next.json"


def build_tiny_llava_next(dest: Path, seed: int = 0, vocab_size: int = 600) -> Path:
    """Write the model, tokenizer and processor to `dest` (created) and return it. Idempotent per (seed, vocab)."""
    dest = Path(dest)
    marker = dest / MARKER
    stamp = {"seed": seed, "vocab_size": vocab_size, "layout": "llava-hf-v1"}
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return dest
    try:
        import torch
        from safetensors.torch import load_file, save_file
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import (
            CLIPVisionConfig,
            LlamaConfig,
            LlavaNextConfig,
            LlavaNextForConditionalGeneration,
            LlavaNextProcessor,
            PreTrainedTokenizerFast,
        )
    except ImportError as e:
        raise RuntimeError(f"building the tiny model needs the transformers extra ({e}); "
                           "run: pip install -e '.[transformers]'") from None
    try:
        from transformers import LlavaNextImageProcessorPil as ImageProcessor  # no torchvision needed
    except ImportError:
        from transformers import LlavaNextImageProcessor as ImageProcessor  # type: ignore[assignment]

    dest.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                  pad_token="<pad>", extra_special_tokens={"image_token": IMAGE_TOKEN})
    tok.chat_template = CHAT_TEMPLATE
    image_id = int(tok.convert_tokens_to_ids(IMAGE_TOKEN))  # type: ignore[arg-type]

    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=64)
    text = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=2, head_dim=32, vocab_size=len(tok), max_position_embeddings=4096,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    config = LlavaNextConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                             image_grid_pinpoints=pinpoints, vision_feature_layer=-2,
                             vision_feature_select_strategy="default", image_seq_length=16,
                             tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(dest)

    image_processor = ImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                     image_grid_pinpoints=pinpoints)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8,
                                   vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                                   image_token=IMAGE_TOKEN, num_additional_image_tokens=1)  # CLIP CLS
    processor.save_pretrained(dest)
    _to_llava_hf_layout(dest, load_file, save_file)
    _plain_image_processor_name(dest)
    marker.write_text(json.dumps(stamp))
    return dest


def _to_llava_hf_layout(dest: Path, load_file, save_file) -> None:  # type: ignore[no-untyped-def]
    """Rename transformers-5 keys to the original llava-hf checkpoint layout that vLLM's loader expects."""
    for path in dest.glob("*.safetensors"):
        tensors = load_file(str(path))
        renamed = {_legacy_key(k): v.contiguous() for k, v in tensors.items()}
        save_file(renamed, str(path), metadata={"format": "pt"})
    index = dest / "model.safetensors.index.json"
    if index.is_file():
        doc = json.loads(index.read_text())
        doc["weight_map"] = {_legacy_key(k): v for k, v in doc["weight_map"].items()}
        index.write_text(json.dumps(doc, indent=2))


def _legacy_key(key: str) -> str:
    for new, old in (("model.language_model.", "language_model.model."),
                     ("model.vision_tower.", "vision_tower."),
                     ("model.multi_modal_projector.", "multi_modal_projector."),
                     ("model.image_newline", "image_newline"),
                     ("lm_head.", "language_model.lm_head.")):
        if key.startswith(new):
            key = old + key[len(new):]
            break
    if key.startswith("vision_tower.") and not key.startswith("vision_tower.vision_model."):
        key = "vision_tower.vision_model." + key[len("vision_tower."):]
    return key


def _plain_image_processor_name(dest: Path) -> None:
    """Older transformers (the one vLLM pins) know the PIL processor under its plain name."""
    for name in ("preprocessor_config.json", "processor_config.json"):
        path = dest / name
        if not path.is_file():
            continue
        doc = json.loads(path.read_text())
        node = doc.get("image_processor", doc)
        if isinstance(node, dict) and str(node.get("image_processor_type", "")).endswith("Pil"):
            node["image_processor_type"] = node["image_processor_type"][:-3]
            path.write_text(json.dumps(doc, indent=2))
