"""OpenCLIP models with the patch embedding widened from RGB to N Sentinel-2 bands.

The first 3-channel convolution of the vision tower (ViT `conv1`, ResNet stem, timm patch embedding)
becomes an N-channel one: its R, G and B kernels go to the B04, B03 and B02 positions and every other
channel starts at zero, so on input whose non-RGB channels are zero the widened model computes exactly what
the RGB model computes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

from pipeline.errors import InputError
from sentinel.bands import RGB_BANDS

TINY = "tiny"
# A small ViT and text tower for tests and smoke runs: seconds on a CPU, the real BPE tokenizer.
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
S2CAP_CHECKPOINT_KEY = "s2cap_training"


def _is_s2cap_checkpoint(path: str | None) -> bool:
    return (
        bool(path)
        and Path(str(path)).is_file()
        and Path(str(path)).suffix == ".pt"
        and _peek(Path(str(path)))
    )


def _peek(path: Path) -> bool:
    try:
        return S2CAP_CHECKPOINT_KEY in torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # noqa: BLE001 - not ours (an OpenCLIP checkpoint, or unreadable): let open_clip judge it
        return False


def create_rgb_model(name: str, pretrained: str | None = None) -> tuple[nn.Module, Any]:
    """(RGB CLIP model, tokenizer) for an OpenCLIP model name or 'tiny'; `pretrained` is None (random), a
    local
    OpenCLIP checkpoint file, or an OpenCLIP pretrained tag (needs the network the first time)."""
    if name == TINY:
        if pretrained:
            raise InputError("model 'tiny' has no pretrained weights: leave pretrained empty")
        torch_model = open_clip.CLIP(**copy.deepcopy(TINY_CONFIG))
        tokenizer = open_clip.tokenizer.SimpleTokenizer(
            context_length=TINY_CONFIG["text_cfg"]["context_length"]
        )
        return torch_model, tokenizer
    if name not in open_clip.list_models():
        raise InputError(
            f"model {name!r} is not an OpenCLIP model: use 'tiny' or one of open_clip.list_models(), "
            "e.g. ViT-B-16"
        )
    try:
        torch_model = open_clip.create_model(name, pretrained=pretrained or None)
    except Exception as e:  # noqa: BLE001 - download and checkpoint errors come in many types
        raise InputError(
            f"pretrained={pretrained!r} for {name}: could not load it "
            f"({type(e).__name__}: {str(e)[:200]}); give a "
            "local OpenCLIP checkpoint file, or an OpenCLIP tag (e.g. laion2b_s34b_b88k) while online"
        ) from None
    return torch_model, open_clip.get_tokenizer(name)


def find_patch_embedding(visual: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """(parent module, attribute name, conv) of the vision tower's first convolution that takes 3 channels."""
    for parent in visual.modules():
        for attr, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                return parent, attr, child
    raise InputError(f"vision tower {type(visual).__name__} has no 3-channel input convolution to widen")


def widen_patch_embedding(model: nn.Module, bands: Sequence[str]) -> nn.Module:
    """Widen the model's input convolution (in place) from RGB to `bands`: RGB kernels to B04/B03/B02,
    others 0."""
    bands = [b.upper() for b in bands]
    missing = [b for b in RGB_BANDS if b not in bands]
    if missing:
        raise InputError(
            f"bands {bands} lack {missing}: the RGB kernels need B04, B03 and B02 to be copied to"
        )
    parent, attr, conv = find_patch_embedding(model.visual)
    wide = nn.Conv2d(
        len(bands),
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
        conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        wide.weight.zero_()
        for rgb_channel, band in enumerate(RGB_BANDS):
            wide.weight[:, bands.index(band)] = conv.weight[:, rgb_channel]
        if conv.bias is not None:
            wide.bias.copy_(conv.bias)
    setattr(parent, attr, wide)
    model.s2cap_bands = tuple(bands)  # type: ignore[assignment]
    return model


def patch_embedding_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the widened input convolution (they get their own learning rate)."""
    for parent in model.visual.modules():
        for child in parent.children():
            if isinstance(child, nn.Conv2d):
                return list(child.parameters())
    raise InputError("the model has no input convolution")


def build_model(name: str, bands: Sequence[str], pretrained: str | None = None) -> tuple[nn.Module, Any]:
    """(widened CLIP, tokenizer). `pretrained` may also be an s2cap training checkpoint: its widened
    weights load."""
    if _is_s2cap_checkpoint(pretrained):
        return load_checkpoint_model(Path(str(pretrained)))[:2]
    model, tokenizer = create_rgb_model(name, pretrained)
    return widen_patch_embedding(model, bands), tokenizer


def load_checkpoint_model(path: Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(model, tokenizer, checkpoint dict) of an s2cap training checkpoint, on the CPU, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist: give a .pt file written by `train`")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if S2CAP_CHECKPOINT_KEY not in ckpt:
        raise InputError(f"{path} is not an s2cap training checkpoint (no {S2CAP_CHECKPOINT_KEY!r} entry)")
    info = ckpt[S2CAP_CHECKPOINT_KEY]
    model, tokenizer = create_rgb_model(info["model"], None)
    widen_patch_embedding(model, info["bands"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), tokenizer, ckpt


def image_size_of(model: nn.Module) -> int:
    size = getattr(model.visual, "image_size", 224)
    return int(size[0] if isinstance(size, tuple | list) else size)


@torch.no_grad()
def check_widened_equivalence(
    rgb_model: nn.Module,
    widened: nn.Module,
    bands: Sequence[str],
    rgb_images: torch.Tensor | None = None,
    atol: float = 1e-5,
) -> float:
    """Max |difference| of image embeddings: the RGB model on (B, 3, H, W) images (R, G, B channels; random
    when
    None) vs the widened model on the same bands placed at B04/B03/B02 and zeros elsewhere. Raises above
    atol."""
    size = image_size_of(rgb_model)
    if rgb_images is None:
        rgb_images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    if rgb_images.ndim != 4 or rgb_images.shape[1] != 3:
        raise InputError(f"rgb_images has shape {tuple(rgb_images.shape)}: expected (B, 3, H, W)")
    bands = [b.upper() for b in bands]
    wide_in = torch.zeros(rgb_images.shape[0], len(bands), *rgb_images.shape[2:], dtype=rgb_images.dtype)
    for rgb_channel, band in enumerate(RGB_BANDS):
        wide_in[:, bands.index(band)] = rgb_images[:, rgb_channel]
    rgb_model.eval()
    widened.eval()
    diff = (rgb_model.encode_image(rgb_images) - widened.encode_image(wide_in)).abs().max().item()
    if diff > atol:
        raise AssertionError(
            f"widened model differs from the RGB model by {diff:.3g} (> {atol}) on RGB-only input"
        )
    return diff
