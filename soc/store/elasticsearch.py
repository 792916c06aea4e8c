"""Event store on Elasticsearch 8/9 through the official client: daily indices, one composable template.

Events go to ``{index_prefix}-YYYY.MM.DD`` by the UTC day of their ``@timestamp``, through bulk ``create`` with
the caller's deterministic id, so a replayed batch is counted as duplicates instead of being stored twice.
The mappings live in ``es_template.json`` next to this module and are validated when loaded. Retention uses
an ILM policy when the cluster has ILM, otherwise :meth:`ElasticsearchStore.delete_before` (delete-by-query)
does the work; ``retention_mode`` tells which.

The client sends Elasticsearch's compatibility media type (``application/vnd.elasticsearch+json;
compatible-with=9``). Servers that speak the same API but refuse that type (OpenSearch-compatible ones such as
osmem-server answer 406) are detected once, on first use, and the store then sends plain ``application/json``.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from elastic_transport import BaseNode, ConnectionTimeout, HttpHeaders, RequestsHttpNode, Urllib3HttpNode
from elastic_transport import ConnectionError as TransportConnectionError
from elasticsearch import ApiError, Elasticsearch, SerializationError, UnsupportedProductError

from soc.ecs import ASSUMED_TIME_TAGS, Event, iso_utc
from soc.store.base import (
    IP_FIELDS,
    KEYWORD_FIELDS,
    SearchQuery,
    SearchResult,
    StoreConfigError,
    StoreUnavailable,
    WriteResult,
    histogram_step,
)

log = logging.getLogger(__name__)

TEMPLATE_FILE = Path(__file__).with_name("es_template.json")
MAX_RESULT_WINDOW = 10_000  # Elasticsearch's default index.max_result_window

# Leaf types the template may use; "text" is reserved for ``message``.
_LEAF_TYPES = {"keyword", "ip", "date", "text", "long", "integer", "short", "byte", "boolean", "double", "float"}
_AGGREGATABLE = _LEAF_TYPES - {"text"}
# Statuses meaning "the store cannot take this right now" (spool and retry) rather than "this request is wrong".
_UNAVAILABLE_STATUS = {401, 403, 408, 429}
_PREFIX = re.compile(r"[a-z0-9][a-z0-9._-]*")
# Statuses of a server refusing the request's media type (Content-Type / Accept); an Elasticsearch 8 node asked for
# compatible-with=9 answers 400 media_type_header_exception instead.
_MEDIA_TYPE_REFUSED = {406, 415}
# Bulk requests stay well below Elasticsearch's default http.max_content_length (100 MiB), by an estimate of each
# document's size; a request refused as too large (413) is split, down to a single document that is rejected.
MAX_BULK_BYTES = 16 * 1024 * 1024
_VENDOR_MEDIA_TYPES = {
    "application/vnd.elasticsearch+json": "application/json",
    "application/vnd.elasticsearch+x-ndjson": "application/x-ndjson",
}
_NODE_CLASS_NAMES: dict[str, type[BaseNode]] = {"urllib3": Urllib3HttpNode, "requests": RequestsHttpNode}

if TYPE_CHECKING:
    from elastic_transport._node import NodeApiResponse
    from sigma.rule import SigmaRule

T = TypeVar("T")
RetentionMode = Literal["ilm", "delete_by_query"]


def longest_retention(retention_days: Mapping[str, int] | None = None) -> int:
    """The longest per-data-class retention in days (None: ``core.settings.RETENTION_DEFAULTS``).

    Daily indices hold every data class, so a whole index may only be dropped after the longest of them.
    """
    if retention_days is None:
        from core.settings import RETENTION_DEFAULTS

        retention_days = RETENTION_DEFAULTS
    if not retention_days:
        raise ValueError("retention_days is empty: give the retention in days of each data class")
    bad = {name: days for name, days in retention_days.items() if not isinstance(days, int) or days < 1}
    if bad:
        raise ValueError(f"retention_days must be whole days ≥ 1, got {bad}")
    return max(retention_days.values())


def plain_media_type(value: str) -> str:
    """``application/vnd.elasticsearch+json; compatible-with=9`` → ``application/json`` (others unchanged)."""
    base = value.split(";", 1)[0].strip().lower()
    return _VENDOR_MEDIA_TYPES.get(base, value)


class PlainMediaTypes:
    """Node mixin: rewrites the client's vendor media types (Accept, Content-Type) to the plain JSON ones, for
    servers that refuse ``application/vnd.elasticsearch+json`` (the client converts any header it is given)."""

    def perform_request(self, method: str, target: str, body: bytes | None = None,
                        headers: HttpHeaders | None = None, **kwargs: Any) -> NodeApiResponse:
        if headers is not None:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                if name in headers:
                    headers[name] = plain_media_type(headers[name])
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)  # type: ignore[misc]


class PlainMediaTypeNode(PlainMediaTypes, Urllib3HttpNode):
    """The default urllib3 node with plain JSON media types."""


def plain_media_type_node(node_class: type[BaseNode] | str | None) -> type[BaseNode]:
    """``node_class`` (a class, ``"urllib3"``, ``"requests"`` or None for urllib3) sending plain media types."""
    if node_class is None:
        return PlainMediaTypeNode
    if isinstance(node_class, str):
        if node_class not in _NODE_CLASS_NAMES:
            raise ValueError(f"node_class {node_class!r}: cannot send plain media types with it; "
                             f"use one of {sorted(_NODE_CLASS_NAMES)} or a node class")
        node_class = _NODE_CLASS_NAMES[node_class]
    if issubclass(node_class, PlainMediaTypes):
        return node_class
    return type(f"PlainMediaType{node_class.__name__}", (PlainMediaTypes, node_class), {})


def load_template(path: Path = TEMPLATE_FILE) -> dict[str, Any]:
    """Read and validate the template body (``settings`` + ``mappings``); keys starting with ``_`` are comments."""
    body = json.loads(path.read_text(encoding="utf-8"))
    body = {k: v for k, v in body.items() if not k.startswith("_")}
    validate_template(body, str(path))
    return body


def field_types(mappings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Dotted leaf field name → its mapping (``{"source.ip": {"type": "ip"}, ...}``)."""
    leaves: dict[str, dict[str, Any]] = {}

    def walk(props: Mapping[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            dotted = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], f"{dotted}.")
            else:
                leaves[dotted] = dict(spec)

    walk(mappings.get("properties", {}), "")
    return leaves


