"""The event-store interface every implementation honours (one contract test-suite runs against all)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from soc.ecs import Event

if TYPE_CHECKING:
    from sigma.rule import SigmaRule

# Fields a search may filter on exactly (``where``) or by CIDR (``cidr``); stores index them.
KEYWORD_FIELDS = (
    "event.kind", "event.category", "event.type", "event.action", "event.outcome", "event.dataset",
    "event.module", "host.name", "host.ip", "source.ip", "source.port", "destination.ip", "destination.port",
    "user.name", "process.name", "url.path", "http.request.method", "http.response.status_code",
    "gov.system.id", "gov.department", "gov.mlps_level", "gov.data_class", "gov.pii", "log.syslog.appname",
)
# Every ip field of the event mapping (soc/store/es_template.json): filtered exactly or by CIDR (v4 and v6); a
# field holding a list (host.ip, related.ip) matches when any of its addresses does.
IP_FIELDS = ("host.ip", "source.ip", "destination.ip", "related.ip", "source.nat.ip", "destination.nat.ip",
             "observer.ip")
# Date-histogram intervals every store supports, in seconds.
HISTOGRAM_INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21_600, "1d": 86_400}


def histogram_step(interval: str) -> int:
    """Seconds in ``interval`` (one of HISTOGRAM_INTERVALS); ValueError naming the allowed ones otherwise."""
    try:
        return HISTOGRAM_INTERVALS[interval]
    except KeyError:
        raise ValueError(f"interval {interval!r}: expected one of {', '.join(HISTOGRAM_INTERVALS)}") from None


def ip_filter_network(name: str, value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The addresses an IP-field filter matches: a CIDR (host bits ignored, as Elasticsearch does) or one address
    (a /32 or /128); ValueError naming the field and the value otherwise."""
    text = str(value)
    try:
        if "/" in text:
            return ipaddress.ip_network(text, strict=False)
        return ipaddress.ip_network(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not an IP address or CIDR network "
                         "(e.g. 198.18.1.10, 198.18.0.0/15, 2001:db8::/32)") from None


def split_where(items: list[str]) -> tuple[dict[str, str | int], dict[str, str]]:
    """``field=value`` filters → (exact matches, CIDR ranges on IP fields); ValueError names a malformed item or
    a value of an IP field that is neither an address nor a CIDR network."""
    where: dict[str, str | int] = {}
    cidr: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"filters are field=value, got {item!r}")
        if value.startswith("="):
            raise ValueError(f"filters are field=value with one '=', got {item!r}")
        if name in IP_FIELDS:
            ip_filter_network(name, value)
        (cidr if name in IP_FIELDS and "/" in value else where)[name] = value
    return where, cidr


class StoreUnavailable(Exception):
    """The store cannot take or serve events right now (down, slow, refusing); callers spool and retry."""


@dataclass
class WriteResult:
    """What a bulk write did: ``created`` new documents, ``duplicates`` ids already stored."""

    created: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (id, reason): the store refused the document


@dataclass
class EncodedBatch:
    """Documents a store has already turned into what it writes (``payload``, the store's own form), and those it
    refused while doing so (id, reason).

    An encoding store's payload holds one item per document to write, in document order (SQLiteStore: its row tuples,
    in a list or packed for its writer process), so that batches can be joined (``join``) and written in one
    transaction: a list, or a sized collection of the store's own with ``extend`` and a constructor taking nothing.
    """

    payload: Any
    rejected: list[tuple[str, str]] = field(default_factory=list)
    lists: bool = False  # some document has a list where the store keeps one value (SQLiteStore's hot columns)

    @classmethod
    def join(cls, batches: list[EncodedBatch]) -> EncodedBatch:
        """One batch holding the payloads and the rejected documents of ``batches``, in their order."""
        joined = cls(payload=[])
        for batch in batches:
            joined.extend(batch)
        return joined

    def extend(self, other: EncodedBatch) -> None:
        """Append ``other``'s payload and rejected documents (and what it holds) to this batch (an empty payload takes
        the kind of ``other``'s)."""
        if not self.payload and type(self.payload) is not type(other.payload):
            self.payload = type(other.payload)()
        self.payload.extend(other.payload)
        self.rejected.extend(other.rejected)
        self.lists = self.lists or other.lists


class StoreConfigError(ValueError):
    """The store URL, or the server it names, cannot be used (an unknown scheme, a missing embedded store that is
    only read, a server that does not answer as Elasticsearch); a setting to correct, not an outage."""


@dataclass
class SearchQuery:
    """A search: time range [start, end), exact field values, CIDR ranges, full text, department scope."""

    start: datetime | None = None
    end: datetime | None = None
    text: str | None = None
    where: dict[str, str | int] = field(default_factory=dict)
    cidr: dict[str, str] = field(default_factory=dict)
    departments: set[str] | None = None  # None: every department; otherwise only events of these
    limit: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(f"limit must be a whole number ≥ 0, got {self.limit!r}")


@dataclass
class SearchResult:
    total: int
    hits: list[tuple[str, Event]]  # (id, event), newest first


class EventStore(Protocol):
    """Stores ECS events by deterministic id; writing an id twice stores it once."""

    def write(self, docs: list[tuple[str, Event]]) -> WriteResult:
        """Create the documents (ids already present count as duplicates). Raise StoreUnavailable when down."""
        ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def count(self, query: SearchQuery) -> int: ...

    def terms(self, field_name: str, query: SearchQuery, size: int = 10) -> list[tuple[str, int]]:
        """The most frequent values of a keyword field among matching events."""
        ...

    def date_histogram(self, query: SearchQuery, interval: str, offset_minutes: int = 0) -> list[tuple[datetime, int]]:
        """Counts per ``interval`` (a HISTOGRAM_INTERVALS key) among matching events, non-empty buckets oldest
        first; buckets start on the clock of UTC+``offset_minutes`` (480: days begin at 00:00 Beijing time)."""
        ...

    def hunt(self, rule: SigmaRule, query: SearchQuery) -> SearchResult:
        """Retro-hunt: the stored events (within ``query``'s range and scope) that a Sigma rule matches,
        translated to the store's own query language. ValueError when the rule cannot be translated."""
        ...

    def delete_before(self, cutoff: datetime, data_class: str | None) -> int:
        """Retention: delete events older than ``cutoff`` whose gov.data_class is ``data_class``
        (None: events with no data class). Returns how many were deleted."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class EncodingStore(Protocol):
    """A store whose ``write`` splits into CPU-bound encoding and the database write, so that a pipeline can encode
    the next batch in its parsing thread while another thread writes this one (``write`` = ``write_encoded`` ∘
    ``encode``)."""

    def encode(self, docs: list[tuple[str, Event]]) -> EncodedBatch: ...

    def write_encoded(self, encoded: EncodedBatch) -> WriteResult: ...
