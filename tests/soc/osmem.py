"""Test helper: a real osmem-server (in-memory OpenSearch-compatible API) and clients/stores pointed at it.

The ``elasticsearch`` 9 client sends ``application/vnd.elasticsearch+json; compatible-with=9``; osmem answers
406 to that. ``ElasticsearchStore`` detects the refusal itself on first use and switches to plain JSON (product
code, see ``soc.store.elasticsearch``), so :func:`es_store` builds stores exactly as the product does. Bare
test clients (:func:`es_client`) use the product's :class:`PlainMediaTypeNode` from the start.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from elasticsearch import Elasticsearch
from osmem_server import OsmemServer

from soc.store.elasticsearch import ElasticsearchStore, PlainMediaTypeNode


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
    return Elasticsearch(url, node_class=PlainMediaTypeNode, **options)


def es_store(url: str, **kwargs: Any) -> ElasticsearchStore:
    """An ElasticsearchStore on ``url`` as the product builds it (it finds out about osmem's media types itself),
    without client retries and with read-after-write (``refresh="wait_for"``) unless told otherwise."""
    kwargs.setdefault("refresh", "wait_for")
    kwargs.setdefault("client_options", {"max_retries": 0})
    return ElasticsearchStore(url, **kwargs)