def validate_template(body: Mapping[str, Any], where: str = "template") -> None:
    """Raise ValueError unless the body is a sound event mapping.

    Rules: ``dynamic`` false or strict; known leaf types only; ``text`` for ``message`` alone, without sub-fields;
    ``@timestamp`` a date; the IP_FIELDS of the store interface ip; every KEYWORD_FIELDS entry mapped and indexed.
    """

    def fail(msg: str) -> None:
        raise ValueError(f"{where}: {msg}")

    if set(body) - {"settings", "mappings"}:
        fail(f"unexpected keys {sorted(set(body) - {'settings', 'mappings'})}")
    if not isinstance(body.get("settings", {}), dict):
        fail("settings must be an object")
    mappings = body.get("mappings")
    if not isinstance(mappings, dict) or not isinstance(mappings.get("properties"), dict):
        fail("mappings.properties is required")
        return
    if mappings.get("dynamic") not in (False, "false", "strict"):
        fail("mappings.dynamic must be false or strict: unknown fields stay in _source, unindexed")

    def walk(props: Mapping[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            dotted = f"{prefix}{name}"
            if not isinstance(spec, dict):
                fail(f"{dotted}: mapping must be an object")
            if "properties" in spec:
                if "type" in spec and spec["type"] != "object":
                    fail(f"{dotted}: an object field cannot have type {spec['type']!r}")
                walk(spec["properties"], f"{dotted}.")
            elif spec.get("type") not in _LEAF_TYPES:
                fail(f"{dotted}: type {spec.get('type')!r} is not one of {sorted(_LEAF_TYPES)}")

    walk(mappings["properties"], "")
    leaves = field_types(mappings)
    texts = sorted(name for name, spec in leaves.items() if spec["type"] == "text")
    if texts != ["message"]:
        fail(f"text is for message only, found text fields {texts}")
    if "fields" in leaves["message"]:
        fail("message must not have sub-fields")
    if leaves.get("@timestamp", {}).get("type") != "date":
        fail("@timestamp must be a date")
    for name in IP_FIELDS:
        if leaves.get(name, {}).get("type") != "ip":
            fail(f"{name} must be an ip field")
    for name in KEYWORD_FIELDS:
        spec = leaves.get(name)
        if spec is None or spec.get("index") is False:
            fail(f"{name} is a filter field of the store interface and must be mapped and indexed")


def _event_day(event: Event) -> datetime:
    """The UTC datetime of ``@timestamp`` (ISO-8601 string or datetime); ValueError if missing or unparsable."""
    value = event.get("@timestamp")
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str) and value:
        ts = datetime.fromisoformat(value)
    else:
        raise ValueError("missing @timestamp")
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def _refuses_media_type(exc: ApiError) -> bool:
    return exc.meta.status in _MEDIA_TYPE_REFUSED or (
        exc.meta.status == 400 and "media_type_header_exception" in str(exc.body or exc.message))


def _weight(event: Event) -> int:
    """A cheap estimate of a document's size in a bulk request: its free texts and a kilobyte for the rest."""
    inner = event.get("event")
    original = inner.get("original") if isinstance(inner, dict) else None
    message = event.get("message")
    return 1024 + sum(len(t) for t in (original, message) if isinstance(t, str))


def _time_assumed(event: Event) -> bool:
    tags = event.get("tags")
    return isinstance(tags, list) and not ASSUMED_TIME_TAGS.isdisjoint(t for t in tags if isinstance(t, str))


def _without_original(event: Event) -> Event:
    inner = event.get("event")
    if not isinstance(inner, dict) or "original" not in inner:
        return event
    return {**event, "event": {k: v for k, v in inner.items() if k != "original"}}


def _error_reason(info: Mapping[str, Any]) -> str:
    error = info.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}".rstrip(": ")
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            reason += f" ({cause.get('type')}: {cause['reason']})"
        return reason
    return str(error or f"status {info.get('status')}")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class ElasticsearchStore:
    """EventStore on an Elasticsearch 8.x/9.x cluster, or a server of the same API that identifies as
    Elasticsearch (``X-Elastic-Product``) but refuses the compatibility media type, such as osmem-server: that
    is detected on first use and plain JSON is sent from then on. The official client refuses servers that do
    not identify as Elasticsearch, so a plain OpenSearch cluster is not supported (a clear error says so).

    ``client_or_url``: an ``Elasticsearch`` client (not closed by :meth:`close`) or URL(s) to build one from
    (with ``client_options`` passed to the constructor; closed by :meth:`close`).
    ``retention_days``: age after which ILM deletes a whole daily index (policy ``min_age`` is one day more, so
    the last event of a day is kept the full period). Daily indices mix data classes, so this must be the
    longest retention of any class (see :func:`longest_retention`; None: the longest of the default settings);
    :meth:`delete_before` removes classes kept shorter. ``ilm``: None detects, False never uses ILM, True
    requires it.
    ``refresh``: the bulk ``refresh`` parameter (``"wait_for"`` or True gives read-after-write; default False,
    i.e. new events are searchable after the index refresh interval, normally 1 s).
    ``keep_original``: store ``event.original`` (unindexed, in _source only) or drop it before writing.
    """

    def __init__(
        self,
        client_or_url: Elasticsearch | str | Sequence[str],
        *,
        index_prefix: str = "yunshu-events",
        retention_days: int | None = None,
        ilm: bool | None = None,
        refresh: bool | Literal["wait_for"] = False,
        keep_original: bool = True,
        shards: int | None = None,
        replicas: int | None = None,
        chunk_size: int = 1000,
        request_timeout: float = 30.0,
        maintenance_timeout: float = 600.0,
        client_options: Mapping[str, Any] | None = None,
        template_path: Path = TEMPLATE_FILE,
    ) -> None:
        if not _PREFIX.fullmatch(index_prefix):
            raise ValueError(f"index_prefix {index_prefix!r}: lowercase letters, digits, '.', '_' and '-' only")
        if retention_days is None:
            retention_days = longest_retention()
        if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1:
            raise ValueError(f"retention_days must be whole days ≥ 1, got {retention_days!r}")
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if isinstance(client_or_url, Elasticsearch):
            self.client = client_or_url
            self._owns_client = False
        else:
            self._hosts = [client_or_url] if isinstance(client_or_url, str) else list(client_or_url)
            self._client_options = {"request_timeout": request_timeout, **dict(client_options or {})}
            self.client = Elasticsearch(self._hosts, **self._client_options)
            self._owns_client = True
        self.index_prefix = index_prefix
        self.template_name = index_prefix
        self.policy_name = index_prefix
        self.retention_days = retention_days
        self.refresh_policy = refresh
        self.keep_original = keep_original
        self.chunk_size = chunk_size
        self.maintenance_timeout = maintenance_timeout
        self._ilm_wanted = ilm
        self.template = load_template(template_path)
        settings = self.template.setdefault("settings", {}).setdefault("index", {})
        if shards is not None:
            settings["number_of_shards"] = shards
        if replicas is not None:
            settings["number_of_replicas"] = replicas
        self.fields = field_types(self.template["mappings"])
        self.retention_mode: RetentionMode | None = None  # set by ensure_ready()
        self.plain_media_types = False  # set by ensure_ready() when the server refuses the vendor media type
        self._lock = threading.Lock()

    # -- naming and setup ------------------------------------------------------------------------------------

    @property
    def index_pattern(self) -> str:
        return f"{self.index_prefix}-*"

    def index_for(self, event: Event) -> str:
        """The daily index of an event: ``{prefix}-YYYY.MM.DD`` of its UTC ``@timestamp``."""
        return f"{self.index_prefix}-{_event_day(event):%Y.%m.%d}"

    def ensure_ready(self) -> None:
        """Negotiate the media type, detect ILM, install the lifecycle policy (if ILM) and the index template;
        once per store."""
        if self.retention_mode is not None:
            return
        with self._lock:
            if self.retention_mode is not None:
                return
            self._negotiate_media_type()
            mode: RetentionMode = "ilm" if self._ilm_available() else "delete_by_query"
            settings = copy.deepcopy(self.template.get("settings", {}))
            if mode == "ilm":
                policy = {
                    "_meta": {"managed_by": "yunshu", "retention_days": self.retention_days},
                    "phases": {
                        "hot": {"min_age": "0ms", "actions": {}},
                        "delete": {"min_age": f"{self.retention_days + 1}d", "actions": {"delete": {}}},
                    },
                }
                self._call(lambda: self.client.ilm.put_lifecycle(name=self.policy_name, policy=policy))
                settings.setdefault("index", {}).setdefault("lifecycle", {})["name"] = self.policy_name
            self._call(lambda: self.client.indices.put_index_template(
                name=self.template_name,
                index_patterns=[self.index_pattern],
                priority=200,
                template={"settings": settings, "mappings": self.template["mappings"]},
                meta={"managed_by": "yunshu", "retention_mode": mode},
            ))
            log.info("event store %s ready (retention by %s)", self.index_pattern, mode)
            self.retention_mode = mode

    def _probe(self) -> None:
        """A cheap read-only request with a JSON body (the media type of bodies is what servers refuse)."""
        self._call(lambda: self.client.search(
            index=self.index_pattern, ignore_unavailable=True, allow_no_indices=True, size=0,
            track_total_hits=False, terminate_after=1, query={"match_all": {}}))

    def _negotiate_media_type(self) -> None:
        """Send plain ``application/json`` from now on if the server refuses the client's compatibility type."""
        try:
            self._probe()
            return
        except UnsupportedProductError as exc:
            raise StoreConfigError(f"the event store server is not Elasticsearch (no 'X-Elastic-Product: "
                             f"Elasticsearch' header), which the elasticsearch client refuses: {exc}") from None
        except SerializationError as exc:  # an answer that is not JSON: a proxy's error page, or the wrong URL
            raise StoreUnavailable(f"the event store server answered with what is not JSON (a proxy's error page, "
                                   f"or not Elasticsearch at this URL): {exc}") from None
        except ApiError as exc:
            if not _refuses_media_type(exc):
                raise StoreConfigError(f"the event store server did not answer a search as Elasticsearch does "
                                       f"({exc.meta.status} {exc.message})") from None
            refusal = f"{exc.meta.status} {exc.message}"
        if not self._owns_client:
            raise StoreConfigError(f"the event store server refuses the client's compatibility media type ({refusal}); "
                             "build the client with node_class=PlainMediaTypeNode, or pass a URL")
        options = dict(self._client_options)
        options["node_class"] = plain_media_type_node(options.get("node_class"))
        old, self.client = self.client, Elasticsearch(self._hosts, **options)
        old.close()
        self.plain_media_types = True
        nodes = ", ".join(f"{n.config.host}:{n.config.port}" for n in self.client.transport.node_pool.all())
        log.info("event store server %s refuses the Elasticsearch compatibility media type (%s); "
                 "sending plain application/json from now on", nodes, refusal)
        try:
            self._probe()
        except ApiError as exc:
            if _refuses_media_type(exc):
                raise StoreConfigError(f"the event store server refuses both the compatibility and the plain JSON "
                                 f"media types: {exc.meta.status} {exc.message}") from None
            raise

    def _ilm_available(self) -> bool:
        if self._ilm_wanted is False:
            return False
        try:
            self._call(self.client.ilm.get_status)
        except (ApiError, StoreUnavailable) as exc:
            refused = exc if isinstance(exc, ApiError) else exc.__cause__
            # a user without the read_ilm privilege (401/403) is "no ILM", not an unavailable store
            if not isinstance(refused, ApiError) or (isinstance(exc, StoreUnavailable)
                                                     and refused.meta.status not in (401, 403)):
                raise
            if self._ilm_wanted:
                raise RuntimeError(f"ILM required (ilm=True) but not available: {refused}") from exc
            log.info("no ILM on this cluster or not readable by this user (%s); retention falls back to "
                     "delete-by-query", refused.meta.status)
            return False
        return True

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one client call; down, timing out, overloaded or refusing clusters raise StoreUnavailable."""
        try:
            return fn()
        except (TransportConnectionError, ConnectionTimeout) as exc:
            raise StoreUnavailable(f"elasticsearch unreachable: {exc}") from exc
        except ApiError as exc:
            if exc.meta.status >= 500 or exc.meta.status in _UNAVAILABLE_STATUS:
                raise StoreUnavailable(f"elasticsearch refused ({exc.meta.status}): {exc}") from exc
            raise

    # -- writing ---------------------------------------------------------------------------------------------

    def write(self, docs: list[tuple[str, Event]]) -> WriteResult:
        """Bulk-create the documents; 409 counts as a duplicate, other per-item errors are rejections.

        Items refused with 429 or 5xx make the whole call raise StoreUnavailable (after the chunk), so the caller
        retries the batch; the ids make that retry idempotent.
        """
        result = WriteResult()
        if not docs:
            return result
        self.ensure_ready()
        pending: list[tuple[str, str, Event]] = []
        for doc_id, event in docs:
            try:
                index = self.index_for(event)
            except (ValueError, TypeError) as exc:
                result.rejected.append((doc_id, f"invalid @timestamp: {exc}"))
                continue
            pending.append((doc_id, index, event if self.keep_original else _without_original(event)))
        pending = self._not_stored_elsewhere(pending, result)
        for chunk in self._bulk_chunks(pending):
            unavailable = self._bulk(chunk, result)
            if unavailable:
                raise StoreUnavailable(f"elasticsearch refused items of a bulk request: {unavailable}")
        return result

    def _unwritable(self, source: Event) -> str | None:
        """Why the client cannot write ``source`` as JSON, or None when it can."""
        try:
            self.client.transport.serializers.dumps(source, mimetype="application/json")
        except SerializationError as exc:
            return f"cannot be written as JSON: {exc}"
        return None

    def _not_stored_elsewhere(self, pending: list[tuple[str, str, Event]],
                              result: WriteResult) -> list[tuple[str, str, Event]]:
        """``pending`` without the documents stamped with their parse time (tagged so by the parsers) that are
        stored already, counted as duplicates: parsed again on another day, such a document would go to another
        daily index, where ``create`` cannot see its first copy."""
        assumed = [doc_id for doc_id, _, source in pending if _time_assumed(source)]
        if not assumed:
            return pending
        stored: set[str] = set()
        for chunk in _chunks(assumed, 1000):
            response = self._search(query={"ids": {"values": list(chunk)}}, size=len(chunk), source=False,
                                    track_total_hits=False)
            stored.update(hit["_id"] for hit in response["hits"]["hits"])
        result.duplicates += sum(1 for doc_id, _, _ in pending if doc_id in stored)
        return [item for item in pending if item[0] not in stored]

    def _bulk_chunks(self, pending: list[tuple[str, str, Event]]) -> Iterator[list[tuple[str, str, Event]]]:
        """Chunks of at most ``chunk_size`` documents and about MAX_BULK_BYTES."""
        chunk: list[tuple[str, str, Event]] = []
        weight = 0
        for item in pending:
            size = _weight(item[2])
            if chunk and (len(chunk) >= self.chunk_size or weight + size > MAX_BULK_BYTES):
                yield chunk
                chunk, weight = [], 0
            chunk.append(item)
            weight += size
        if chunk:
            yield chunk

    def _bulk(self, chunk: list[tuple[str, str, Event]], result: WriteResult) -> str | None:
        """Bulk-create a chunk into ``result``; returns why items were refused as unavailable (None if none were).

        A chunk refused as a whole for its size (413) is split in two and each half sent again, down to a single
        document, which is rejected. A serialisation error is the request's when some document cannot be written
        as JSON (those are rejected, the rest sent again), otherwise the answer's (a proxy's error page, say):
        StoreUnavailable."""
        operations: list[Mapping[str, Any]] = []
        for doc_id, index, source in chunk:
            operations.append({"create": {"_index": index, "_id": doc_id}})
            operations.append(source)
        refresh = self.refresh_policy or None
        try:
            response = self._call(lambda: self.client.bulk(operations=operations, refresh=refresh))
        except SerializationError as exc:
            unwritable = {id(item): reason for item in chunk if (reason := self._unwritable(item[2])) is not None}
            if not unwritable:
                raise StoreUnavailable(f"elasticsearch answered with what is not JSON: {exc}") from exc
            result.rejected.extend((item[0], unwritable[id(item)]) for item in chunk if id(item) in unwritable)
            rest = [item for item in chunk if id(item) not in unwritable]
            return self._bulk(rest, result) if rest else None
        except ApiError as exc:
            if exc.meta.status != 413:
                raise
            if len(chunk) == 1:
                result.rejected.append((chunk[0][0], "larger than the cluster takes in one request (413)"))
                return None
            half = len(chunk) // 2
            return self._bulk(chunk[:half], result) or self._bulk(chunk[half:], result)
        unavailable: str | None = None
        for (doc_id, _, _), item in zip(chunk, response["items"], strict=True):
            info = next(iter(item.values()))
            status = int(info.get("status", 0))
            if 200 <= status < 300:
                result.created += 1
            elif status == 409:
                result.duplicates += 1
            elif status >= 500 or status in _UNAVAILABLE_STATUS:
                unavailable = unavailable or f"{status} {_error_reason(info)}"
            else:
                result.rejected.append((str(info.get("_id") or doc_id), _error_reason(info)))
        return unavailable

    # -- reading ---------------------------------------------------------------------------------------------

    def _field(self, name: str, purpose: str, types: set[str] | None = None) -> dict[str, Any]:
        spec = self.fields.get(name)
        if spec is None or spec.get("index") is False:
            raise ValueError(f"{name!r} is not an indexed field of the event mapping (cannot {purpose})")
        if types is not None and spec["type"] not in types:
            raise ValueError(f"{name!r} is a {spec['type']} field (cannot {purpose})")
        return spec

    def build_query(self, query: SearchQuery) -> dict[str, Any]:
        """The Elasticsearch bool query for a SearchQuery (filter context only; order is by @timestamp)."""
        filters: list[dict[str, Any]] = []
        if query.start is not None or query.end is not None:
            bounds: dict[str, str] = {}
            if query.start is not None:
                bounds["gte"] = iso_utc(query.start)
            if query.end is not None:
                bounds["lt"] = iso_utc(query.end)
            filters.append({"range": {"@timestamp": {**bounds, "format": "strict_date_optional_time"}}})
        for name, value in query.where.items():
            self._field(name, "filter on it", _AGGREGATABLE)
            filters.append({"term": {name: value}})
        for name, cidr in query.cidr.items():
            self._field(name, "match a CIDR", {"ip"})
            filters.append({"term": {name: cidr}})
        if query.text and query.text.strip():  # the words in their order (blank text: no condition)
            filters.append({"match_phrase": {"message": query.text}})
        if query.departments is not None:
            if not query.departments:
                return {"match_none": {}}
            filters.append({"terms": {"gov.department": sorted(query.departments)}})
        return {"bool": {"filter": filters}} if filters else {"match_all": {}}

    def _read(self, fn: Callable[[], T]) -> T:
        """A read: as :meth:`_call`, and a query the cluster refuses (400: a value that does not fit its field's
        type, say) is a ValueError naming the reason."""
        try:
            return self._call(fn)
        except ApiError as exc:
            if exc.meta.status == 400:
                body = exc.body if isinstance(exc.body, dict) else {"error": str(exc.body or exc.message)}
                raise ValueError(f"Elasticsearch refused the query: {_error_reason(body)}") from None
            raise

    def _search(self, **kwargs: Any) -> dict[str, Any]:
        response = self._read(lambda: self.client.search(
            index=self.index_pattern, ignore_unavailable=True, allow_no_indices=True, **kwargs))
        return response.body

    def search(self, query: SearchQuery) -> SearchResult:
        """Matching events newest first (at most ``limit``, capped at 10 000) with the exact total."""
        self.ensure_ready()
        response = self._search(
            query=self.build_query(query), size=max(0, min(query.limit, MAX_RESULT_WINDOW)),
            sort=[{"@timestamp": {"order": "desc"}}], track_total_hits=True)
        hits = response["hits"]
        return SearchResult(total=int(hits["total"]["value"]),
                            hits=[(hit["_id"], hit["_source"]) for hit in hits["hits"]])

    def count(self, query: SearchQuery) -> int:
        self.ensure_ready()
        response = self._read(lambda: self.client.count(
            index=self.index_pattern, ignore_unavailable=True, allow_no_indices=True,
            query=self.build_query(query)))
        return int(response["count"])

    def terms(self, field_name: str, query: SearchQuery, size: int = 10) -> list[tuple[str, int]]:
        """Most frequent values (as strings: ``"3"`` for a level, ``"10.0.0.1"`` for an ip), ties by value."""
        self._field(field_name, "aggregate on it", _AGGREGATABLE)
        self.ensure_ready()
        agg = {"terms": {"field": field_name, "size": size, "order": [{"_count": "desc"}, {"_key": "asc"}]}}
        response = self._search(query=self.build_query(query), size=0, track_total_hits=False,
                                aggs={"values": agg})
        buckets = response.get("aggregations", {}).get("values", {}).get("buckets", [])
        return [(str(b.get("key_as_string", b["key"])), int(b["doc_count"])) for b in buckets]

    def date_histogram(self, query: SearchQuery, interval: str, offset_minutes: int = 0) -> list[tuple[datetime, int]]:
        """Non-empty buckets oldest first, aligned to the clock of UTC+``offset_minutes``."""
        histogram_step(interval)
        self.ensure_ready()
        sign, minutes = ("-" if offset_minutes < 0 else "+"), abs(int(offset_minutes))
        agg = {"date_histogram": {"field": "@timestamp", "fixed_interval": interval, "min_doc_count": 1,
                                  "time_zone": f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"}}
        response = self._search(query=self.build_query(query), size=0, track_total_hits=False,
                                aggs={"buckets": agg})
        buckets = response.get("aggregations", {}).get("buckets", {}).get("buckets", [])
        return [(datetime.fromtimestamp(b["key"] / 1000, UTC), int(b["doc_count"])) for b in buckets
                if b["doc_count"] > 0]

    def hunt(self, rule: SigmaRule, query: SearchQuery) -> SearchResult:
        """Retro-hunt with the pySigma Elasticsearch backend: the rule as a Lucene ``query_string`` inside the
        range and scope of ``query`` (its semantics are the backend's: keyword fields compare case-sensitively)."""
        from sigma.backends.elasticsearch import LuceneBackend
        from sigma.exceptions import SigmaError

        try:
            queries = LuceneBackend().convert_rule(rule)
        except SigmaError as exc:
            raise ValueError(f"rule cannot be expressed for Elasticsearch: {exc}") from None
        rule_query = {"bool": {"should": [{"query_string": {"query": q, "analyze_wildcard": True,
                                                            "default_field": "message"}} for q in queries],
                               "minimum_should_match": 1}}
        self.ensure_ready()
        scope = self.build_query(query)
        combined = {"bool": {"filter": [scope, rule_query]}}
        response = self._search(query=combined, size=max(0, min(query.limit, MAX_RESULT_WINDOW)),
                                sort=[{"@timestamp": {"order": "desc"}}], track_total_hits=True)
        hits = response["hits"]
        return SearchResult(total=int(hits["total"]["value"]),
                            hits=[(hit["_id"], hit["_source"]) for hit in hits["hits"]])

    # -- retention and housekeeping --------------------------------------------------------------------------

    def delete_before(self, cutoff: datetime, data_class: str | None) -> int:
        """Delete events older than ``cutoff`` with this gov.data_class (None: events without one).

        Always a delete-by-query (also when ILM is in use, for classes kept shorter than ``retention_days``);
        whole daily indices are never dropped here because one index holds every data class.
        """
        self.ensure_ready()
        if data_class is None:
            class_filter: dict[str, Any] = {"bool": {"must_not": [{"exists": {"field": "gov.data_class"}}]}}
        else:
            class_filter = {"term": {"gov.data_class": data_class}}
        query = {"bool": {"filter": [
            {"range": {"@timestamp": {"lt": iso_utc(cutoff), "format": "strict_date_optional_time"}}},
            class_filter,
        ]}}
        response = self._call(lambda: self.client.options(request_timeout=self.maintenance_timeout).delete_by_query(
            index=self.index_pattern, query=query, conflicts="proceed", refresh=True,
            ignore_unavailable=True, allow_no_indices=True))
        body = response.body
        failures = body.get("failures") or []
        if failures:
            log.warning("delete_before %s/%s: %d failures, first: %s", cutoff, data_class, len(failures), failures[0])
        return int(body.get("deleted", 0))

    def refresh(self) -> None:
        """Make everything written so far searchable (tests, or before a report)."""
        self._call(lambda: self.client.indices.refresh(
            index=self.index_pattern, ignore_unavailable=True, allow_no_indices=True))

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
