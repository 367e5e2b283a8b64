"""Rating files: one `ratings/<rater>.json` per rater in an exported validation folder.

Layout (version 1)::

    {"version": 1, "rater": "alice", "position": "<sample id last viewed>", "updated": "<ISO time>",
     "ratings": {"<sample id>": {"completeness": "Good" | null,
                                 "spans": [{"start": 4, "end": 9, "text": "river"}],
                                 "comment": "", "updated": "<ISO time>"}}}

Spans are [start, end) offsets in Unicode code points into the sample's caption, with the marked text. The
number of hallucinations of a caption is the number of spans. A sample counts as rated once it has a
completeness value. Every save rewrites the whole file atomically (temporary name, then rename).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.shards import write_text_atomic

FORMAT_VERSION = 1
SCALE: tuple[str, ...] = ("Excellent", "Good", "Average", "Below Average", "Poor", "Terrible")
HALLUCINATION_BUCKETS: tuple[str, ...] = ("0", "1", "2", "3+")
RATINGS_DIR = "ratings"
SAMPLES_FILE = "samples.json"
MAX_COMMENT = 5000
_RATER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class RatingFileError(InputError):
    """A rating file (or a rating sent by the page) not in the format; the message names file and problem."""


def check_rater(name: str) -> str:
    if not isinstance(name, str) or not _RATER.match(name):
        raise InputError(
            f"rater name {name!r}: use 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit "
            "(it becomes the file name ratings/<rater>.json)"
        )
    return name


def hallucination_bucket(count: int) -> str:
    return HALLUCINATION_BUCKETS[min(count, 3)]


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class Span:
    start: int
    end: int
    text: str


@dataclass(slots=True)
class Rating:
    completeness: str | None = None
    spans: list[Span] = field(default_factory=list)
    comment: str = ""
    updated: str | None = None

    @property
    def rated(self) -> bool:
        return self.completeness is not None

    @property
    def score(self) -> int | None:
        """Index on `SCALE` (0 = Excellent), or None while not rated."""
        return None if self.completeness is None else SCALE.index(self.completeness)

    @property
    def hallucinations(self) -> int:
        return len(self.spans)

    def to_dict(self) -> dict[str, Any]:
        return {
            "completeness": self.completeness,
            "spans": [{"start": s.start, "end": s.end, "text": s.text} for s in self.spans],
            "comment": self.comment,
            "updated": self.updated,
        }


@dataclass(slots=True)
class RaterFile:
    rater: str
    ratings: dict[str, Rating] = field(default_factory=dict)
    position: str | None = None
    updated: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "rater": self.rater,
            "position": self.position,
            "updated": self.updated,
            "ratings": {sid: r.to_dict() for sid, r in self.ratings.items()},
        }


# --- parsing with clear errors ------------------------------------------------------------------------------


def parse_rating(raw: Any, caption: str, where: str) -> Rating:
    """One rating dict checked against its caption; `where` prefixes errors ("ratings/a.json: sample x")."""
    if not isinstance(raw, dict):
        raise RatingFileError(f"{where}: a rating must be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"completeness", "spans", "comment", "updated"})
    if unknown:
        raise RatingFileError(
            f"{where}: unknown keys {unknown}; allowed: completeness, spans, comment, updated"
        )
    completeness = raw.get("completeness")
    if completeness is not None and completeness not in SCALE:
        raise RatingFileError(
            f"{where}: completeness {completeness!r} is not one of {', '.join(SCALE)} (or null)"
        )
    comment = raw.get("comment") or ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise RatingFileError(f"{where}: comment must be a string of at most {MAX_COMMENT} characters")
    spans_raw = raw.get("spans") or []
    if not isinstance(spans_raw, list):
        raise RatingFileError(f"{where}: spans must be a list of {{start, end, text}} objects")
    spans: list[Span] = []
    for i, s in enumerate(spans_raw):
        if not isinstance(s, dict) or not {"start", "end"} <= set(s):
            raise RatingFileError(f"{where}: span #{i} must be an object with start, end and text")
        start, end, text = s["start"], s["end"], s.get("text")
        if not (type(start) is int and type(end) is int and 0 <= start < end <= len(caption)):
            raise RatingFileError(
                f"{where}: span #{i} [{start!r}, {end!r}) is not a non-empty range inside the caption "
                f"(0..{len(caption)} characters)"
            )
        if text is not None and text != caption[start:end]:
            raise RatingFileError(
                f"{where}: span #{i} text {text!r} does not match "
                f"caption[{start}:{end}] {caption[start:end]!r}"
            )
        spans.append(Span(start, end, caption[start:end]))
    spans.sort(key=lambda s: (s.start, s.end))
    for prev, cur in zip(spans, spans[1:], strict=False):
        if cur.start < prev.end:
            raise RatingFileError(
                f"{where}: spans [{prev.start}, {prev.end}) and [{cur.start}, {cur.end}) overlap"
            )
    updated = raw.get("updated")
    if updated is not None and not isinstance(updated, str):
        raise RatingFileError(f"{where}: updated must be an ISO time string or null")
    return Rating(completeness=completeness, spans=spans, comment=comment, updated=updated)


def parse_rater_file(path: Path, captions: dict[str, str]) -> RaterFile:
    """Read and check one rating file against the exported samples' captions (id -> caption)."""
    name = f"{path.parent.name}/{path.name}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RatingFileError(f"{name}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise RatingFileError(
            f"{name}: not UTF-8 text; rating files are JSON written by `s2cap rate`"
        ) from None
    except json.JSONDecodeError as exc:
        raise RatingFileError(
            f"{name}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(raw, dict):
        raise RatingFileError(f"{name}: the top level must be an object with version, rater and ratings")
    if raw.get("version") != FORMAT_VERSION:
        raise RatingFileError(
            f"{name}: version {raw.get('version')!r} is not supported (expected {FORMAT_VERSION})"
        )
    rater = raw.get("rater")
    if rater != path.stem:
        raise RatingFileError(
            f"{name}: rater {rater!r} does not match the file name (expected {path.stem!r})"
        )
    ratings = raw.get("ratings")
    if not isinstance(ratings, dict):
        raise RatingFileError(f"{name}: 'ratings' must be an object of sample id -> rating")
    out = RaterFile(rater=rater, position=raw.get("position"), updated=raw.get("updated"))
    for sid, r in ratings.items():
        if sid not in captions:
            raise RatingFileError(f"{name}: sample {sid!r} is not in {SAMPLES_FILE} of this folder")
        out.ratings[sid] = parse_rating(r, captions[sid], f"{name}: sample {sid!r}")
    if out.position is not None and out.position not in captions:
        out.position = None
    return out


# --- the folder ---------------------------------------------------------------------------------------------


def load_samples(folder: Path) -> list[dict[str, Any]]:
    """The exported samples (`samples.json`) of a validation folder."""
    path = Path(folder) / SAMPLES_FILE
    if not path.is_file():
        raise InputError(f"{folder}: no {SAMPLES_FILE}; give a folder written by `s2cap export-validation`")
    try:
        samples = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); export the folder again") from None
    if not isinstance(samples, list) or not all(isinstance(s, dict) and "id" in s for s in samples):
        raise InputError(f"{path}: expected a list of samples with an 'id'; export the folder again")
    return samples


