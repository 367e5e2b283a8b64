"""Load a prompt version (prompts/<version>/*.yaml) and render the three steps of the caption chain.

Each step file holds a Jinja2 `template`, an optional `system` text, its generation `params` and, for the
question step, a JSON-schema `response_format`. A version folder is immutable once used for a dataset: change
a template by adding a new version, so `prompt_version` in a shard always means one set of texts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from overture.model import Facts
from pipeline.captioners.base import CaptionRequest

PROMPTS_DIR = Path(__file__).resolve().parent
STEPS = ("questions", "answer", "caption")
N_QUESTIONS = 3
MIN_FACT_FRACTION = 0.01  # classes under 1 % of the footprint are noise in a prompt
MAX_FACT_LINES = 12


class PromptError(ValueError):
    """A prompt version is missing or malformed."""


@dataclass(frozen=True, slots=True)
class GenerationParams:
    temperature: float = 0.2
    top_p: float = 0.9
    max_tokens: int = 128
    seed: int = 1234

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 2.0:
            raise PromptError(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise PromptError(f"top_p must be in (0, 1], got {self.top_p}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise PromptError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not isinstance(self.seed, int):
            raise PromptError(f"seed must be an integer, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                "seed": self.seed}


@dataclass(frozen=True, slots=True)
class PromptStep:
    name: str
    system: str | None
    source: str  # the Jinja2 text, kept for the fingerprint
    template: jinja2.Template = field(repr=False, compare=False)
    params: GenerationParams
    response_format: dict[str, Any] | None = None  # {"name": ..., "schema": {...}}

    def render(self, **context: Any) -> str:
        return self.template.render(**context).strip()


@dataclass(frozen=True, slots=True)
class PromptSet:
    version: str
    questions: PromptStep
    answer: PromptStep
    caption: PromptStep
    fingerprint: str  # sha256 over the step files' meaning (templates, system texts, params, schema)

    def render_questions(self, request: CaptionRequest) -> str:
        return self.questions.render(**prompt_context(request))

    def render_answer(self, request: CaptionRequest, question: str) -> str:
        return self.answer.render(**prompt_context(request), question=question)

    def render_caption(self, request: CaptionRequest, questions: Sequence[str], answers: Sequence[str]) -> str:
        qa = [{"question": q, "answer": a} for q, a in zip(questions, answers, strict=True)]
        return self.caption.render(**prompt_context(request), qa_pairs=qa)

    def prompt_hash(self, rendered: Sequence[str], image_sha256: str) -> str:
        """sha256 over the rendered texts of the chain (in order), the version's fingerprint and the image."""
        h = hashlib.sha256()
        h.update(self.fingerprint.encode())
        for text in rendered:
            h.update(b"\x00")
            h.update(text.encode())
        h.update(b"\x00")
        h.update(image_sha256.encode())
        return h.hexdigest()


def available_versions(root: Path | None = None) -> list[str]:
    root = root or PROMPTS_DIR
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and all((p / f"{s}.yaml").is_file() for s in STEPS))


_CACHE: dict[tuple[Path, str], PromptSet] = {}


def load_prompts(version: str = "v1", root: Path | None = None) -> PromptSet:
    """The prompt set of one version (cached per process). `root` holds version folders (default: the
    packaged prompts/); a project may keep its own versions elsewhere."""
    root = Path(root) if root else PROMPTS_DIR
    if (root, version) in _CACHE:
        return _CACHE[(root, version)]
    folder = root / version
    if not version or "/" in version or not folder.is_dir():
        raise PromptError(f"unknown prompt version {version!r} in {root}; "
                          f"available: {', '.join(available_versions(root)) or 'none'}")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
    steps = {name: _load_step(env, folder / f"{name}.yaml", name) for name in STEPS}
    if steps["questions"].response_format is None:
        raise PromptError(f"{folder / 'questions.yaml'}: the question step needs a response_format JSON schema")
    fp = hashlib.sha256(json.dumps(
        {n: {"system": s.system, "template": s.source, "params": s.params.to_dict(),
             "response_format": s.response_format} for n, s in steps.items()},
        sort_keys=True).encode()).hexdigest()
    ps = PromptSet(version=version, fingerprint=fp, **steps)
    _CACHE[(root, version)] = ps
    return ps


def _load_step(env: jinja2.Environment, path: Path, name: str) -> PromptStep:
    if not path.is_file():
        raise PromptError(f"missing prompt file {path}; every version needs {', '.join(s + '.yaml' for s in STEPS)}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise PromptError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("template"), str):
        raise PromptError(f"{path}: needs a `template` string (Jinja2)")
    unknown = set(doc) - {"system", "template", "params", "response_format"}
    if unknown:
        raise PromptError(f"{path}: unknown keys {sorted(unknown)}")
    try:
        template = env.from_string(doc["template"])
    except jinja2.TemplateSyntaxError as e:
        raise PromptError(f"{path}: template syntax error at line {e.lineno}: {e.message}") from None
    params = doc.get("params") or {}
    if not isinstance(params, dict) or set(params) - {"temperature", "top_p", "max_tokens", "seed"}:
        raise PromptError(f"{path}: params may hold temperature, top_p, max_tokens, seed; got {params!r}")
    rf = doc.get("response_format")
    if rf is not None and not (isinstance(rf, dict) and isinstance(rf.get("schema"), dict) and rf.get("name")):
        raise PromptError(f"{path}: response_format needs `name` and a `schema` mapping")
    system = doc.get("system")
    return PromptStep(name=name, system=system.strip() if system else None, source=doc["template"],
                      template=template, params=GenerationParams(**params), response_format=rf)


# --- what the templates see --------------------------------------------------------------------------------


def _words(*parts: str) -> str:
    seen: list[str] = []
    for p in parts:
        w = (p or "").replace("_", " ").strip()
        if w and w not in seen:
            seen.append(w)
    return " / ".join(seen) or "unknown"


def _pct(f: float) -> str:
    return f"{f * 100:.0f} %" if f >= 0.01 else "<1 %"


def facts_lines(facts: Facts | None) -> list[str]:
    """Plain-language lines for the prompt, largest classes first; empty when there are no facts."""
    if facts is None:
        return []
    lines = [f"{_words(c.type, c.cls)}: {_pct(c.fraction)} of the area"
             for c in sorted(facts.classes, key=lambda c: -c.fraction) if c.fraction >= MIN_FACT_FRACTION]
    if facts.building_count:
        lines.append(f"buildings: {facts.building_count} ({_pct(facts.building_fraction)} of the area)")
    roads = sorted(facts.roads, key=lambda r: -r.length_m)
    if roads:
        lines.append("roads: " + ", ".join(f"{_words(r.cls)} {r.length_m / 1000:.1f} km" for r in roads[:4]))
    for n in facts.named[:3]:
        lines.append(f"named: {n.name} ({_words(n.cls or n.subtype or n.type)})")
    return lines[:MAX_FACT_LINES]


def scene_lines(fractions: dict[str, float]) -> list[str]:
    return [f"{_words(k)}: {_pct(v)}" for k, v in sorted(fractions.items(), key=lambda kv: -kv[1])
            if v >= MIN_FACT_FRACTION]


def prompt_context(request: CaptionRequest) -> dict[str, Any]:
    area_km2 = request.facts.footprint_m2 / 1e6 if request.facts and request.facts.footprint_m2 else None
    return {
        "area_km2": f"{area_km2:.1f}" if area_km2 else "7",  # SSL4EO-S12 chips: 2.64 km square
        "tags": list(request.tags),
        "facts_lines": facts_lines(request.facts),
        "scene_lines": scene_lines(request.scene_fractions),
    }
