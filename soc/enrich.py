"""Enrichment: the owning system from the register, and personal information tagged and masked.

The register index maps host names and IPv4/IPv6 addresses to the system's classification, so that
every event carries ``gov.system.id``, ``gov.department``, ``gov.mlps_level`` and ``gov.data_class``.
PII (身份证号 with a valid check digit, 手机号, bank card numbers passing Luhn) is listed in ``gov.pii``
and masked in ``message`` and ``event.original`` unless masking is switched off.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.models import Host, System
from soc.ecs import Event


@dataclass(frozen=True)
class SystemTag:
    system_id: str
    department: str
    mlps_level: int
    data_class: str

    def as_gov(self) -> dict[str, Any]:
        return {"system": {"id": self.system_id}, "department": self.department,
                "mlps_level": self.mlps_level, "data_class": self.data_class}


class RegisterIndex:
    """Host name / address → system classification, loaded once from the register (reload to refresh)."""

    def __init__(self, by_key: dict[str, SystemTag] | None = None):
        self.by_key = by_key or {}

    @classmethod
    def load(cls, session: Session) -> RegisterIndex:
        index: dict[str, SystemTag] = {}
        rows = session.execute(select(Host.name, Host.ipv4, Host.ipv6, System.id, System.department_code,
                                      System.mlps_level, System.data_class).join(System))
        for name, v4, v6, sid, dept, level, data_class in rows:
            tag = SystemTag(sid, dept, level, data_class)
            for key in (name, v4, v6 and str(ipaddress.IPv6Address(v6))):
                if key:
                    index[key.lower()] = tag
        return cls(index)

    def lookup(self, event: Event) -> SystemTag | None:
        host = event.get("host")
        if not isinstance(host, dict):
            return None
        for key in ("name", "hostname"):
            value = host.get(key)
            if isinstance(value, str):
                tag = self.by_key.get(value.lower()) or self.by_key.get(value.split(".", 1)[0].lower())
                if tag:
                    return tag
        ips = host.get("ip")
        for ip in ips if isinstance(ips, list) else [ips]:
            if isinstance(ip, str):
                tag = self.by_key.get(_canonical_ip(ip))
                if tag:
                    return tag
        return None


def _canonical_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text)).lower()
    except ValueError:
        return text.lower()


# --- personal information ---------------------------------------------------------------------------------

_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]{11,19}[Xx]?(?![0-9A-Za-z])")
# Eleven digits in a row: the shortest PII candidate. Spelled out, the regex engine scans faster than with {11};
# most messages fail this quick search and skip the substitution.
_CANDIDATE = re.compile("[0-9]" * 11)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"  # GB 11643-1999, ISO 7064 MOD 11-2
_MOBILE = re.compile(r"1[3-9][0-9]{9}")


def valid_id_card(number: str) -> bool:
    """18-character 公民身份号码 with a correct check character (GB 11643-1999)."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn_ok(number: str) -> bool:
    """Luhn (ISO/IEC 7812-1) check used by bank card numbers."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def classify(run: str) -> str | None:
    """Which kind of PII a digit run is, if any."""
    if len(run) == 18 and valid_id_card(run):
        return "id_card"
    if run[-1] in "Xx":
        return None
    if len(run) == 11 and _MOBILE.fullmatch(run):
        return "mobile"
    if 16 <= len(run) <= 19 and luhn_ok(run):
        return "bank_card"
    return None


def _mask(run: str, kind: str) -> str:
    if kind == "mobile":
        return run[:3] + "****" + run[-4:]
    if kind == "id_card":
        return run[:6] + "*" * 8 + run[-4:]
    return run[:6] + "*" * (len(run) - 10) + run[-4:]


def scan_pii(text: str, mask: bool) -> tuple[str, set[str]]:
    """The kinds of PII in ``text`` and the text with each occurrence masked (when ``mask``)."""
    kinds: set[str] = set()
    if not text or _CANDIDATE.search(text) is None:
        return text, kinds

    def replace(match: re.Match[str]) -> str:
        kind = classify(match.group())
        if kind is None:
            return match.group()
        kinds.add(kind)
        return _mask(match.group(), kind) if mask else match.group()

    masked = _DIGIT_RUN.sub(replace, text)
    return masked, kinds


class Enricher:
    """Adds gov.* from the register and tags/masks PII, in place."""

    def __init__(self, index: RegisterIndex, mask_pii: bool = True):
        self.index = index
        self.mask_pii = mask_pii

    def __call__(self, event: Event) -> Event:
        # gov.* is Yunshu's own classification: whatever a sender put there is dropped, or a JSON sender could
        # file its events under another department's scope
        event.pop("gov", None)
        tag = self.index.lookup(event)
        gov = tag.as_gov() if tag else {}
        message = event.get("message")
        if isinstance(message, str) and _CANDIDATE.search(message) is not None:  # the common case: nothing to scan
            masked, kinds = scan_pii(message, self.mask_pii)
            if kinds:
                gov["pii"] = sorted(kinds)
                event["message"] = masked
                original = event.get("event", {}).get("original")
                if isinstance(original, str):
                    event["event"]["original"] = scan_pii(original, self.mask_pii)[0]
        if gov:
            event["gov"] = gov
        _network_type(event)
        return event


def _network_type(event: Event) -> None:
    """ECS ``network.type`` (ipv4/ipv6) from the source address when the parser did not set it: the IPv6 share
    of the traffic is a KPI of the dual-stack migration."""
    source = event.get("source")
    ip = source.get("ip") if isinstance(source, dict) else None
    if not isinstance(ip, str):
        return
    network = event.get("network")
    if isinstance(network, dict):
        if "type" in network:
            return
    elif network is None:
        network = event["network"] = {}
    else:
        return
    network["type"] = "ipv6" if ":" in ip else "ipv4"
