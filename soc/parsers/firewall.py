"""Netfilter log lines (iptables ``LOG``, nftables ``log``, ufw) as the kernel writes them to syslog.

``kernel: [12345.678] [UFW BLOCK] IN=eth0 OUT= MAC=… SRC=1.2.3.4 DST=5.6.7.8 LEN=60 … PROTO=TCP SPT=1234 DPT=22 …``
"""

from __future__ import annotations

import re
from typing import Final

import cython

from soc.ecs import Event
from soc.parsers.common import as_count, as_ip, as_port
from soc.parsers.scan import split_netfilter, uptime_end

DATASET: Final = "iptables.log"

_PACKET: Final = re.compile(
    r"IN=(\S*) OUT=(\S*) (?:PHYSIN=\S* )?(?:PHYSOUT=\S* )?(?:MAC=(\S*) )?SRC=(\S+) DST=(\S+) LEN=(\d+) ", re.ASCII
)
_PROTO: Final = re.compile(r"PROTO=(\S+)(?: SPT=(\d{1,5}) DPT=(\d{1,5}))?", re.ASCII)
_UPTIME: Final = re.compile(r"\[\s*\d+\.\d+\]\s*", re.ASCII)
_DENY_WORDS: Final = ("BLOCK", "DROP", "REJECT", "DENY", "DENIED")
_ALLOW_WORDS: Final = ("ALLOW", "ACCEPT", "AUDIT")


_prefixes: dict[str, tuple[str, tuple[str, ...]]] = {}  # log prefix → (event.action, event.type)
_macs: dict[str, tuple[str, str] | None] = {}  # MAC= field → (destination.mac, source.mac)
_CACHE_MAX: Final = 4096


def _prefix(raw: str) -> tuple[str, tuple[str, ...]]:
    out = _prefixes.get(raw)
    if out is None:
        action = raw.strip().strip("[]:").strip()
        upper = action.upper()
        if any(word in upper for word in _DENY_WORDS):
            types: tuple[str, ...] = ("connection", "denied")
        elif any(word in upper for word in _ALLOW_WORDS):
            types = ("connection", "allowed")
        else:
            types = ("connection",)
        out = (action, types)
        if len(_prefixes) >= _CACHE_MAX:
            _prefixes.clear()
        _prefixes[raw] = out
    return out


def _mac_pair(raw: str) -> tuple[str, str] | None:
    out = _macs.get(raw, ())
    if out == ():
        out = None
        if len(raw) >= 35:
            out = (raw[0:17].upper().replace(":", "-"), raw[18:35].upper().replace(":", "-"))
        if len(_macs) >= _CACHE_MAX:
            _macs.clear()
        _macs[raw] = out
    return out


@cython.locals(msg=str, prefix=str, proto=str, src_ip=str, dst_ip=str, at=cython.Py_ssize_t, end=cython.Py_ssize_t)
def netfilter(event: Event, msg: str) -> bool:
    """Add the packet fields of a netfilter log message to ``event``; False when ``msg`` is not one."""
    at = msg.find("IN=")
    if at < 0 or (at > 0 and msg[at - 1] != " "):
        return False
    groups = split_netfilter(msg, at) if cython.compiled else None  # the common shape, split without the regexes
    if groups is not None:
        in_if, out_if, mac, src, dst, length, proto, sport, dport = groups
    else:
        m = _PACKET.match(msg, at)
        if m is None:
            return False
        in_if, out_if, mac, src, dst, length = m.groups()
        pm = _PROTO.search(msg, m.end())
        if pm is None:
            return False
        proto, sport, dport = pm.groups()
    prefix = msg[:at]
    if prefix[:1] == "[":
        if cython.compiled:
            if (end := uptime_end(prefix)) >= 0:
                prefix = prefix[end:]
        elif (um := _UPTIME.match(prefix)) is not None:
            prefix = prefix[um.end():]
    src_ip = as_ip(src)
    dst_ip = as_ip(dst)
    if src_ip is None or dst_ip is None:
        return False
    source: dict = {"ip": src_ip}
    destination: dict = {"ip": dst_ip}
    if sport is not None:
        if (port := as_port(sport)) is not None:
            source["port"] = port
        if (port := as_port(dport)) is not None:
            destination["port"] = port
    if mac:
        pair = _mac_pair(mac)
        if pair is not None:
            destination["mac"], source["mac"] = pair
    node = event["event"]
    node["category"] = ["network"]
    node["dataset"] = DATASET
    node["module"] = "iptables"
    if prefix and not prefix.isspace():
        action, types = _prefix(prefix)
        node["type"] = list(types)
        if action:
            node["action"] = action
    else:
        node["type"] = ["connection"]
    event["source"] = source
    event["destination"] = destination
    event["network"] = {"transport": proto.lower(), "type": "ipv6" if ":" in src_ip else "ipv4"}
    if in_if or out_if:
        observer: dict = {}
        if in_if:
            observer["ingress"] = {"interface": {"name": in_if}}
        if out_if:
            observer["egress"] = {"interface": {"name": out_if}}
        event["observer"] = observer
    packet_length = as_count(length)
    if packet_length is not None:
        event["iptables"] = {"length": packet_length}
    event["related"] = {"ip": [src_ip] if src_ip == dst_ip else [src_ip, dst_ip]}
    return True


def kernel(event: Event, msg: str) -> bool:
    """Kernel messages: netfilter packets get their fields; others stay plain syslog events."""
    return netfilter(event, msg)
