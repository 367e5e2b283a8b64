"""Evaluate multispectral CLIP checkpoints: zero-shot classification on an ImageFolder of GeoTIFFs, retrieval
mAP@100 on shards, and a Markdown report comparing checkpoints.

ImageFolder layout (EuroSAT-MS): ROOT/<class>/*.tif. Band names come from the file's band descriptions when
they are valid; otherwise 13-band files are read in EuroSAT-MS order (B01..B09, B10, B11, B12, B8A; B10 is
dropped) and 12-band files in the L2A order of the shards. `band_order` overrides both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import rasterio
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import InputError
from sentinel.bands import BAND_NAMES
from training.data import BandStats, ShardDataset, chip_tensor
from training.model import image_size_of, load_checkpoint_model

# EuroSAT-MS GeoTIFFs store B8A last, after B12 (the 13 L1C bands incl. B10).
EUROSAT_MS_ORDER: tuple[str, ...] = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B09",
    "B10",
    "B11",
    "B12",
    "B8A",
)
L2A_ORDER: tuple[str, ...] = BAND_NAMES
KNOWN = set(EUROSAT_MS_ORDER)
TEMPLATES: tuple[str, ...] = (
    "a satellite image of {}.",
    "a Sentinel-2 satellite image of {}.",
    "an aerial view of {}.",
    "a satellite photo of an area of {}.",
)
IMAGE_SUFFIXES = (".tif", ".tiff")


def class_phrase(name: str) -> str:
    """'AnnualCrop' -> 'annual crop', 'snow_ice' -> 'snow ice', 'HerbaceousVegetation' -> 'herbaceous
    vegetation'."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ")
    return " ".join(spaced.lower().split())


def _band_name(description: str) -> str:
    """'B8' -> 'B08', 'B08A' -> 'B8A', 'b11' -> 'B11'."""
    m = re.fullmatch(r"B0?(\d{1,2})(A?)", description.strip().upper())
    if not m:
        return description.strip().upper()
    return f"B{int(m.group(1))}A" if m.group(2) else f"B{int(m.group(1)):02d}"


def file_band_names(
    descriptions: Sequence[str | None], count: int, band_order: Sequence[str] | None = None
) -> list[str]:
    if band_order is not None:
        if len(band_order) != count:
            raise InputError(f"band_order has {len(band_order)} names but the file has {count} bands")
        return [b.upper() for b in band_order]
    names = [_band_name(d or "") for d in descriptions]
    if all(n in KNOWN for n in names) and len(set(names)) == count:
        return names
    if count == 13:
        return list(EUROSAT_MS_ORDER)
    if count == 12:
        return list(L2A_ORDER)
    raise InputError(
        f"a GeoTIFF with {count} bands and no band descriptions: give band_order=[...] "
        "(13 EuroSAT-MS or 12 L2A bands are recognised)"
    )


