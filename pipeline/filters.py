"""Caption filters: each returns a FilterResult (keep, reason, detail); flagged rows stay in the shards.

`apply_filters` runs every filter on every `ok` sample (no first-fail: all results are kept in
`sample.filters`), sets `sample.keep` and counts `kept`, `dropped` and `dropped_<reason>` (a sample failing two
filters counts under both reasons). The near-duplicate filter runs last and is stateful across the dataset:
run `apply_filters` over samples in plan order, one shard after the other, for a deterministic result.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.errors import InputError
from pipeline.grounding import GROUNDING_REASONS, GroundingConfig, ground_sample, scene_evidence
from pipeline.record import FilterResult, Sample
from sentinel.bands import SCL_CLOUD

# A small English stopword list: enough for the language heuristic, no model download.
ENGLISH_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers him his how i if in into is it its itself just more most my no nor not now of off on once
    only or other our out over own same she should so some such than that the their them then there these they
    this those through to too under until up very was we were what when where which while who whom why will
    with would you your near along across around beside behind within without""".split()
)

# Refusals and chat boilerplate; matched case-insensitively after curly quotes are straightened.
REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bas an ai\b",
    r"\bas a (?:large )?language model\b",
    r"\bi cannot\b",
    r"\bi can ?not\b",
    r"\bi can't\b",
    r"\bi'm sorry\b",
    r"\bi am sorry\b",
    r"\bi apologi[sz]e\b",
    r"\bi'm (?:not able|unable)\b",
    r"\bi am (?:not able|unable)\b",
    r"\bthe image does not\b",
    r"\bthe image doesn't\b",
    r"\bunable to (?:determine|see|identify|provide|tell)\b",
    r"\bit is (?:not possible|impossible|difficult) to (?:determine|tell|say|identify)\b",
    r"\bnot enough information\b",
    r"\bi hope this helps\b",
    r"\bhere is (?:a|the) (?:caption|description)\b",
    r"^\s*(?:sure|certainly)[,!.]",
    r"^\s*caption\s*:",
)

_TOKEN = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)
FILTER_NAMES: tuple[str, ...] = (
    "length",
    "refusal",
    "repetition",
    "language",
    "cloudy",
    *GROUNDING_REASONS,
    "near_duplicate",
)


def words(text: str | None) -> list[str]:
    """Lower-case word tokens (letters and digits, inner apostrophes and hyphens kept)."""
    return _TOKEN.findall((text or "").lower().replace("’", "'"))


