"""Shared pieces of the parsers: the context, the error, fast cached time and IP helpers.

Everything here is on the hot path: timestamps are converted with integer arithmetic and small caches
(a parser sees the same day, and often the same second, many times in a row) instead of building
``datetime`` objects for every line.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Final
from zoneinfo import ZoneInfo

import cython

from soc.ecs import TIME_ASSUMED, iso_utc
from soc.parsers.scan import is_ipv4

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class ParseContext:
    """What a line does not say itself: the sender's zone, "now" for year inference, the host name."""

    tz: ZoneInfo = SHANGHAI  # for timestamps without zone (RFC 3164, Apache error, OpenStack)
    now: datetime | None = None  # reference for RFC 3164 year inference (default: the current time)
    hostname: str | None = None  # host.name when the line carries none (files)


DEFAULT_CONTEXT: Final = ParseContext()


class ParseError(ValueError):
    """The line is not in the format asked for; the message says why."""


MONTHS: Final = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
    "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_CACHE_MAX: Final = 8192
_MISSING: Final = object()

_day_prefix: dict[int, str] = {}  # days since the epoch → "YYYY-MM-DDT"
_day_number: dict[tuple[int, int, int], int] = {}  # (y, m, d) → days since the epoch
_local_day: dict[tuple[tzinfo, int, int, int], int | None] = {}  # → UTC offset in seconds, None on DST days


def _bounded(cache: dict, key: object, value: object) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


def epoch_iso(seconds: int, millis: int = 0) -> str:
    """UTC epoch seconds (+ milliseconds) → ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    days, sod = divmod(seconds, 86400)
    prefix = _day_prefix.get(days)
    if prefix is None:
        try:
            prefix = date.fromordinal(days + _EPOCH_ORDINAL).isoformat() + "T"
        except (ValueError, OverflowError) as exc:
            raise ParseError(f"timestamp out of range: {seconds}") from exc
        _bounded(_day_prefix, days, prefix)
    hours, rem = divmod(sod, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{prefix}{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}Z"


def _check_clock(hour: int, minute: int, second: int) -> int:
    if hour > 23 or minute > 59 or second > 60:
        raise ParseError(f"invalid time of day {hour:02d}:{minute:02d}:{second:02d}")
    return 59 if second == 60 else second  # a leap second is kept inside its minute


def days_since_epoch(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a calendar date (validated; ParseError when impossible)."""
    key = (year, month, day)
    days = _day_number.get(key)
    if days is None:
        try:
            days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
        except (ValueError, OverflowError) as exc:
            raise ParseError(f"invalid date {year:04d}-{month:02d}-{day:02d}") from exc
        _bounded(_day_number, key, days)
    return days


def offset_iso(year: int, month: int, day: int, hour: int, minute: int, second: int, millis: int,
               offset_seconds: int) -> str:
    """A wall-clock time at a fixed UTC offset → UTC ISO string."""
    second = _check_clock(hour, minute, second)
    days = days_since_epoch(year, month, day)
    return epoch_iso(days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds, millis)


def day_offset(tz: tzinfo, year: int, month: int, day: int) -> int | None:
    """UTC offset of ``tz`` in seconds on a date, or None when it changes during that day (DST)."""
    key = (tz, year, month, day)
    cached = _local_day.get(key, _MISSING)
    if cached is _MISSING:
        try:
            first = datetime(year, month, day, tzinfo=tz).utcoffset()
            last = datetime(year, month, day, 23, 59, 59, tzinfo=tz).utcoffset()
        except (ValueError, OverflowError) as exc:
            raise ParseError(f"invalid date {year:04d}-{month:02d}-{day:02d} in {tz}") from exc
        cached = int(first.total_seconds()) if first is not None and first == last else None
        _bounded(_local_day, key, cached)
    return cached  # type: ignore[return-value]


