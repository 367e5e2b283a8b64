"""The `facts` captioner: deterministic questions, answers and a caption written from Overture facts and the
chip's own scene classification. No model weights; it is the offline default and the baseline that VLM captions
are compared with. It states only what the facts or the pixels support, so it never hallucinates by design.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from overture.model import ClassArea, Facts
from pipeline.captioners.base import CaptionRequest, CaptionResult

PROMPT_VERSION = "facts-v1"
QUESTIONS = (
    "What covers most of this area?",
    "Is there water in the image?",
    "Are there buildings or roads?",
)
MIN_FRACTION = 0.03  # classes below 3 % of the footprint are not worth a word
SCENE_WORDS = {"vegetation": "vegetation", "not_vegetated": "non-vegetated ground", "water": "water",
               "snow_ice": "snow and ice", "cloud": "cloud"}
_TEMPLATE_HASH = hashlib.sha256(("|".join(QUESTIONS) + PROMPT_VERSION).encode()).hexdigest()


def _label(c: ClassArea) -> str:
    from overture.tags import plain_word

    return plain_word(c.type, c.subtype, c.cls)


def _pct(f: float) -> str:
    return f"{round(f * 100):d} %"


def _areas(facts: Facts | None) -> list[tuple[str, float]]:
    """(plain word, fraction) merged by word, largest first, excluding water (answered on its own)."""
    if facts is None:
        return []
    merged: dict[str, float] = {}
    for c in facts.classes:
        if c.type == "water":
            continue
        merged[_label(c)] = min(1.0, merged.get(_label(c), 0.0) + c.fraction)
    return sorted(((w, f) for w, f in merged.items() if f >= MIN_FRACTION), key=lambda t: -t[1])


def _water(facts: Facts | None, scene: dict[str, float]) -> tuple[str, str | None]:
    names = [n for n in (facts.named if facts else []) if n.type == "water"]
    frac = facts.fraction("water") if facts else 0.0
    if frac >= 0.005 or names:
        kinds = sorted({_label(c) for c in (facts.classes if facts else []) if c.type == "water"})
        kind = " and ".join(kinds) or "water"
        if names:
            named = ", ".join(f"{n.name}" for n in names[:2])
            return f"Yes: {named} ({kind}), about {_pct(frac)} of the area.", f"{named}"
        return f"Yes: {kind}, about {_pct(frac)} of the area.", kind
    if scene.get("water", 0.0) >= 0.02:
        return f"Yes: about {_pct(scene['water'])} of the pixels are classified as water.", "some water"
    return "No water is mapped or visible.", None


def _built(facts: Facts | None) -> tuple[str, str | None]:
    if facts is None or (facts.building_count == 0 and not facts.roads):
        return "No buildings or roads are mapped here.", None
    parts, phrase = [], []
    if facts.building_count:
        parts.append(f"{facts.building_count} buildings cover {_pct(facts.building_fraction)} of the area")
        phrase.append(f"{facts.building_count} buildings")
    km = sum(r.length_m for r in facts.roads) / 1000.0
    if km > 0:
        top = max(facts.roads, key=lambda r: r.length_m).cls.replace("_", " ")
        parts.append(f"{km:.1f} km of roads run through it, mostly {top} roads")
        phrase.append(f"{top} roads")  # lengths stay in the answer: a sum can exceed the chip's 2.64 km width
    places = [n.name for n in facts.named if n.type == "place"]
    if places:
        parts.append(f"the mapped places include {', '.join(places[:3])}")
    return ("Yes: " + "; ".join(parts) + ".", " and ".join(phrase))


def _dominant(facts: Facts | None, scene: dict[str, float]) -> tuple[str, str]:
    areas = _areas(facts)
    if areas:
        answer = "Mostly " + ", then ".join(f"{w} (about {_pct(f)})" for w, f in areas[:3]) + "."
        return answer, " and ".join(w for w, _ in areas[:2])
    seen = sorted(((SCENE_WORDS[k], v) for k, v in scene.items() if k in SCENE_WORDS and v >= 0.1),
                  key=lambda t: -t[1])
    if seen:
        answer = ("No land use or land cover is mapped here; the pixels are mostly "
                  + ", then ".join(f"{w} (about {_pct(f)})" for w, f in seen[:2]) + ".")
        return answer, " and ".join(w for w, _ in seen[:2])
    return "No land use or land cover is mapped here.", "unmapped land"


def _pixels(scene: dict[str, float]) -> str:
    seen = sorted(((SCENE_WORDS[k], v) for k, v in scene.items() if k in SCENE_WORDS and v >= 0.05),
                  key=lambda t: -t[1])[:2]
    if not seen:
        return ""
    first = f"{seen[0][0]} covers about {_pct(seen[0][1])}"
    return first if len(seen) == 1 else f"{first} and {seen[1][0]} about {_pct(seen[1][1])}"


def caption_one(req: CaptionRequest) -> CaptionResult:
    a1, dominant = _dominant(req.facts, req.scene_fractions)
    a2, water = _water(req.facts, req.scene_fractions)
    a3, built = _built(req.facts)
    caption = f"A Sentinel-2 satellite image of an area covered mostly by {dominant}"
    extras = [x for x in (water, built) if x]
    if extras:
        caption += ", with " + " and ".join(extras)
    caption += "."
    pixels = _pixels(req.scene_fractions)
    if pixels:  # what this acquisition shows differs by season even where the map does not
        caption += f" In this acquisition {pixels} of the pixels."
    facts_json = json.dumps(req.facts.to_dict() if req.facts else None, sort_keys=True)
    digest = hashlib.sha256(
        (_TEMPLATE_HASH + facts_json + json.dumps(req.scene_fractions, sort_keys=True)).encode()
    ).hexdigest()
    return CaptionResult(
        sample_id=req.sample_id, caption=caption, questions=list(QUESTIONS), answers=[a1, a2, a3],
        model="facts", prompt_version=PROMPT_VERSION, prompt_hash=digest,
    )


class FactsCaptioner:
    name = "facts"
    model = "facts"
    prompt_version = PROMPT_VERSION

    def caption_batch(self, requests: Sequence[CaptionRequest]) -> list[CaptionResult]:
        return [caption_one(r) for r in requests]

    def close(self) -> None:
        return None