def captions_of(samples: list[dict[str, Any]]) -> dict[str, str]:
    return {s["id"]: s.get("caption") or "" for s in samples}


def rater_path(folder: Path, rater: str) -> Path:
    return Path(folder) / RATINGS_DIR / f"{check_rater(rater)}.json"


def load_rater(folder: Path, rater: str, captions: dict[str, str]) -> RaterFile:
    """A rater's file, or an empty one when the rater has not started yet."""
    path = rater_path(folder, rater)
    if not path.exists():
        return RaterFile(rater=rater)
    return parse_rater_file(path, captions)


def load_all_raters(folder: Path, captions: dict[str, str]) -> list[RaterFile]:
    """Every `ratings/*.json` of a folder, sorted by rater name; malformed files raise `RatingFileError`."""
    rdir = Path(folder) / RATINGS_DIR
    paths = sorted(rdir.glob("*.json")) if rdir.is_dir() else []
    return [parse_rater_file(p, captions) for p in paths]


class RatingStore:
    """One folder's rating files, safe for the threads of the rating server: every change is saved at once."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.samples = load_samples(self.folder)
        self.captions = captions_of(self.samples)
        self._lock = threading.Lock()
        self._cache: dict[str, RaterFile] = {}

    def get(self, rater: str) -> RaterFile:
        with self._lock:
            return self._get(rater)

    def _get(self, rater: str) -> RaterFile:
        if rater not in self._cache:
            self._cache[rater] = load_rater(self.folder, rater, self.captions)
        return self._cache[rater]

    def update(self, rater: str, sample_id: str, changes: dict[str, Any]) -> Rating:
        """Merge `changes` (any of completeness, spans, comment) into a rating, validate, save atomically."""
        if sample_id not in self.captions:
            raise RatingFileError(f"sample {sample_id!r} is not in {SAMPLES_FILE}")
        if not isinstance(changes, dict):
            raise RatingFileError("a rating change must be an object")
        with self._lock:
            rf = self._get(rater)
            current = rf.ratings.get(sample_id, Rating()).to_dict()
            current.update({k: v for k, v in changes.items() if k in ("completeness", "spans", "comment")})
            current["updated"] = _now()
            rating = parse_rating(current, self.captions[sample_id], f"rating of sample {sample_id!r}")
            rf.ratings[sample_id] = rating
            rf.position = sample_id
            self._save(rf)
            return rating

    def set_position(self, rater: str, sample_id: str) -> None:
        if sample_id not in self.captions:
            raise RatingFileError(f"sample {sample_id!r} is not in {SAMPLES_FILE}")
        with self._lock:
            rf = self._get(rater)
            if rf.position != sample_id:
                rf.position = sample_id
                self._save(rf)

    def _save(self, rf: RaterFile) -> None:
        rf.updated = _now()
        write_text_atomic(
            rater_path(self.folder, rf.rater), json.dumps(rf.to_dict(), indent=1, ensure_ascii=False)
        )