@dataclass(frozen=True, slots=True)
class FilterConfig:
    min_words: int = 8
    max_words: int = 120
    repeat_ngram: int = 3  # n of the n-grams counted by the repetition filter
    max_repeats: int = 2  # an n-gram may occur this many times; more is degenerate repetition
    language: str | None = "en"  # None disables the language filter
    min_stopword_ratio: float = 0.15  # share of English stopwords among the words
    max_non_ascii_ratio: float = 0.10  # share of non-ASCII letters
    dedup_shingle: int = 5  # word n-gram shingles for near-duplicate detection
    dedup_threshold: float = 0.9  # estimated Jaccard similarity at which a caption is a near duplicate
    dedup_permutations: int = 128  # MinHash signature length
    dedup_bands: int = 32  # LSH bands (must divide dedup_permutations)
    max_cloud_fraction: float = 0.10
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    disabled: tuple[str, ...] = ()  # filter names to skip, e.g. ("grounding_speculative",)

    def __post_init__(self) -> None:
        # Accept plain YAML/JSON values: a dict for `grounding`, lists for tuples.
        if isinstance(self.grounding, dict):
            known = set(GroundingConfig.__dataclass_fields__)
            unknown = sorted(set(self.grounding) - known)
            if unknown:
                raise InputError(f"filters.grounding keys {unknown} unknown: use some of {', '.join(sorted(known))}")
            g = {k: tuple(v) if isinstance(v, list) else v for k, v in self.grounding.items()}
            object.__setattr__(self, "grounding", GroundingConfig(**g))
        object.__setattr__(self, "disabled", tuple(self.disabled))
        if not 1 <= self.min_words <= self.max_words:
            raise InputError(
                f"filter min_words={self.min_words}, max_words={self.max_words}: need 1 <= min_words <= max_words"
            )
        if self.repeat_ngram < 1 or self.max_repeats < 1:
            raise InputError("filter repeat_ngram and max_repeats must be >= 1")
        if self.language not in (None, "en"):
            raise InputError(f"filter language={self.language!r} unsupported: use 'en' or None to disable")
        for name in ("min_stopword_ratio", "max_non_ascii_ratio", "dedup_threshold", "max_cloud_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"filter {name}={value} must be a fraction between 0 and 1")
        if self.dedup_shingle < 1:
            raise InputError(f"filter dedup_shingle={self.dedup_shingle} must be >= 1")
        if self.dedup_bands < 1 or self.dedup_permutations % self.dedup_bands:
            raise InputError(
                f"filter dedup_bands={self.dedup_bands} must divide dedup_permutations={self.dedup_permutations}"
            )
        unknown = sorted(set(self.disabled) - set(FILTER_NAMES))
        if unknown:
            raise InputError(f"filters {unknown} unknown in `disabled`: use some of {', '.join(FILTER_NAMES)}")


class Filter(Protocol):
    name: str

    def __call__(self, sample: Sample) -> FilterResult: ...


def _keep(name: str, detail: str = "") -> FilterResult:
    return FilterResult(name=name, keep=True, reason=None, detail=detail)


def _drop(name: str, reason: str, detail: str) -> FilterResult:
    return FilterResult(name=name, keep=False, reason=reason, detail=detail)


@dataclass(slots=True)
class LengthFilter:
    min_words: int
    max_words: int
    name: str = "length"

    def __call__(self, sample: Sample) -> FilterResult:
        n = len(words(sample.caption))
        if n == 0:
            return _drop(self.name, "empty", "no words")
        if n < self.min_words:
            return _drop(self.name, "too_short", f"{n} words < {self.min_words}")
        if n > self.max_words:
            return _drop(self.name, "too_long", f"{n} words > {self.max_words}")
        return _keep(self.name, f"{n} words")


@dataclass(slots=True)
class RefusalFilter:
    patterns: tuple[str, ...] = REFUSAL_PATTERNS
    name: str = "refusal"
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = re.compile("|".join(f"(?:{p})" for p in self.patterns), re.IGNORECASE | re.MULTILINE)

    def __call__(self, sample: Sample) -> FilterResult:
        text = (sample.caption or "").replace("’", "'")
        m = self._regex.search(text)
        if m:
            return _drop(self.name, "refusal", m.group(0).strip())
        return _keep(self.name)


@dataclass(slots=True)
class RepetitionFilter:
    n: int
    max_repeats: int
    name: str = "repetition"

    def __call__(self, sample: Sample) -> FilterResult:
        toks = words(sample.caption)
        grams = Counter(tuple(toks[i : i + self.n]) for i in range(len(toks) - self.n + 1))
        if grams:
            gram, count = grams.most_common(1)[0]
            if count > self.max_repeats:
                return _drop(self.name, "repetition", f"'{' '.join(gram)}' x{count}")
        return _keep(self.name)


@dataclass(slots=True)
class LanguageFilter:
    """English by a light heuristic: enough stopwords, few non-ASCII letters."""

    min_stopword_ratio: float
    max_non_ascii_ratio: float
    name: str = "language"

    def __call__(self, sample: Sample) -> FilterResult:
        toks = words(sample.caption)
        if not toks:
            return _keep(self.name, "no words")
        ratio = sum(t in ENGLISH_STOPWORDS for t in toks) / len(toks)
        letters = [c for c in (sample.caption or "") if c.isalpha()]
        non_ascii = sum(not c.isascii() for c in letters) / max(len(letters), 1)
        detail = f"stopwords {ratio:.2f}, non-ascii {non_ascii:.2f}"
        if ratio < self.min_stopword_ratio or non_ascii > self.max_non_ascii_ratio:
            return _drop(self.name, "language", detail)
        return _keep(self.name, detail)


@dataclass(slots=True)
class CloudFilter:
    max_cloud_fraction: float
    name: str = "cloudy"

    def __call__(self, sample: Sample) -> FilterResult:
        cloud = sample.cloud_fraction
        if cloud is None and sample.scl is not None:
            cloud = float(np.isin(sample.scl, list(SCL_CLOUD)).mean())
        if cloud is None:
            return _keep(self.name, "no cloud mask")
        if cloud > self.max_cloud_fraction:
            return _drop(self.name, "cloudy", f"cloud {cloud:.3f} > {self.max_cloud_fraction}")
        return _keep(self.name, f"cloud {cloud:.3f}")


class _EvidenceCache:
    """Scene evidence of the last sample seen, shared by the grounding filters (one SCL pass per sample)."""

    def __init__(self, cfg: GroundingConfig) -> None:
        self.cfg = cfg
        self._key: int | None = None
        self._value: dict[str, float] = {}
        self._issues: dict[str, str] = {}

    def issues(self, sample: Sample) -> dict[str, str]:
        key = id(sample)
        if key != self._key:
            ev = scene_evidence(sample, self.cfg.water_body_min_pixels)
            self._issues = {i.reason: i.detail for i in ground_sample(sample, self.cfg, ev)}
            self._key = key
        return self._issues


@dataclass(slots=True)
class GroundingFilter:
    """One grounding rule (see pipeline.grounding): named after its reason, detail = offending words."""

    name: str
    cache: _EvidenceCache

    def __call__(self, sample: Sample) -> FilterResult:
        detail = self.cache.issues(sample).get(self.name)
        if detail is not None:
            return _drop(self.name, self.name, detail)
        return _keep(self.name)


# --- near duplicates ----------------------------------------------------------------------------------------


def hash64(data: bytes, signed: bool = False) -> int:
    """A stable 64-bit hash (blake2b): shingles, LSH buckets (signed, for SQLite integers) and id counts."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=signed)


def shingles(text: str, n: int = 5) -> set[int]:
    """64-bit hashes of the word n-grams of a caption (the whole caption when it is shorter than n)."""
    toks = words(text)
    grams = [toks] if len(toks) < n else [toks[i : i + n] for i in range(len(toks) - n + 1)]
    return {hash64(" ".join(g).encode()) for g in grams if g}


class NearDuplicateIndex:
    """MinHash + LSH over word shingles, kept in SQLite. Deterministic (fixed permutations); the first caption
    added wins.

    `query` returns the key of an indexed caption whose estimated Jaccard similarity reaches the threshold.
    With `path=None` the index lives in memory (one process). With a file path it is the run's index: every
    process of a run (Dask workers included) opens the same file, sees the captions the others kept as soon as
    they are added, and holds only SQLite's page cache, so memory stays flat however large the dataset grows.
    Each caption is tagged with its shard: `sync` drops captions of shards that were never written (a killed
    attempt) and indexes written shards it has not seen, so a resume needs no re-seeding.
    """

    def __init__(
        self,
        threshold: float = 0.9,
        shingle: int = 5,
        permutations: int = 128,
        bands: int = 32,
        path: Path | None = None,
    ) -> None:
        if permutations % bands:
            raise InputError(f"near-duplicate bands={bands} must divide permutations={permutations}")
        self.threshold = threshold
        self.shingle = shingle
        self.bands = bands
        self.rows = permutations // bands
        rng = np.random.default_rng(20240601)
        self._a = rng.integers(0, 2**63, size=permutations, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.integers(0, 2**63, size=permutations, dtype=np.uint64)
        self.path = path
        self._db = _open_index_db(path, {"shingle": shingle, "permutations": permutations, "bands": bands})

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM captions").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def signature(self, text: str) -> np.ndarray | None:
        sh = shingles(text, self.shingle)
        if not sh:
            return None
        x = np.fromiter(sh, dtype=np.uint64, count=len(sh))
        # One multiply-add-xorshift hash per permutation (wrapping uint64 arithmetic is intended).
        with np.errstate(over="ignore"):
            h = self._a[:, None] * x[None, :] + self._b[:, None]
        h ^= h >> np.uint64(29)
        return h.min(axis=1)

    def _buckets(self, sig: np.ndarray) -> list[int]:
        """One signed 64-bit bucket id per band (band number and band values hashed together)."""
        out = []
        for band in range(self.bands):
            data = band.to_bytes(2, "little") + sig[band * self.rows : (band + 1) * self.rows].tobytes()
            out.append(hash64(data, signed=True))
        return out

    def query(self, text: str, exclude: str | None = None) -> tuple[str, float] | None:
        """(key, estimated similarity) of the best indexed near duplicate of `text`, or None. `exclude` names a
        key to ignore (the sample itself, indexed by an earlier attempt at its shard)."""
        sig = self.signature(text)
        if sig is None:
            return None
        buckets = self._buckets(sig)
        rows = self._db.execute(
            "SELECT DISTINCT c.id, c.key, c.sig FROM buckets b JOIN captions c ON c.id = b.cid "
            f"WHERE b.bucket IN ({','.join('?' * len(buckets))}) ORDER BY c.id",
            buckets,
        ).fetchall()
        best: tuple[str, float] | None = None
        for _, key, blob in rows:
            if key == exclude:
                continue
            sim = float(np.mean(np.frombuffer(blob, dtype=np.uint64) == sig))
            if sim >= self.threshold and (best is None or sim > best[1]):
                best = (key, sim)
        return best

    def add(self, key: str, text: str, shard: int = -1) -> None:
        """Index a kept caption under `key` (a sample id); adding a key again replaces its caption."""
        sig = self.signature(text)
        if sig is None:
            return
        with self._db:  # one transaction: the caption and its buckets appear together
            self._remove(key)
            cid = self._db.execute(
                "INSERT INTO captions (key, shard, sig) VALUES (?, ?, ?)", (key, shard, sig.tobytes())
            ).lastrowid
            self._db.executemany(
                "INSERT OR IGNORE INTO buckets (bucket, cid) VALUES (?, ?)", [(b, cid) for b in self._buckets(sig)]
            )

    def _remove(self, key: str) -> None:
        row = self._db.execute("SELECT id, sig FROM captions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return
        cid, blob = row
        buckets = self._buckets(np.frombuffer(blob, dtype=np.uint64))
        self._db.executemany("DELETE FROM buckets WHERE bucket = ? AND cid = ?", [(b, cid) for b in buckets])
        self._db.execute("DELETE FROM captions WHERE id = ?", (cid,))

    def sync(self, run_dir: Path) -> tuple[int, int]:
        """Make the index hold exactly the kept captions of the run's written shards: drop captions of shards
        without a done-marker, index written shards not synced before (one shard in memory at a time).
        Only the run's coordinator calls this, before any worker filters. Returns (dropped, added)."""
        from pipeline.shards import done_shards, iter_shard_tables

        done = done_shards(run_dir)
        dropped = 0
        for (shard,) in self._db.execute("SELECT DISTINCT shard FROM captions").fetchall():
            if shard not in done:
                keys = [k for (k,) in self._db.execute("SELECT key FROM captions WHERE shard = ?", (shard,))]
                with self._db:
                    for key in keys:
                        self._remove(key)
                dropped += len(keys)
        synced = {s for (s,) in self._db.execute("SELECT shard FROM synced")}
        with self._db:
            self._db.executemany("DELETE FROM synced WHERE shard = ?", [(s,) for s in synced - done])
        added = 0
        for shard, table in iter_shard_tables(run_dir, ["id", "caption", "keep"], indices=done - synced):
            known = {k for (k,) in self._db.execute("SELECT key FROM captions WHERE shard = ?", (shard,))}
            cols = (table.column(c).to_pylist() for c in ("id", "caption", "keep"))
            for sample_id, caption, keep in zip(*cols, strict=True):
                if keep and caption and sample_id not in known:
                    self.add(sample_id, caption, shard)
                    added += 1
            with self._db:
                self._db.execute("INSERT OR IGNORE INTO synced (shard) VALUES (?)", (shard,))
        return dropped, added

    @classmethod
    def from_captions(
        cls, captions: Iterable[str | tuple[str, str] | None], **kwargs: float | int
    ) -> NearDuplicateIndex:
        """An in-memory index of existing captions, plain or (key, caption) pairs, in order."""
        index = cls(**kwargs)  # type: ignore[arg-type]
        for i, item in enumerate(captions):
            if item is None:
                continue
            key, text = item if isinstance(item, tuple) else (f"#{i}", item)
            if text:
                index.add(key, text)
        return index


def _open_index_db(path: Path | None, params: dict[str, int]) -> sqlite3.Connection:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path) if path is not None else ":memory:", timeout=120.0, isolation_level=None)
    db.isolation_level = "DEFERRED"  # `with db:` wraps a transaction; reads outside one see the latest commit
    if path is not None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    with db:
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER)")
        db.execute("CREATE TABLE IF NOT EXISTS captions (id INTEGER PRIMARY KEY, key TEXT UNIQUE, shard INTEGER, "
                   "sig BLOB)")
        db.execute("CREATE TABLE IF NOT EXISTS buckets (bucket INTEGER, cid INTEGER, PRIMARY KEY (bucket, cid)) "
                   "WITHOUT ROWID")
        db.execute("CREATE TABLE IF NOT EXISTS synced (shard INTEGER PRIMARY KEY)")
        db.executemany("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)", params.items())
    stored = dict(db.execute("SELECT name, value FROM meta").fetchall())
    if stored != params:
        db.close()
        raise InputError(
            f"{path}: near-duplicate index built with {stored}, this run asks for {params}; delete the file to "
            "rebuild it from the written shards (the coordinator re-indexes them on the next start)"
        )
    return db


