"""Test helper: a real osmem-server (in-memory OpenSearch-compatible API) and clients/stores pointed at it.

The ``elasticsearch`` 9 client sends ``application/vnd.elasticsearch+json; compatible-with=9``; osmem answers
406 to that, so test clients use :class:`PlainJsonNode`, which sends the plain media types. Real clusters
accept the vendor types: this shim stays in tests.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from elastic_transport import HttpHeaders, Urllib3HttpNode
from elasticsearch import Elasticsearch
from osmem_server import OsmemServer

from soc.store.elasticsearch import ElasticsearchStore

if TYPE_CHECKING:
    from elastic_transport._node import NodeApiResponse

_VENDOR = {
    "application/vnd.elasticsearch+json": "application/json",
    "application/vnd.elasticsearch+x-ndjson": "application/x-ndjson",
}


def plain_media_type(value: str) -> str:
    """``application/vnd.elasticsearch+json; compatible-with=9`` → ``application/json`` (others unchanged)."""
    base = value.split(";", 1)[0].strip().lower()
    return _VENDOR.get(base, value)


class PlainJsonNode(Urllib3HttpNode):
    """Urllib3 node that rewrites the client's vendor media types (Accept, Content-Type) to the plain ones."""

    def perform_request(self, method: str, target: str, body: bytes | None = None,
                        headers: HttpHeaders | None = None, **kwargs: Any) -> NodeApiResponse:
        if headers is not None:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                if name in headers:
                    headers[name] = plain_media_type(headers[name])
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


def _wait_until_answers(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/", timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"osmem-server at {url} did not answer within {timeout} s")
        time.sleep(0.02)


@contextmanager
def osmem_process() -> Iterator[OsmemServer]:
    """A fresh osmem-server on a free 127.0.0.1 port (exits with this process, too); stopped on exit."""
    server = OsmemServer.start(addr="127.0.0.1:0", japanese=False)
    try:
        _wait_until_answers(server.url)
        yield server
    finally:
        server.close()


@contextmanager
def osmem_server() -> Iterator[str]:
    """A fresh, empty osmem-server; yields its URL and stops it on exit."""
    with osmem_process() as server:
        yield server.url


def es_client(url: str, **options: Any) -> Elasticsearch:
    """An Elasticsearch client for ``url`` that osmem understands (plain JSON media types, no retries)."""
    options.setdefault("request_timeout", 10.0)
    options.setdefault("max_retries", 0)
    return Elasticsearch(url, node_class=PlainJsonNode, **options)


def es_store(url: str, **kwargs: Any) -> ElasticsearchStore:
    """An ElasticsearchStore on ``url`` with read-after-write (``refresh="wait_for"``) unless told otherwise."""
    kwargs.setdefault("refresh", "wait_for")
    return ElasticsearchStore(url, client_options={"node_class": PlainJsonNode, "max_retries": 0}, **kwargs)