def local_iso(tz: tzinfo, year: int, month: int, day: int, hour: int, minute: int, second: int,
              micros: int = 0) -> str:
    """A wall-clock time in ``tz`` → UTC ISO string (per-day offset cache; DST days take the slow path)."""
    second = _check_clock(hour, minute, second)
    days = days_since_epoch(year, month, day)
    offset = day_offset(tz, year, month, day)
    if offset is None:  # the offset changes during this day (DST): let zoneinfo decide
        try:
            return iso_utc(datetime(year, month, day, hour, minute, second, micros, tzinfo=tz))
        except (ValueError, OverflowError) as exc:
            raise ParseError(f"timestamp out of range in {tz}") from exc
    return epoch_iso(days * 86400 + hour * 3600 + minute * 60 + second - offset, micros // 1000)


def datetime_iso(value: datetime, tz: tzinfo) -> str:
    """Any datetime → UTC ISO string; naive values are wall-clock time in ``tz``."""
    offset = value.utcoffset()
    if offset is None:
        return local_iso(tz, value.year, value.month, value.day, value.hour, value.minute, value.second,
                         value.microsecond)
    return offset_iso(value.year, value.month, value.day, value.hour, value.minute, value.second,
                      value.microsecond // 1000, int(offset.total_seconds()))


_iso_text: dict[tuple[str, tzinfo], str] = {}


def iso_text(text: str, tz: tzinfo) -> str:
    """An ISO-8601 / RFC 3339 timestamp text (``Z``, offset or none) → UTC ISO string, cached."""
    key = (text, tz)
    out = _iso_text.get(key)
    if out is None:
        try:
            parsed = datetime.fromisoformat(text)
        except (ValueError, TypeError) as exc:
            raise ParseError(f"not an ISO-8601 timestamp: {text[:40]!r}") from exc
        out = datetime_iso(parsed, tz)
        _bounded(_iso_text, key, out)
    return out


def epoch_number_iso(value: float | int) -> str:
    """Epoch seconds, or milliseconds when the number is too large for seconds → UTC ISO string."""
    if isinstance(value, int):
        if abs(value) >= 100_000_000_000:  # milliseconds (1e11 s is the year 5138)
            seconds, millis = divmod(value, 1000)
            return epoch_iso(seconds, millis)
        return epoch_iso(value, 0)
    if value != value or value in (float("inf"), float("-inf")):
        raise ParseError("timestamp is not a finite number")
    if abs(value) >= 1e11:
        seconds = int(value // 1000)
        millis = int(value - seconds * 1000)
    else:
        seconds = int(value // 1)
        millis = round((value - seconds) * 1000)
    if millis >= 1000:
        seconds, millis = seconds + 1, millis - 1000
    return epoch_iso(seconds, millis)


def now_utc(ctx: ParseContext) -> datetime:
    """The context's "now" (aware, UTC) or the current time."""
    now = ctx.now
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def now_iso(ctx: ParseContext) -> str:
    """``@timestamp`` for records that carry no time of their own (see :func:`assume_time`)."""
    return iso_utc(now_utc(ctx))


def add_tag(event: dict, tag: str) -> None:
    """Append ``tag`` to the event's ``tags`` (made a list when it is not one)."""
    tags = event.get("tags")
    event["tags"] = [*tags, tag] if isinstance(tags, list) else [tag]


def assume_time(event: dict, ctx: ParseContext, tag: str = TIME_ASSUMED) -> None:
    """Stamp an event that carries no time of its own with the time it is parsed, and tag it so."""
    event["@timestamp"] = now_iso(ctx)
    add_tag(event, tag)


_ip_cache: dict[str, str | None] = {}
_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def as_ip(text: str) -> str | None:
    """The canonical text of an IPv4/IPv6 address, or None when ``text`` is not one (IPv4-mapped → IPv4).

    An IPv6 zone (``fe80::1%eth0``) is left out: ``ip`` fields (Elasticsearch's ``ip`` type) refuse it.
    """
    if (is_ipv4(text) if cython.compiled else _IPV4.fullmatch(text) is not None):
        return text
    if ":" not in text:
        return None
    out = _ip_cache.get(text, _MISSING)
    if out is _MISSING:
        out = _ipv6_text(text)
        _bounded(_ip_cache, text, out)
    return out  # type: ignore[return-value]


_V4_MAPPED: Final = bytes(10) + b"\xff\xff"
_ZERO_96: Final = bytes(12)


def _ipv6_text(text: str) -> str | None:
    """:func:`as_ip` for a text with a colon: the C library's inet_pton/inet_ntop (RFC 5952 text, as the
    ``ipaddress`` module writes it; a twentieth of its cost), ``ipaddress`` for what they leave (a zone, the
    deprecated IPv4-compatible ``::a.b.c.d``, which inet_ntop writes in dotted form) and for deciding what they
    refuse."""
    try:
        packed = inet_pton(AF_INET6, text)
    except (OSError, ValueError):
        return _ipaddress_text(text)
    head = packed[:12]
    if head == _V4_MAPPED:
        return inet_ntop(AF_INET, packed[12:])
    if head == _ZERO_96:
        return _ipaddress_text(text)
    return inet_ntop(AF_INET6, packed)


def _ipaddress_text(text: str) -> str | None:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(addr, "ipv4_mapped", None)
    if mapped is not None:
        addr = mapped
    elif getattr(addr, "scope_id", None) is not None:
        addr = ipaddress.IPv6Address(addr.packed)
    return str(addr)


INT64_MAX: Final = 2**63 - 1


@cython.cfunc
@cython.exceptval(check=False)
@cython.returns(cython.longlong)
@cython.locals(text=str, most=cython.Py_ssize_t, n=cython.Py_ssize_t, i=cython.Py_ssize_t, ch=cython.Py_UCS4,
               value=cython.longlong)
def _digits_value(text: str, most: int) -> int:
    """The value of ``text`` when it is 1 to ``most`` (≤ 18, so it fits) ASCII digits, else -1: ``int()`` without
    the generic number parser, for the digit fields of every line (compiled only; interpreted, ``int`` is faster)."""
    n = len(text)
    if n == 0 or n > most:
        return -1
    value = 0
    for i in range(n):
        ch = text[i]
        if ch < "0" or ch > "9":
            return -1
        value = value * 10 + (ord(ch) - 48)
    return value


def digits_value(text: str) -> int:
    """``int(text)`` for a text of 1 to 18 ASCII digits the caller has checked (a pid, a status code)."""
    if cython.compiled and type(text) is str:
        value = _digits_value(text, 18)
        if value >= 0:
            return value
    return int(text)


def as_port(text: str | None) -> int | None:
    """A TCP/UDP port (0-65535) from ASCII digits, or None (absent, out of range, not a number)."""
    if cython.compiled and type(text) is str:
        port = _digits_value(text, 5)
        return port if 0 <= port <= 65535 else None
    if text and len(text) <= 5 and text.isascii() and text.isdigit():
        port = int(text)
        return port if port <= 65535 else None
    return None


def as_count(text: str) -> int | None:
    """A non-negative count (bytes, lengths) from ASCII digits that fits a signed 64-bit ``long``, or None."""
    if cython.compiled and type(text) is str and len(text) <= 18:
        value = _digits_value(text, 18)
        return value if value >= 0 else None
    if text and len(text) <= 19 and text.isascii() and text.isdigit():
        value = int(text)
        return value if value <= INT64_MAX else None
    return None


def add_related(event: dict, kind: str, value: str) -> None:
    """Append to ``related.<kind>`` (``ip`` or ``user``) once."""
    related = event.get("related")
    if related is None:
        event["related"] = {kind: [value]}
        return
    values = related.get(kind)
    if values is None:
        related[kind] = [value]
    elif value not in values:
        values.append(value)


def set_endpoint(event: dict, side: str, host: str, port: int | None = None) -> None:
    """``source``/``destination``: ``ip`` when ``host`` is an address, else ``domain``; plus the port."""
    node: dict = {}
    ip = as_ip(host)
    if ip is not None:
        node["ip"] = ip
        add_related(event, "ip", ip)
    elif host:
        node["domain"] = host
        add_related(event, "hosts", host)
    if port is not None:
        node["port"] = port
    if node:
        existing = event.get(side)
        if existing is None:
            event[side] = node
        else:
            existing.update(node)


def set_user(event: dict, name: str) -> None:
    """``user.name`` and ``related.user``."""
    if not name:
        return
    user = event.get("user")
    if user is None:
        event["user"] = {"name": name}
    else:
        user["name"] = name
    add_related(event, "user", name)
