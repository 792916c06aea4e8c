"""How Sigma compares event values, shared by the in-memory matcher and the SQL translation of rules."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# Timestamp modifiers (minute … year) → the part of a UTC time they compare.
TIME_PARTS: dict[str, Callable[[datetime], int]] = {
    "minute": lambda t: t.minute,
    "hour": lambda t: t.hour,
    "day": lambda t: t.day,
    "week": lambda t: t.isocalendar().week,
    "month": lambda t: t.month,
    "year": lambda t: t.year,
}


def as_number(value: Any) -> float | None:
    """A number from an event value (numbers, numeric text); None for anything else, booleans included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # past any float: it compares as an infinity of its sign
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def as_timestamp(value: Any) -> datetime | None:
    """A UTC time from ISO-8601 text (no zone: UTC) or an epoch number (seconds, or milliseconds when large); None
    for anything else, a number past the years datetime holds included."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC)
    return None


def in_network(value: Any, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Whether an event value is an address (a zone suffix ignored) inside ``network``. An IPv4-mapped IPv6
    address (``::ffff:10.1.2.4``) and its IPv4 address are one address, as the stores' address keys and
    Elasticsearch's ip type take them."""
    if not isinstance(value, str):
        return False
    try:
        address = ipaddress.ip_address(value.strip().split("%")[0])
    except ValueError:
        return False
    if address.version != network.version:
        if isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped
            return mapped is not None and mapped in network
        return ipaddress.IPv6Address(f"::ffff:{address}") in network
    return address in network