@dataclass(slots=True)
class NearDuplicateFilter:
    """Drops a caption that nearly repeats one already indexed. A caption joins the index only when every
    filter before this one kept its sample, so the first kept caption in plan order wins."""

    index: NearDuplicateIndex
    name: str = "near_duplicate"

    def __call__(self, sample: Sample) -> FilterResult:
        text = sample.caption or ""
        hit = self.index.query(text, exclude=sample.id)
        if hit is not None:
            return _drop(self.name, "near_duplicate", f"{hit[0]} (similarity {hit[1]:.2f})")
        if text and all(r.keep for r in sample.filters):
            self.index.add(sample.id, text, sample.shard)
        return _keep(self.name)


def build_filters(cfg: FilterConfig | None = None, index: NearDuplicateIndex | None = None) -> list[Filter]:
    """The configured filters in run order (near-duplicate last). Pass `index` to resume with a seeded index."""
    cfg = cfg or FilterConfig()
    cache = _EvidenceCache(cfg.grounding)
    if index is None:
        index = NearDuplicateIndex(cfg.dedup_threshold, cfg.dedup_shingle, cfg.dedup_permutations, cfg.dedup_bands)
    candidates: list[Filter] = [
        LengthFilter(cfg.min_words, cfg.max_words),
        RefusalFilter(),
        RepetitionFilter(cfg.repeat_ngram, cfg.max_repeats),
        LanguageFilter(cfg.min_stopword_ratio, cfg.max_non_ascii_ratio),
        CloudFilter(cfg.max_cloud_fraction),
        *(GroundingFilter(reason, cache) for reason in GROUNDING_REASONS if reason in cfg.grounding.rules),
        NearDuplicateFilter(index),
    ]
    if cfg.language is None:
        candidates = [f for f in candidates if f.name != "language"]
    return [f for f in candidates if f.name not in cfg.disabled]


def apply_filters(samples: list[Sample], filters: list[Filter]) -> Counter[str]:
    """Run every filter on every ok sample; set `keep`; count kept / dropped_<reason> / failed_<status>."""
    counts: Counter[str] = Counter()
    for sample in samples:
        sample.filters = []
        if not sample.ok:
            sample.keep = False
            counts[f"failed_{sample.status}"] += 1
            continue
        counts["checked"] += 1
        for f in filters:
            sample.filters.append(f(sample))
        sample.keep = all(r.keep for r in sample.filters)
        if sample.keep:
            counts["kept"] += 1
        else:
            counts["dropped"] += 1
            for r in sample.filters:
                if not r.keep:
                    counts[f"dropped_{r.reason}"] += 1
    return counts
