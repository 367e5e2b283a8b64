"""A model-call cache so a rerun or a crash never pays for the same caption twice.

Keyed by (model, prompt version and its fingerprint, image sha256, facts sha256 + tags + scene fractions):
everything the chain's prompts are rendered from. Only successful results are stored; failures are retried on
the next run. SQLite in WAL mode, one row per key, safe for several processes on one machine.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from pipeline.captioners.base import CaptionRequest, CaptionResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS captions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    result TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT (datetime('now'))
)
"""


class _Inner(Protocol):
    name: str
    model: str
    prompt_version: str

    def caption_batch(self, requests: Sequence[CaptionRequest]) -> list[CaptionResult]: ...

    def close(self) -> None: ...


def request_key(model: str, prompt_version: str, request: CaptionRequest, prompt_fingerprint: str = "") -> str:
    """sha256 over everything a caption depends on; the sample id is deliberately not part of it."""
    facts = json.dumps(request.facts.to_dict() if request.facts else None, sort_keys=True)
    payload = {
        "model": model,
        "prompt_version": prompt_version,
        "prompt_fingerprint": prompt_fingerprint,
        "image": hashlib.sha256(request.image_png).hexdigest(),
        "facts": hashlib.sha256(facts.encode()).hexdigest(),
        "tags": list(request.tags),
        "scene": {k: round(v, 6) for k, v in sorted(request.scene_fractions.items())},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class CaptionCache:
    """SQLite store of successful CaptionResults, one row per request key."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise ValueError(f"caption cache path {self.path} is a directory; pass a file path like cache/captions.db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise ValueError(f"caption cache {self.path} is not a usable SQLite file ({e}); delete it") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, CaptionResult]:
        found: dict[str, CaptionResult] = {}
        uniq = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(uniq), 500):
                chunk = uniq[i:i + 500]
                rows = self._db.execute(
                    f"SELECT key, result FROM captions WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                found.update((k, CaptionResult(**json.loads(r))) for k, r in rows)
        return found

    def put_many(self, items: Sequence[tuple[str, CaptionResult]]) -> int:
        rows = [(k, r.model, r.prompt_version, json.dumps(asdict(r))) for k, r in items if r.error is None]
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO captions (key, model, prompt_version, result) VALUES (?, ?, ?, ?)", rows)
            self._db.commit()
        return len(rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM captions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedCaptioner:
    """Wraps a captioner: cached requests come back from the cache, only misses reach `inner`."""

    def __init__(self, inner: _Inner, cache: CaptionCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.model = inner.model
        self.prompt_version = inner.prompt_version
        prompts: Any = getattr(inner, "prompts", None)
        self._fingerprint = getattr(prompts, "fingerprint", "")
        self.hits = 0
        self.misses = 0

    def caption_batch(self, requests: Sequence[CaptionRequest]) -> list[CaptionResult]:
        keys = [request_key(self.model, self.prompt_version, r, self._fingerprint) for r in requests]
        cached = self.cache.get_many(keys)
        results: list[CaptionResult | None] = [None] * len(requests)
        todo: list[int] = []
        for i, (k, req) in enumerate(zip(keys, requests, strict=True)):
            hit = cached.get(k)
            if hit is not None:
                hit.sample_id = req.sample_id  # same inputs under another id (e.g. a re-planned run)
                results[i] = hit
            else:
                todo.append(i)
        self.hits += len(requests) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = self.inner.caption_batch([requests[i] for i in todo])
            if len(fresh) != len(todo):
                raise RuntimeError(f"{self.name} returned {len(fresh)} results for {len(todo)} requests")
            self.cache.put_many([(keys[i], r) for i, r in zip(todo, fresh, strict=True)])
            for i, r in zip(todo, fresh, strict=True):
                results[i] = r
        return [r for r in results if r is not None]

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