def read_geotiff(path: Path, band_order: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(bands-first array, band names) of a multispectral GeoTIFF."""
    try:
        with rasterio.open(path) as src:
            return src.read(), file_band_names(src.descriptions, src.count, band_order)
    except rasterio.errors.RasterioIOError as e:
        raise InputError(f"{path}: not a readable GeoTIFF ({e})") from None


def image_folder(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """(sorted class names, [(file, class index)]) of ROOT/<class>/*.tif."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder: give an ImageFolder root (ROOT/<class>/*.tif)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    items = [
        (f, i)
        for i, c in enumerate(classes)
        for f in sorted((root / c).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if len(classes) < 2 or not items:
        raise InputError(
            f"{root}: need >= 2 class folders holding .tif files, found {len(classes)} classes and "
            f"{len(items)} files"
        )
    return classes, items


@torch.no_grad()
def text_classifier(
    model: nn.Module, tokenizer: Any, classes: Sequence[str], templates: Sequence[str] = TEMPLATES
) -> torch.Tensor:
    """(n_classes, dim) unit vectors: the mean normalised text embedding of each class over the templates."""
    weights = []
    for c in classes:
        emb = F.normalize(
            model.encode_text(tokenizer([t.format(class_phrase(c)) for t in templates])), dim=-1
        )
        weights.append(F.normalize(emb.mean(0), dim=-1))
    return torch.stack(weights)


@dataclass
class ZeroShotResult:
    classes: list[str]
    accuracy: float
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    per_class_accuracy: dict[str, float | None]
    predictions: list[tuple[str, str, str]] = field(default_factory=list)  # (file, true, predicted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "accuracy": self.accuracy,
            "confusion": self.confusion,
            "per_class_accuracy": self.per_class_accuracy,
            "predictions": self.predictions,
        }


@torch.no_grad()
def zero_shot(
    model: nn.Module,
    tokenizer: Any,
    root: Path,
    bands: Sequence[str],
    stats: BandStats,
    templates: Sequence[str] = TEMPLATES,
    band_order: Sequence[str] | None = None,
    batch_size: int = 32,
    classes: Sequence[str] | None = None,
) -> ZeroShotResult:
    """Zero-shot accuracy and confusion matrix of `model` on ROOT/<class>/*.tif (class names from the
    folders, or
    `classes` in folder order to phrase them differently)."""
    folder_classes, items = image_folder(root)
    names = list(classes) if classes is not None else folder_classes
    if len(names) != len(folder_classes):
        raise InputError(f"classes has {len(names)} names for {len(folder_classes)} class folders")
    model.eval()
    size = image_size_of(model)
    device = next(model.parameters()).device
    weights = text_classifier(model, tokenizer, names, templates).to(device)
    preds: list[int] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        images = []
        for path, _ in chunk:
            arr, file_bands = read_geotiff(path, band_order)
            images.append(chip_tensor(arr, file_bands, bands, stats, size))
        feats = F.normalize(model.encode_image(torch.stack(images).to(device)), dim=-1)
        preds += (feats @ weights.T).argmax(-1).tolist()
    n = len(folder_classes)
    confusion = np.zeros((n, n), np.int64)
    for (_, true), pred in zip(items, preds, strict=True):
        confusion[true, pred] += 1
    per_class = {
        c: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None)
        for i, c in enumerate(folder_classes)
    }
    return ZeroShotResult(
        classes=folder_classes,
        accuracy=float(np.trace(confusion) / confusion.sum()),
        confusion=confusion.tolist(),
        per_class_accuracy=per_class,
        predictions=[
            (str(p), folder_classes[t], folder_classes[k]) for (p, t), k in zip(items, preds, strict=True)
        ],
    )


def average_precision_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = 100) -> np.ndarray:
    """AP@k per query row: `scores` (Q, N), `relevant` (Q, N) bool; normalised by min(#relevant, k)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    rel = np.take_along_axis(relevant, order, axis=1).astype(np.float64)
    precision = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    denom = np.minimum(relevant.sum(axis=1), k)
    return np.where(denom > 0, (precision * rel).sum(axis=1) / np.maximum(denom, 1), 0.0)


@torch.no_grad()
def embed_shards(
    model: nn.Module,
    tokenizer: Any,
    runs: Sequence[Path],
    bands: Sequence[str],
    stats: BandStats,
    batch_size: int = 32,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(image embeddings, text embeddings, captions) of the kept rows of `runs`, unit-normalised, in shard
    order."""
    model.eval()
    device = next(model.parameters()).device
    ds = ShardDataset(list(runs), tokenizer, stats, bands, image_size_of(model), batch_size, shuffle=False)
    imgs, txts, captions = [], [], []
    for batch in ds:
        imgs.append(F.normalize(model.encode_image(batch["image"].to(device)), dim=-1).cpu())
        txts.append(F.normalize(model.encode_text(batch["text"].to(device)), dim=-1).cpu())
        captions += _captions(ds, batch["id"])
        if limit is not None and len(captions) >= limit:
            break
    n = len(captions) if limit is None else min(limit, len(captions))
    return torch.cat(imgs)[:n], torch.cat(txts)[:n], captions[:n]


def _captions(ds: ShardDataset, ids: list[str]) -> list[str]:
    cache = getattr(ds, "_caption_by_id", None)
    if cache is None:
        cache = {}
        for path in sorted({u.path for u in ds.units}):
            t = pq.read_table(path, columns=["id", "caption"])
            cache.update(zip(t.column("id").to_pylist(), t.column("caption").to_pylist(), strict=True))
        ds._caption_by_id = cache  # type: ignore[attr-defined]
    return [cache[i] or "" for i in ids]


@torch.no_grad()
def retrieval_map(
    model: nn.Module,
    tokenizer: Any,
    runs: Sequence[Path],
    bands: Sequence[str],
    stats: BandStats,
    k: int = 100,
    batch_size: int = 32,
    limit: int | None = None,
) -> dict[str, float]:
    """Image->text and text->image mAP@k over the kept rows; a caption counts as relevant to every image that
    has the identical caption text (template captions repeat)."""
    img, txt, captions = embed_shards(model, tokenizer, runs, bands, stats, batch_size, limit)
    codes = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    cid = np.array([codes[c] for c in captions])
    relevant = cid[:, None] == cid[None, :]
    sims = (img @ txt.T).numpy()
    return {
        "image_to_text": float(average_precision_at_k(sims, relevant, k).mean()),
        "text_to_image": float(average_precision_at_k(sims.T, relevant.T, k).mean()),
        "n": len(captions),
        "k": k,
    }


def evaluate_checkpoint(
    checkpoint: Path,
    image_folder_root: Path | None = None,
    runs: Sequence[Path] = (),
    k: int = 100,
    band_order: Sequence[str] | None = None,
    templates: Sequence[str] = TEMPLATES,
) -> dict[str, Any]:
    """Zero-shot (when an ImageFolder is given) and retrieval (when runs are given) metrics of a
    checkpoint."""
    model, tokenizer, ckpt = load_checkpoint_model(Path(checkpoint))
    info = ckpt["s2cap_training"]
    stats = BandStats.from_dict(info["stats"])
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "model": info["model"],
        "step": info["step"],
        "bands": info["bands"],
    }
    if image_folder_root is not None:
        result["zero_shot"] = zero_shot(
            model, tokenizer, Path(image_folder_root), info["bands"], stats, templates, band_order
        ).to_dict()
    if runs:
        result["retrieval"] = retrieval_map(
            model, tokenizer, [Path(r) for r in runs], info["bands"], stats, k
        )
    return result


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def markdown_report(results: Sequence[dict[str, Any]], title: str = "Checkpoint comparison") -> str:
    """A Markdown table (one row per checkpoint) plus each zero-shot confusion matrix."""
    k = next((r["retrieval"]["k"] for r in results if "retrieval" in r), 100)
    lines = [
        f"# {title}",
        "",
        f"| checkpoint | model | step | bands | zero-shot acc % | i->t mAP@{k} % | t->i mAP@{k} % |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        zs, rt = r.get("zero_shot"), r.get("retrieval")
        lines.append(
            f"| {Path(r['checkpoint']).name} | {r['model']} | {r['step']} | {len(r['bands'])} | "
            f"{_pct(zs['accuracy'] if zs else None)} | {_pct(rt['image_to_text'] if rt else None)} | "
            f"{_pct(rt['text_to_image'] if rt else None)} |"
        )
    for r in results:
        zs = r.get("zero_shot")
        if not zs:
            continue
        lines += [
            "",
            f"## Confusion matrix: {Path(r['checkpoint']).name} (rows true, columns predicted)",
            "",
            "| true \\ predicted | " + " | ".join(zs["classes"]) + " |",
            "|---|" + "---:|" * len(zs["classes"]),
        ]
        for c, row in zip(zs["classes"], zs["confusion"], strict=True):
            lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def compare_checkpoints(
    checkpoints: Sequence[Path],
    out: Path,
    image_folder_root: Path | None = None,
    runs: Sequence[Path] = (),
    k: int = 100,
    band_order: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate each checkpoint and write OUT (Markdown) and OUT with .json (the raw metrics)."""
    if image_folder_root is None and not runs:
        raise InputError("nothing to evaluate: give an ImageFolder root, shard runs, or both")
    results = [evaluate_checkpoint(Path(c), image_folder_root, runs, k, band_order) for c in checkpoints]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown_report(results))
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    return results
