"""The rating web app: stdlib `http.server` on 127.0.0.1 serving one exported validation folder.

Routes (all JSON except the page, its static files and the images):
    GET  /                       the page (static/index.html); `?rater=NAME` rates under another name
    GET  /static/<file>          app.js, style.css
    GET  /images/<file>          the exported previews
    GET  /api/state?rater=NAME   samples, scale, this rater's ratings and position
    POST /api/rating             {"rater", "sample_id", and any of "completeness", "spans", "comment"}
    POST /api/position           {"rater", "sample_id"}: where the rater is, for resuming
Every POST is saved to `ratings/<rater>.json` before the answer is sent.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from pipeline.errors import InputError
from validation.ratings import HALLUCINATION_BUCKETS, SCALE, RatingStore, check_rater

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 256 * 1024


class RatingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path, host: str, port: int, rater: str) -> None:
        self.store = RatingStore(folder)
        self.default_rater = check_rater(rater)
        self.images = (Path(folder) / "images").resolve()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: RatingServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # quiet: the terminal shows only the URL and errors

    # --- helpers --------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _file(self, base: Path, name: str) -> None:
        path = (base / name).resolve()
        if path.parent != base.resolve() or not path.is_file():
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such file: {name}"})
            return
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        self._send(HTTPStatus.OK, path.read_bytes(), ctype)

    def _rater(self, value: Any) -> str:
        return check_rater(value) if value else self.server.default_rater

    # --- routes ---------------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlparse(self.path)
        try:
            if url.path in ("/", "/index.html"):
                self._file(STATIC, "index.html")
            elif url.path.startswith("/static/"):
                self._file(STATIC, url.path.removeprefix("/static/"))
            elif url.path.startswith("/images/"):
                self._file(self.server.images, url.path.removeprefix("/images/"))
            elif url.path == "/api/state":
                rater = self._rater(parse_qs(url.query).get("rater", [""])[0])
                self._json(HTTPStatus.OK, self._state(rater))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})
        except InputError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

    def do_POST(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        origin = self.headers.get("Origin")
        if origin and urlparse(origin).netloc != self.headers.get("Host"):
            # another web site open in the rater's browser must not write ratings (cross-site POST)
            self._json(HTTPStatus.FORBIDDEN, {"error": f"cross-origin request from {origin} refused"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise InputError(f"request body over {MAX_BODY} bytes")
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                raise InputError("request body is not JSON") from None
            if not isinstance(body, dict):
                raise InputError("request body must be a JSON object")
            rater = self._rater(body.get("rater"))
            sample_id = body.get("sample_id")
            if not isinstance(sample_id, str):
                raise InputError("sample_id (a string) is missing from the request")
            if url.path == "/api/rating":
                rating = self.server.store.update(rater, sample_id, body)
                self._json(HTTPStatus.OK, {"ok": True, "sample_id": sample_id, "rating": rating.to_dict()})
            elif url.path == "/api/position":
                self.server.store.set_position(rater, sample_id)
                self._json(HTTPStatus.OK, {"ok": True})
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})
        except InputError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

    def _state(self, rater: str) -> dict[str, Any]:
        store = self.server.store
        rf = store.get(rater)
        return {
            "rater": rater,
            "scale": list(SCALE),
            "buckets": list(HALLUCINATION_BUCKETS),
            "samples": store.samples,
            "ratings": {sid: r.to_dict() for sid, r in rf.ratings.items()},
            "position": rf.position,
        }


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 0, rater: str = "rater") -> RatingServer:
    """A rating server bound to host:port (0 picks a free port) that is not serving yet."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; give a folder written by `s2cap export-validation`")
    try:
        return RatingServer(folder, host, port, rater)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None


def start_in_thread(server: RatingServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="s2cap-rate", daemon=True)
    thread.start()
    return thread


def serve_rating(folder: Path, host: str = "127.0.0.1", port: int = 8765, rater: str = "rater") -> None:
    """Serve the rating page for `folder` until Ctrl-C; prints the URL to open."""
    server = make_server(folder, host, port, rater)
    n = len(server.store.samples)
    print(f"rating {n} samples as {server.default_rater!r}: open {server.url}  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
