"""The captioner interface every backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from overture.model import Facts


@dataclass(slots=True)
class CaptionRequest:
    sample_id: str
    image_png: bytes  # the RGB preview
    tags: list[str]
    facts: Facts | None
    # SCL class fractions over the chip (e.g. {"water": 0.12, "snow_ice": 0.0}); evidence from the pixels themselves
    scene_fractions: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class CaptionResult:
    sample_id: str
    caption: str | None
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    model: str = ""
    prompt_version: str = ""
    prompt_hash: str = ""  # sha256 of the rendered prompts of the chain (text + image hash)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # set when no usable caption came back; the sample becomes `caption_error`


class Captioner(Protocol):
    """Captions a batch. Results come back in request order; per-sample problems are results with `error`,
    never exceptions. Exceptions mean the backend itself is unusable (bad URL, server gone for good)."""

    name: str
    model: str
    prompt_version: str

    def caption_batch(self, requests: Sequence[CaptionRequest]) -> list[CaptionResult]: ...

    def close(self) -> None: ...


class CaptionerError(RuntimeError):
    """The captioner backend cannot work at all (configuration or infrastructure); fatal for the run."""
