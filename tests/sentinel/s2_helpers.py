"""Helpers shared by the sentinel tests: real sample data paths, the test world's chips, tiny HTTP behaviours."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from sentinel.footprint import ChipLocation
from sentinel.seasons import Season

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
Q2 = Season("2024-Q2", dt.date(2024, 4, 1), dt.date(2024, 6, 30))


def shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"real sample data {path.resolve()} is absent (../shared/data beside the checkout)")
    return path


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@dataclass
class World:
    """Scenes of one 6 km square (UTM 32632, x 500040..506040, y 5294040..5300040) served by rustac."""

    url: str
    root: Path
    items: dict[str, dict[str, Any]]
    locs: dict[str, ChipLocation] = field(default_factory=dict)


# chip A: cloudy in scene S2 only; chip C: clear everywhere; chip FAR: outside every scene
LOC_A = ChipLocation("A", 32632, 500640.0, 5299440.0)
LOC_C = ChipLocation("C", 32632, 503160.0, 5296860.0)
LOC_FAR = ChipLocation("FAR", 32632, 560040.0, 5350020.0)


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def sleepy(seconds: float) -> Callable[[BaseHTTPRequestHandler], None]:
    def behave(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        try:
            reply(h, 200, b"{}")
        except OSError:
            pass

    return behave
