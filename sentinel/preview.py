"""RGB previews (B04, B03, B02) for the captioner and the dataset.

Default stretch, "fixed": reflectance 0 .. 0.30 (DN 0 .. 3000) mapped linearly to 0 .. 1, clipped, then raised to
the power `gamma` = 1/1.8. A fixed range keeps brightness comparable across chips (a snowfield stays white and a
lake stays dark, which a caption should be able to say); the 1/1.8 power lifts the dark land surfaces (vegetation
reflects 0.02-0.08 in the visible) out of the shadows, close to how true-colour products are usually shown.
"percentile": per chip, the p_low .. p_high percentiles of the valid pixels of all three bands together (one range
for the three, so hues are kept) are mapped to 0 .. 1 before the same gamma: more contrast for dull scenes, but
absolute brightness is lost. Nodata pixels (0 in all three bands) are black.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from sentinel.bands import BAND_INDEX, BAND_NAMES, RGB_BANDS

STRETCHES = ("fixed", "percentile")


@dataclass
class PreviewConfig:
    stretch: str = "fixed"
    vmin: float = 0.0  # DN (reflectance x 10000) shown black, fixed stretch
    vmax: float = 3000.0  # DN shown white, fixed stretch
    gamma: float = 1 / 1.8  # exponent on the stretched 0..1 value; < 1 brightens dark tones
    p_low: float = 2.0
    p_high: float = 98.0
    size: int = 336  # PNG side in pixels (LLaVA-Next's CLIP-L/336 tile)
    bands: tuple[str, str, str] = RGB_BANDS

    def __post_init__(self) -> None:
        if self.stretch not in STRETCHES:
            raise ValueError(f"preview stretch {self.stretch!r}: use one of {', '.join(STRETCHES)}")
        if not self.vmax > self.vmin:
            raise ValueError(f"preview vmin {self.vmin} / vmax {self.vmax}: vmax must be greater than vmin")
        if not self.gamma > 0:
            raise ValueError(f"preview gamma {self.gamma}: must be positive")
        if not 0 <= self.p_low < self.p_high <= 100:
            raise ValueError(f"preview percentiles {self.p_low} / {self.p_high}: need 0 <= p_low < p_high <= 100")
        if not 8 <= self.size <= 4096:
            raise ValueError(f"preview size {self.size}: must be between 8 and 4096 pixels")
        self.bands = tuple(self.bands)  # type: ignore[assignment]
        unknown = [b for b in self.bands if b not in BAND_INDEX]
        if len(self.bands) != 3 or unknown:
            raise ValueError(f"preview bands {self.bands}: give three of {', '.join(BAND_NAMES)}")

    def to_json(self) -> str:
        """The rendering parameters, for provenance (stored beside each preview)."""
        d = asdict(self)
        d["bands"] = list(self.bands)
        d["gamma"] = round(self.gamma, 6)
        return json.dumps(d, sort_keys=True)


def render_rgb(data: np.ndarray, cfg: PreviewConfig | None = None) -> np.ndarray:
    """(H, W, 3) uint8 from a (12, H, W) chip in BAND_NAMES order (or a (3, H, W) stack already in RGB order)."""
    cfg = cfg or PreviewConfig()
    if data.ndim != 3 or data.shape[0] not in (3, len(BAND_NAMES)):
        raise ValueError(f"chip data has shape {data.shape}: expected (12, H, W) in BAND_NAMES order or (3, H, W)")
    rgb = data if data.shape[0] == 3 else data[[BAND_INDEX[b] for b in cfg.bands]]
    rgb = rgb.astype(np.float32)
    nodata = (rgb == 0).all(axis=0)
    if cfg.stretch == "fixed":
        lo, hi = cfg.vmin, cfg.vmax
    else:
        valid = rgb[:, ~nodata]
        if valid.size:
            lo, hi = (float(v) for v in np.percentile(valid, [cfg.p_low, cfg.p_high]))
        else:
            lo, hi = cfg.vmin, cfg.vmax
        hi = max(hi, lo + 1.0)
    x = np.clip((rgb - lo) / (hi - lo), 0.0, 1.0) ** cfg.gamma
    out = np.round(x * 255.0).astype(np.uint8).transpose(1, 2, 0)
    out[nodata] = 0
    return np.ascontiguousarray(out)


def png_bytes(rgb: np.ndarray, size: int | None = None) -> bytes:
    """PNG of an (H, W, 3) uint8 image, resized (bicubic) to size x size when given."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image of shape {rgb.shape} and dtype {rgb.dtype}: expected (H, W, 3) uint8")
    img = Image.fromarray(rgb)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
