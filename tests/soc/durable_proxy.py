"""Test helper: an HTTP proxy that gives the in-memory osmem-server the durability of a real cluster.

A real Elasticsearch node writes every acknowledged operation to its translog before answering, so a node that
is killed and started again still holds what it acknowledged. osmem-server keeps everything in memory. To test
"kill the server mid-ingest and start it again", this proxy sits between the store and osmem and journals what
the server acknowledged (index templates, bulk items answered 201). After the test kills the osmem process,
:meth:`JournalingProxy.restore` replays the journal into a fresh osmem and sends traffic there — the same state a
restarted durable node would come back with. While no server is behind it the proxy answers 503, as a cluster
without a master does.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


def acknowledged_creates(request_body: bytes, response_body: bytes) -> list[bytes]:
    """The NDJSON (action + source lines) of the bulk ``create`` items the server answered with 201."""
    lines = [line for line in request_body.split(b"\n") if line.strip()]
    items = json.loads(response_body).get("items", [])
    pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]
    kept: list[bytes] = []
    for (action, source), item in zip(pairs, items, strict=True):
        info = item.get("create")
        if info is not None and info.get("status") == 201:
            kept += [action, source]
    return kept


class JournalingProxy:
    """Forwards HTTP to an osmem-server URL and journals the writes it acknowledged (see module docstring)."""

    def __init__(self, upstream: str) -> None:
        self._lock = threading.Lock()
        self._upstream: str | None = upstream
        self.templates: list[tuple[str, bytes]] = []  # (path, body) of acknowledged template PUTs
        self.documents: list[bytes] = []  # bulk NDJSON lines of acknowledged creates
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="journaling-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def acknowledged(self) -> int:
        """How many documents the server behind the proxy has acknowledged (so far, over all restarts)."""
        with self._lock:
            return len(self.documents) // 2

    def detach(self) -> None:
        """No server behind the proxy from now on (requests get 503) until :meth:`restore`."""
        with self._lock:
            self._upstream = None

    def restore(self, upstream: str, chunk: int = 2000) -> None:
        """Replay the journal into the fresh server at ``upstream``, then forward to it."""
        with self._lock:
            templates, documents = list(self.templates), list(self.documents)
        for path, body in templates:
            status, _ = _forward(upstream, "PUT", path, body, {"Content-Type": "application/json"})
            assert status == 200, f"template replay failed: {status}"
        step = chunk * 2
        for i in range(0, len(documents), step):
            body = b"\n".join(documents[i:i + step]) + b"\n"
            status, answer = _forward(upstream, "POST", "/_bulk?refresh=true", body,
                                      {"Content-Type": "application/x-ndjson"})
            assert status == 200 and not json.loads(answer).get("errors"), f"journal replay failed: {answer[:300]!r}"
        with self._lock:
            self._upstream = upstream

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _journal(self, method: str, path: str, body: bytes, status: int, answer: bytes) -> None:
        route = urlsplit(path).path
        if method == "PUT" and route.startswith("/_index_template/") and status == 200:
            with self._lock:
                self.templates.append((route, body))
        elif method in ("POST", "PUT") and route.endswith("/_bulk") and status == 200:
            kept = acknowledged_creates(body, answer)
            with self._lock:
                self.documents += kept

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    upstream = proxy._upstream
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                try:
                    if upstream is None:
                        raise ConnectionRefusedError("no server behind the proxy")
                    status, answer = _forward(upstream, self.command, self.path, body, headers)
                except (OSError, http.client.HTTPException) as exc:
                    status = 503
                    answer = json.dumps({"error": {"type": "unavailable", "reason": str(exc)}, "status": 503}).encode()
                else:
                    proxy._journal(self.command, self.path, body, status, answer)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

        return Handler


def _forward(upstream: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urlsplit(upstream)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
