"""Shared test helpers: a loopback TLS / HTTP server, blank host evidence, a sample-city runtime."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.crypto import ensure_self_signed_certificate
from infra.evidence_facts import HostEvidence


def _blank_value(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return None if type(None) in args else _blank_value(args[0])
    if origin in (list, tuple):
        return []
    if origin is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return blank(annotation)
    return {bool: False, int: 0, str: "", float: 0.0}.get(annotation)


def blank(model: type[BaseModel]) -> dict[str, Any]:
    """A valid instance of ``model`` as data: None / False / 0 / empty everywhere."""
    return {name: _blank_value(f.annotation) for name, f in model.model_fields.items()}


def host_evidence(hostname: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """Blank ``evidence.yml`` facts for ``hostname`` with some sections' fields set."""
    data = blank(HostEvidence)
    data.update(schema_version=1, collected_at="2026-11-30T08:00:00Z", hostname=hostname)
    for name, values in sections.items():
        data[name] = {**data[name], **values} if isinstance(data[name], dict) else values
    return HostEvidence.model_validate(data).model_dump()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def web_server(keys_dir: Path, tls: bool, minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> Iterator[int]:
    """An HTTP(S) server on 127.0.0.1 (random port) in a thread; yields the port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    if tls:
        cert, key = ensure_self_signed_certificate(keys_dir, ["127.0.0.1"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = minimum
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
