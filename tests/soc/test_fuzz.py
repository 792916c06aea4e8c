"""Fuzzing the ingest path (issue 3): parsers, pipeline, HTTP record splitting, TCP framing, HTTP ingest.

Whatever arrives, there are two outcomes: an event both stores can take, or a dead letter that keeps the
raw bytes and a reason. No exception escapes (a ``ParseError("internal error: …")`` from the safety net in
``parse`` counts as a bug too), and nothing a store chokes on gets through: NaN/Infinity (Elasticsearch
and SQLite's JSON functions reject them), lone UTF-16 surrogates (not encodable as UTF-8), integers beyond
what Python will convert, ports outside 0-65535.

Generators are of two kinds: arbitrary text/bytes, and "near-valid" records (real headers and messages
with mutated fields) that get past the first regex and exercise the code behind it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.runtime import open_runtime
from core.settings import Settings
from portal.app import create_app
from portal.security import create_token, create_user
from portal.soc_api import split_records
from soc.deadletter import DeadLetterStore
from soc.ecs import get
from soc.enrich import Enricher, RegisterIndex
from soc.parsers import FORMATS, ParseContext, ParseError, parse
from soc.parsers.common import MONTHS
from soc.parsers.jsonlog import MAX_JSON_DEPTH
from soc.pipeline import Pipeline, RawRecord, file_records
from soc.receivers import FRAMING_ERRORS, MAX_FRAME, read_frames
from soc.store.base import SearchQuery
from soc.store.sqlite import SQLiteStore
from tests.conftest import PASSWORD

# CI budget: the file runs in well under a minute. YUNSHU_FUZZ_SCALE=20 (say) runs a longer campaign locally.
SCALE = max(1, int(os.environ.get("YUNSHU_FUZZ_SCALE", "1")))
FUZZ = settings(max_examples=400 * SCALE, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
MANY = settings(FUZZ, max_examples=1000 * SCALE)
FEW = settings(FUZZ, max_examples=150 * SCALE)

CTX = ParseContext(now=datetime(2026, 11, 22, 4, 0, tzinfo=UTC))
# another zone with DST (RFC 3164 days with two offsets take the slow path) and a host name for files
CTX_NY = ParseContext(tz=ZoneInfo("America/New_York"), now=datetime(2026, 3, 8, 12, 0, tzinfo=UTC), hostname="f01")
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
ENDPOINTS = ("source", "destination", "client", "server")
IP_FIELDS = ("source.ip", "destination.ip", "host.ip", "related.ip")
# long in soc/store/es_template.json: a value beyond 64 bits makes Elasticsearch refuse the whole event
LONG_FIELDS = ("process.pid", "process.parent.pid", "http.response.status_code", "http.response.bytes",
               "event.duration", "event.severity", "event.sequence", "log.syslog.facility.code",
               "log.syslog.severity.code", "network.bytes", "source.bytes", "destination.bytes")


# ---------------------------------------------------------------------------------------------------- invariants


def assert_storable(event: Any, derived: bool = True) -> None:
    """What every store needs of an event. ``derived``: the parser wrote the ECS fields (not a JSON document
    passed through as it came), so they must also fit the Elasticsearch mapping (``ip`` and ``long`` fields)."""
    assert isinstance(event, dict)
    # strict JSON: Elasticsearch and SQLite's json_each reject NaN/Infinity; UTF-8 rejects lone surrogates
    json.dumps(event, allow_nan=False, ensure_ascii=False).encode("utf-8")
    ts = event["@timestamp"]
    assert isinstance(ts, str) and ISO_Z.match(ts), ts
    assert datetime.fromisoformat(ts).tzinfo is not None
    assert isinstance(event["message"], str)
    assert isinstance(event["event"]["original"], str)
    if not derived:
        return
    for side in ENDPOINTS:
        node = event.get(side)
        if isinstance(node, dict) and "port" in node:
            assert type(node["port"]) is int and 0 <= node["port"] <= 65535, (side, node)
    for field in IP_FIELDS:
        values = get(event, field)
        for value in values if isinstance(values, list) else [values]:
            if value is not None:  # Elasticsearch's ip type takes no IPv6 zone ("fe80::1%eth0")
                assert isinstance(value, str) and "%" not in value and ipaddress.ip_address(value), (field, value)
    for field in LONG_FIELDS:
        value = get(event, field)
        assert value is None or (type(value) is int and -(2**63) <= value < 2**63), (field, value)


def outcome(line: str, fmt: str, ctx: ParseContext = CTX) -> dict | None:
    """The event, or None for a ParseError; any other exception, or a parser bug caught by parse(), fails."""
    try:
        event = parse(line, fmt, ctx)
    except ParseError as exc:
        assert str(exc), "a ParseError says why"
        assert not str(exc).startswith("internal error"), f"parser bug ({fmt}) on {line[:300]!r}: {exc}"
        return None
    assert_storable(event, derived=not (fmt == "json" or (fmt == "auto" and line[:1] == "{")))
    assert event["event"]["original"] == line.rstrip("\r\n")
    return event


def every_format(line: str, ctx: ParseContext = CTX) -> list[dict]:
    return [e for fmt in FORMATS if (e := outcome(line, fmt, ctx)) is not None]


# ---------------------------------------------------------------------------------------------------- strategies

texts = st.text(max_size=400)  # all of Unicode but surrogates: control characters, NUL, astral planes
noisy = st.text(alphabet=st.sampled_from(list(" <>[]{}():;=\"'\\.-/#*,0123456789aZ\x00\x1d\t\r\n\u00b2\u0663\u4e2d")),
                max_size=200)
long_lines = st.builds(lambda unit, n: (unit * n)[:200_000], st.text(min_size=1, max_size=12), st.integers(500, 20_000))
contexts = st.sampled_from([CTX, CTX_NY])


def digits(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(str)


def pad(lo: int, hi: int, width: int = 2) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda n: f"{n:0{width}d}")


# digit runs: small, long, beyond int64, beyond Python's 4300-digit int() limit, and non-ASCII digits
# ("²".isdigit() is True but int("²") fails; "٣" converts)
numbers = st.one_of(digits(0, 70_000), st.text("0123456789", min_size=1, max_size=30),
                    st.integers(4290, 4400).map(lambda n: "7" * n),
                    st.sampled_from(["-1", "", "0x16", "\u00b2", "\u0663"]))
ports = st.one_of(digits(0, 65535), digits(65536, 99999), numbers)
tokens = st.text(alphabet=st.characters(codec="utf-8", exclude_characters=" \t\n\r"), min_size=1, max_size=16)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ips = st.one_of(
    ipv4, ipv6, ipv6.map(lambda a: f"[{a}]"), ipv4.map(lambda a: f"::ffff:{a}"),
    st.tuples(*[st.integers(0, 999)] * 4).map(lambda t: ".".join(map(str, t))),
    st.sampled_from(["::", "fe80::1%eth0", "1.2.3", "localhost", "0.0.0.0", "255.255.255.255", "::1:", "[::1]:22"]),
    tokens,
)
users = st.one_of(st.sampled_from(["root", "admin", "ops", "invalid user x", "a b", "-", "?", "(unknown)", "LOGIN"]),
                  tokens, st.text(max_size=10))
months = st.sampled_from([*MONTHS, "Foo", "jan", "JAN", "Ja"])

SSHD = [
    "Accepted password for {user} from {ip} port {port} ssh2",
    "Failed publickey for invalid user {user} from {ip} port {port} ssh2",
    "Invalid user {user} from {ip} port {port}",
    "input_userauth_request: invalid user {user} [preauth]",
    "Disconnected from authenticating user {user} {ip} port {port} [preauth]",
    "Connection closed by {ip} port {port} [preauth]",
    "Connection reset by invalid user {user} {ip} port {port}",
    "Received disconnect from {ip} port {port}:11: Bye Bye [preauth]",
    'Connection from {ip} port {port} on {ip2} port 22 rdomain ""',
    "error: maximum authentication attempts exceeded for {user} from {ip} port {port} ssh2 [preauth]",
    "error: PAM: Authentication failure for {user} from {ip}",
    "Did not receive identification string from {ip} port {port}",
    "Unable to negotiate with {ip} port {port}: no matching key exchange method found.",
    "Bad protocol version identification '{user}' from {ip} port {port}",
    "reverse mapping checking getaddrinfo for {user} [{ip}] failed - POSSIBLE BREAK-IN ATTEMPT!",
    "message repeated {n} times: [ Failed password for {user} from {ip} port {port} ssh2]",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}",
    "pam_unix(sshd:session): session opened for user {user}(uid={n}) by {user2}(uid=0)",
    "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost={ip}",
    "check pass; user unknown",
    "PAM {n} more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}",
]
OTHERS = [
    ("sudo", "{user} : TTY=pts/0 ; PWD=/home/{user} ; USER={user2} ; COMMAND=/bin/{user}"),
    ("sudo", "{user} : {n} incorrect password attempts ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/sh"),
    ("sudo", "pam_unix(sudo:session): session closed for user {user}"),
    ("su", "Successful su for {user} by {user2}"),
    ("su", "'su {user}' failed for {user2} on /dev/pts/8"),
    ("login", "FAILED LOGIN {n} FROM {ip} FOR {user}, Authentication failure"),
    ("login", "ROOT LOGIN ON tty2"),
    ("ftpd", "connection from {ip} ({user}) at Sun Jul 17 12:00:00 2005"),
    ("ftpd", "ANONYMOUS FTP LOGIN FROM {ip}, (anonymous)"),
    ("klogind", "Authentication failed from {ip} ({user}): Permission denied"),
    ("snmpd", "Received SNMP packet(s) from {ip}"),
    ("gdm", "pam_unix(gdm:auth): authentication failure; logname= uid=0 euid=0 tty=:0 ruser= rhost={ip} user={user}"),
    ("CRON", "pam_unix(cron:session): session opened for user {user} by (uid=0)"),
]


@st.composite
def filled(draw: st.DrawFn, template: str) -> str:
    return template.format(user=draw(users), user2=draw(users), ip=draw(ips), ip2=draw(ips), port=draw(ports),
                           n=draw(numbers))


sshd_messages = st.sampled_from(SSHD).flatmap(filled)


@st.composite
def iptables_messages(draw: st.DrawFn) -> str:
    """``[uptime] [PREFIX] IN=… OUT=… MAC=… SRC=… DST=… LEN=… … PROTO=… SPT=… DPT=…`` with random fields."""
    hexmac = st.text(alphabet="0123456789abcdef:", max_size=60)
    fields = [
        ("IN", draw(st.sampled_from(["eth0", "", "br-1"]) | tokens)), ("OUT", draw(st.sampled_from(["", "eth1"]))),
        ("MAC", draw(hexmac)), ("SRC", draw(ips)), ("DST", draw(ips)), ("LEN", draw(numbers)),
        ("TOS", "0x00"), ("TTL", draw(numbers)), ("ID", draw(numbers)),
        ("PROTO", draw(st.sampled_from(["TCP", "UDP", "ICMP", "2", "", "tcp"]) | tokens)),
        ("SPT", draw(ports)), ("DPT", draw(ports)), ("WINDOW", draw(numbers)),
    ]
    extra = draw(st.lists(st.tuples(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6), tokens),
                          max_size=4))
    for key, value in extra:
        fields.insert(draw(st.integers(0, len(fields))), (key, value))
    if draw(st.booleans()):
        fields = draw(st.permutations(fields))
    body = " ".join(f"{k}={v}" for k, v in fields) + draw(st.sampled_from(["", " SYN URGP=0", " RES=0x00 ACK "]))
    prefix = draw(st.sampled_from(["", "[12345.678] ", "[    1.2] [UFW BLOCK] ", "[UFW ALLOW] ", "IPTABLES-DROP: ",
                                   "[x] "]) | noisy.map(lambda s: s + " "))
    return prefix + body


messages = st.one_of(sshd_messages, iptables_messages(), st.sampled_from(OTHERS).flatmap(lambda p: filled(p[1])),
                     texts, noisy)
programs = st.one_of(st.sampled_from(["sshd", "sshd-session", "sudo", "su", "login", "kernel", "gdm", "CRON", "ftpd",
                                      "klogind", "snmpd", "sshd(pam_unix)", "syslogd 1.4.1", "-- root",
                                      "su(pam_unix)"]), tokens)
pids = st.one_of(st.just(""), numbers.map(lambda n: f"[{n}]"), st.sampled_from(["[]", "[abc]", "["]))
pris = st.one_of(st.just(""), st.integers(0, 191).map(lambda p: f"<{p}>"),
                 st.sampled_from(["<192>", "<999>", "<-1>", "<>", "<1", "<0001>", "<abc>", "<1000>", "<38"]))
hosts = st.one_of(st.sampled_from(["web01", "-", "web01.gov.example.cn"]), ips, tokens)


@st.composite
def rfc3164_lines(draw: st.DrawFn) -> str:
    day = draw(st.integers(0, 39))
    stamp = (f"{draw(months)} {draw(st.sampled_from([f'{day:2d}', f'{day:02d}', str(day)]))} "
             f"{draw(pad(0, 29))}:{draw(pad(0, 99))}:{draw(pad(0, 99))}"
             f"{draw(st.sampled_from(['', '.5', '.123456']))}")
    tag = f"{draw(programs)}{draw(pids)}:"
    head = f"{stamp} {tag}" if draw(st.booleans()) and " " not in tag else f"{stamp} {draw(hosts)} {tag}"
    return f"{draw(pris)}{head} {draw(messages)}"


@st.composite
def iso_stamps(draw: st.DrawFn) -> str:
    """RFC 3339 timestamps, valid or with impossible fields (Feb 30, hour 25, offset +25:00, year 0)."""
    if draw(st.booleans()):
        value = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
        text = value.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds", "microseconds"])))
    else:
        text = (f"{draw(pad(0, 9999, 4))}-{draw(pad(0, 13))}-{draw(pad(0, 32))}T{draw(pad(0, 25))}:"
                f"{draw(pad(0, 61))}:{draw(pad(0, 61))}{draw(st.sampled_from(['', '.1', '.123456789']))}")
    zone = draw(st.sampled_from(["Z", "+08:00", "-05:00", "+0800", "", "+24:00", "+25:00", "-23:59", "+05:45", "z"]))
    return text + zone


sd_names = st.text(alphabet=st.characters(codec="ascii", exclude_characters=' ="]'), min_size=1, max_size=8)
sd_values = st.text(max_size=12).map(lambda v: v.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]"))
sd_elements = st.builds(
    lambda sid, params: "[" + sid + "".join(f' {k}="{v}"' for k, v in params) + "]",
    sd_names | st.just("timeQuality"), st.lists(st.tuples(sd_names, sd_values | st.text(max_size=8)), max_size=4))
structured = st.one_of(st.just("-"), st.lists(sd_elements, min_size=1, max_size=3).map("".join),
                       st.sampled_from(["[", "[a", '[a b="c', '[a b="\\"]', "[a b=c]", "[]", "-x", '[a b="c"]x']))


@st.composite
def rfc5424_lines(draw: st.DrawFn) -> str:
    version = draw(st.sampled_from(["1", "1", "1", "2", "0", "01", ""]))
    ts = draw(iso_stamps() | st.sampled_from(["-", "x", "2026-11-22"]))
    fields = " ".join(draw(st.sampled_from(["-", "sshd", "kernel", "sudo"]) | tokens) for _ in range(3))
    msg = draw(st.sampled_from(["", " ", " \ufeff"])) + draw(messages) if draw(st.booleans()) else ""
    return f"{draw(pris)}{version} {ts} {draw(hosts)} {fields} {draw(structured)}{msg}"


@st.composite
def rfc3339_lines(draw: st.DrawFn) -> str:
    return f"{draw(pris)}{draw(iso_stamps())} {draw(hosts)} {draw(programs)}{draw(pids)}: {draw(messages)}"


syslog_lines = st.one_of(rfc3164_lines(), rfc5424_lines(), rfc3339_lines())

quoted = st.text(max_size=30).map(lambda v: v.replace("\\", "\\\\").replace('"', '\\"'))
zones = st.builds(lambda sign, hh, colon, mm: f"{sign}{hh}{colon}{mm}", st.sampled_from("+-"), pad(0, 99),
                  st.sampled_from(["", ":"]), pad(0, 99))


@st.composite
def access_lines(draw: st.DrawFn) -> str:
    """nginx/Apache combined and common log format with random fields."""
    stamp = (f"{draw(pad(0, 39))}/{draw(months)}/{draw(pad(0, 9999, 4))}:{draw(pad(0, 29))}:"
             f"{draw(pad(0, 99))}:{draw(pad(0, 99))} {draw(zones)}")
    method = draw(st.sampled_from(["GET", "POST", "", "G3T", "\u4e2d"]))
    target = draw(st.sampled_from(["/", "/a?b=1", "http://x/y?z", "*", "https://h"]) | tokens)
    request = draw(st.sampled_from([f"{method} {target} HTTP/1.1", f"{method} {target}", "-", "\\x16\\x03"]) | quoted)
    tail = draw(st.one_of(st.just(""), st.builds(lambda r, a: f' "{r}" "{a}"', quoted, quoted)))
    user = draw(st.sampled_from(["-", "alice"]) | tokens)
    return (f'{draw(ips)} - {user} [{stamp}] "{request}" {draw(pad(0, 999, 3))} '
            f"{draw(numbers | st.just('-'))}{tail}" + draw(st.sampled_from(["", " rt=0.1", ' "x"'])))


@st.composite
def web_error_lines(draw: st.DrawFn) -> str:
    if draw(st.booleans()):  # Apache 2.2/2.4 error log
        stamp = (f"{draw(st.sampled_from(['Sun', 'Fri']))} {draw(months)} {draw(pad(0, 39))} {draw(pad(0, 29))}:"
                 f"{draw(pad(0, 99))}:{draw(pad(0, 99))}{draw(st.sampled_from(['', '.902022']))} "
                 f"{draw(pad(0, 9999, 4))}")
        level = draw(st.sampled_from(["error", "core:error", "mpm_event:notice", ":x", "\u4e2d"]) | tokens)
        proc = draw(st.sampled_from(["", f" [pid {draw(numbers)}]", f" [pid {draw(numbers)}:tid {draw(numbers)}]"]))
        client = draw(st.sampled_from(["", f" [client {draw(ips)}]", f" [client {draw(ips)}:{draw(ports)}]"]))
        code = draw(st.sampled_from(["", "AH00128: ", "AH1: "]))
        return f"[{stamp}] [{level}]{proc}{client} {code}{draw(messages)}"
    stamp = (f"{draw(pad(0, 9999, 4))}/{draw(pad(0, 13))}/{draw(pad(0, 32))} {draw(pad(0, 29))}:{draw(pad(0, 99))}:"
             f"{draw(pad(0, 99))}")
    conn = draw(st.sampled_from(["", f"*{draw(numbers)} "]))
    return (f"{stamp} [{draw(st.sampled_from(['error', 'warn', 'crit']) | tokens)}] {draw(numbers)}#{draw(numbers)}: "
            f"{conn}{draw(messages)}, client: {draw(ips)}, server: {draw(tokens)}")


audit_values = st.one_of(numbers, ips, users, st.binary(max_size=12).map(lambda b: b.hex().upper()),
                         quoted.map(lambda v: f'"{v}"'), st.sampled_from(["(null)", "?", "unset", "4294967295", '"x']))
audit_keys = st.sampled_from(["pid", "ppid", "uid", "auid", "euid", "exe", "comm", "cwd", "proctitle", "a0", "a1",
                              "argc", "acct", "UID", "AUID", "addr", "hostname", "res", "success", "key", "name",
                              "terminal", "ses", "syscall"]) | tokens


@st.composite
def auditd_lines(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(audit_keys, audit_values), max_size=8))
    body = " ".join(f"{k}={v}" for k, v in pairs)
    if draw(st.booleans()):  # a user-space record: the interesting part is in msg='…'
        body += " msg='" + " ".join(f"{k}={v}" for k, v in draw(st.lists(st.tuples(audit_keys, audit_values),
                                                                            max_size=5))) + "'"
    if draw(st.booleans()):  # enriched format: names after a GS character
        body += "\x1d" + " ".join(f"{k}={v}" for k, v in draw(st.lists(st.tuples(audit_keys, audit_values),
                                                                       max_size=3)))
    rtype = draw(st.sampled_from(["SYSCALL", "EXECVE", "USER_LOGIN", "PROCTITLE", "SOCKADDR", "X"]) | tokens)
    node = draw(st.sampled_from(["", "node=h1 "]))
    frac = draw(st.sampled_from(["", ".0", ".123", ".123456789"]))
    return f"{node}type={rtype} msg=audit({draw(numbers)}{frac}:{draw(numbers)}): {body}"


@st.composite
def openstack_lines(draw: st.DrawFn) -> str:
    stamp = (f"{draw(pad(0, 9999, 4))}-{draw(pad(0, 13))}-{draw(pad(0, 32))} {draw(pad(0, 29))}:"
             f"{draw(pad(0, 61))}:{draw(pad(0, 61))}{draw(st.sampled_from(['', '.008', '.123456']))}")
    fname = draw(st.sampled_from(["", "nova-api.log.1.2017-05-16_13:53:08 "]))
    context = draw(st.sampled_from(["", "[-] ", f"[req-{draw(tokens)} {draw(users)} {draw(tokens)} - - -] ", "[req-"]))
    instance = draw(st.sampled_from(["", "[instance: b9000564-fe1a-409b-b8cc-1e88b294cd1d] "]))
    wsgi = (f'{draw(ips)} "{draw(st.sampled_from(["GET", "POST"]))} {draw(tokens)} HTTP/1.1" status: '
            f'{draw(pad(0, 999, 3))} len: {draw(numbers)} time: {draw(numbers)}')
    body = draw(st.sampled_from([wsgi]) | messages)
    level = draw(st.sampled_from(["INFO", "ERROR", "WARNING", "x"]))
    return f"{fname}{stamp} {draw(numbers)} {level} nova.{draw(tokens)} {context}{instance}{body}"


# JSON: random nested values (huge integers, NaN/Infinity, lone surrogates as \uXXXX escapes, dotted keys)
json_keys = st.one_of(
    st.sampled_from(["@timestamp", "message", "msg", "event", "event.kind", "event.original", "source.ip", "source",
                     "host", "host.name", "ecs", "ecs.version", "time", "ts", "kind", "apiVersion", "user", "tags",
                     "sourceIPs", "objectRef", "responseStatus", "level", "log.level", "gov", "a.b", "a", "", "."]),
    st.text(max_size=8))
surrogate_text = st.text(alphabet=st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=8)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=10**400),
    st.integers(max_value=-(2**63)),
    st.floats(), st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 5e-324]),
    st.text(max_size=20), surrogate_text, iso_stamps())
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    json_keys, inner, max_size=5), max_leaves=25)


@st.composite
def json_documents(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["any", "object", "ecs", "k8s"]))
    if shape == "any":
        return draw(json_values)
    doc = draw(st.dictionaries(json_keys, json_values, max_size=6))
    if shape == "ecs":
        return {"@timestamp": draw(json_scalars), "event": draw(st.dictionaries(json_keys, json_values, max_size=3)),
                **doc}
    if shape == "k8s":
        def maybe(value: st.SearchStrategy[Any]) -> Any:
            return draw(st.one_of(value, json_values))
        return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": maybe(st.sampled_from(["get", "create"])),
                "user": maybe(st.fixed_dictionaries({"username": users, "uid": tokens, "groups": st.lists(users)})),
                "impersonatedUser": maybe(st.fixed_dictionaries({"username": users})),
                "sourceIPs": maybe(st.lists(ips | json_scalars, max_size=3)),
                "responseStatus": maybe(st.fixed_dictionaries({"code": json_scalars})),
                "requestURI": maybe(tokens), "stageTimestamp": maybe(json_scalars),
                "objectRef": maybe(st.dictionaries(st.sampled_from(["resource", "name", "namespace", "apiVersion",
                                                                    "apiGroup"]), json_scalars)), **doc}
    return doc


def dump(doc: Any, ascii_only: bool) -> str:
    """JSON text as a sender writes it (NaN and Infinity included); surrogates only ever as escapes."""
    text = json.dumps(doc, ensure_ascii=ascii_only)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(doc)
    return text


json_lines = st.one_of(
    st.builds(dump, json_documents(), st.booleans()),
    st.integers(1, 3000).map(lambda n: '{"a": ' + "[" * n + "]" * n + "}"),
    st.integers(1, 3000).map(lambda n: '{"a": ' + '{"b": ' * n + "1" + "}" * n + "}"),
    st.integers(4000, 4400).map(lambda n: '{"@timestamp": ' + "9" * n + "}"),
)
near_valid = st.one_of(syslog_lines, access_lines(), web_error_lines(), auditd_lines(), openstack_lines(), json_lines)


# ---------------------------------------------------------------------------------------------------- 1. parse()


@MANY
@given(line=st.one_of(texts, noisy, long_lines), ctx=contexts)
@example(line="\x00", ctx=CTX)
@example(line="<13>1 - - - - - -" + "\x00" * 100, ctx=CTX)
def test_arbitrary_text_parses_or_raises_parse_error(line: str, ctx: ParseContext) -> None:
    every_format(line, ctx)


@FUZZ
@given(line=syslog_lines, ctx=contexts)
@example(line="<999>Nov 22 12:15:51 h sshd[1]: x", ctx=CTX)
@example(line="<-1>1 2026-02-30T25:00:00Z h a - - - x", ctx=CTX)
@example(line='<38>1 2026-11-22T04:00:00Z h a - - [id k="v\\"]\\\\" k2="]"] msg', ctx=CTX)
@example(line="Nov 22 12:15:51 h sshd[1]: Accepted password for a from 1.2.3.4 port 99999 ssh2", ctx=CTX)
@example(line="Nov 22 12:15:51 h sshd: Invalid user a from ::1 port 70000", ctx=CTX)
@example(line="Nov 22 12:15:51 fe80::2%eth0 sshd[1]: Accepted password for a from fe80::1%eth0 port 22 ssh2", ctx=CTX)
@example(line="Nov 22 12:15:51 h kernel: IN=e OUT= SRC=1.2.3.4 DST=::1 LEN=1 PROTO=TCP SPT=99999 DPT=1", ctx=CTX)
def test_syslog_near_valid(line: str, ctx: ParseContext) -> None:
    events = every_format(line, ctx)
    if line.startswith("<") and (m := re.match(r"<(\d+)>", line)) and int(m.group(1)) > 191:
        assert not events, "an out-of-range PRI is refused by every format"


@FUZZ
@given(line=st.one_of(access_lines(), web_error_lines()), ctx=contexts)
@example(line="[Fri Sep 09 10:42:29 2011] [error] [client 1.2.3.4:\u00b2] x", ctx=CTX)
@example(line="[Fri Sep 09 10:42:29 2011] [error] [client 1.2.3.4:123456789012345678901234567890] x", ctx=CTX)
@example(line='1.2.3.4 - - [22/Nov/2026:12:15:51 +0800] "GET / HTTP/1.1" 200 ' + "9" * 4400, ctx=CTX)
@example(line='1.2.3.4 - - [30/Feb/2026:25:15:51 +9999] "GET / HTTP/1.1" 200 1', ctx=CTX)
def test_web_logs_near_valid(line: str, ctx: ParseContext) -> None:
    every_format(line, ctx)


@FUZZ
@given(line=st.one_of(auditd_lines(), openstack_lines()), ctx=contexts)
@example(line="type=SYSCALL msg=audit(1700000000.000:1): pid=\u00b2 ppid=\u00b2", ctx=CTX)
@example(line="type=EXECVE msg=audit(1700000000.000:1): argc=\u00b2 a0=6C73", ctx=CTX)
@example(line='2017-05-16 00:00:00.008 1 INFO n.w 1.2.3.4 "GET /v2 HTTP/1.1" status: 200 len: ' + "9" * 4400,
         ctx=CTX)
def test_auditd_and_openstack_near_valid(line: str, ctx: ParseContext) -> None:
    every_format(line, ctx)


@FUZZ
@given(line=json_lines)
@example(line='{"a": NaN, "b": [Infinity, -Infinity], "c": 1e999}')
@example(line='{"@timestamp": "2026-11-22T04:00:00Z", "event": {}, "x": NaN}')
@example(line='{"a": "\\ud800", "\\udfff": ["\\udc00x"]}')
@example(line='{"@timestamp": "2026-11-22T04:00:00Z", "message": "\\ud83d", "event": {"k": "\\ude00"}}')
@example(line='{"kind": "Event", "apiVersion": "audit.k8s.io/v1", "user": {"username": "\\ud800"}, "verb": NaN}')
def test_json_near_valid(line: str) -> None:
    event = outcome(line, "json")
    auto = outcome(line, "auto")
    assert (event is None) == (auto is None) or not line.startswith("{")
    if event is not None and event["event"]["dataset"] == "json" and "json" in event:
        assert isinstance(event["json"], dict)


@pytest.mark.parametrize("recursion_limit", [1000, 20000])
def test_json_nesting_is_bounded_whatever_the_stack_depth(recursion_limit: int) -> None:
    def nested(depth: int) -> str:  # {"a": [[...]]}: depth levels in all
        return '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(recursion_limit)
    try:
        deepest = parse(nested(MAX_JSON_DEPTH), "json", CTX)
        assert_storable(deepest, derived=False)
        with pytest.raises(ParseError, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
            parse(nested(MAX_JSON_DEPTH + 1), "json", CTX)
        with pytest.raises(ParseError, match="nested deeper"):
            parse(nested(1987), "json", CTX)
    finally:
        sys.setrecursionlimit(old)
    brackets_in_text = parse('{"a": "' + "[{" * 500 + '", "b": [[1]]}', "json", CTX)  # text is not nesting
    assert brackets_in_text["json"]["b"] == [[1]]


def test_json_keeps_values_when_dropping_what_stores_cannot_take() -> None:
    event = parse('{"a": NaN, "b": [1, Infinity], "c": 1e999, "s": "x\\ud800y", "ok": 1.5}', "json", CTX)
    assert event["json"] == {"a": None, "b": [1, None], "c": None, "s": "x\ufffdy", "ok": 1.5}
    assert event["event"]["original"].endswith('"ok": 1.5}')  # the raw text is kept as it came
    pair = parse('{"s": "\\ud83d\\ude00"}', "json", CTX)  # a valid surrogate pair is one character
    assert pair["json"]["s"] == "\U0001f600"


# ---------------------------------------------------------------------------------------------------- 2. pipeline


class _Sink:
    """A pipeline on a real SQLite store and dead-letter store in a temporary directory."""

    def __init__(self, max_line_bytes: int = 1024):
        self._tmp = tempfile.TemporaryDirectory(prefix="fuzz-pipeline-")
        root = Path(self._tmp.name)
        self.store = SQLiteStore(root / "events.db")
        self.dead = DeadLetterStore(root / "deadletter.db")
        self.pipeline = Pipeline(self.store, self.dead, Enricher(RegisterIndex()), CTX, batch_size=7,
                                 max_line_bytes=max_line_bytes, retry_seconds=0)

    def close(self) -> None:
        self.store.close()
        self.dead.close()
        self._tmp.cleanup()


raw_records = st.one_of(
    st.binary(max_size=300),
    near_valid.map(lambda s: s.encode("utf-8")),
    near_valid.map(lambda s: ("\u4e2d\u6587 " + s).encode("gb18030")),  # GBK/GB18030 senders
    st.builds(lambda b, junk: b[:40] + junk + b[40:], near_valid.map(str.encode), st.sampled_from(
        [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\x00", b"\x81\x30"])),  # invalid UTF-8 (the last a bad GB18030 start)
    st.builds(lambda unit, n: unit * n, st.binary(min_size=1, max_size=8), st.integers(100, 400)),  # often oversize
)
source_keys = st.one_of(st.sampled_from(["file:/var/log/a:0", "file:/var/log/a:1", "spool:1:0"]),
                        st.text(max_size=20).map(lambda s: f"spool:{s}"))


@FUZZ
@given(raw=st.one_of(raw_records, st.binary(min_size=1025, max_size=2000)), fmt=st.sampled_from(FORMATS))
@example(raw=b'{"a": "\\ud800"}', fmt="json")
@example(raw=b'{"a": NaN}', fmt="auto")
@example(raw=b"\xff\xfe\x00 not text \x81", fmt="sshd")
@example(raw=b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","responseStatus":{"code":9223372036854775808}}',
         fmt="auto")  # a Kubernetes status past a long: once became http.response.status_code (found by CI's draw)
def test_to_event_returns_an_event_or_a_reason(raw: bytes, fmt: str) -> None:
    sink = _Sink()
    try:
        doc_id, result = sink.pipeline.to_event(RawRecord("spool:1:0", raw), fmt)
    finally:
        sink.close()
    if doc_id is None:
        assert isinstance(result, str) and result
        if len(raw) > 1024:
            assert "exceeds the limit" in result
    else:
        assert isinstance(doc_id, str) and re.fullmatch(r"[0-9a-f]{32}", doc_id)
        assert_storable(result)


@FEW
@given(records=st.lists(st.tuples(source_keys, raw_records), max_size=25), fmt=st.sampled_from(FORMATS))
@example(records=[("spool:1:0", b'{"a": "\\ud800"}'), ("spool:1:1", b'{"b": NaN}'), ("spool:1:2", b"\xff")],
         fmt="json")
@example(records=[("spool:1:0", b"x"), ("spool:1:0", b"x"), ("spool:1:0", b"\xff"), ("spool:1:0", b"\xff")],
         fmt="auto")
def test_pipeline_run_accounts_for_every_record(records: list[tuple[str, bytes]], fmt: str) -> None:
    sink = _Sink()
    try:
        raws = [RawRecord(key, raw) for key, raw in records]
        expected_dead: set[tuple[str, bytes]] = set()
        good_ids: set[str] = set()
        for record in raws:
            doc_id, _ = sink.pipeline.to_event(record, fmt)
            if doc_id is None:
                expected_dead.add((record.source_key, record.raw))
            else:
                good_ids.add(doc_id)
        stats = sink.pipeline.run(raws, fmt)
        assert stats.read == len(raws) == stats.stored + stats.duplicates + stats.dead_lettered
        assert stats.stored == len(good_ids) == sink.store.count(SearchQuery())
        letters = sink.dead.latest(10_000)
        assert not [d for d in letters if d.source.startswith("rejected:")], "the store refused a parsed event"
        assert {(d.source, d.raw) for d in letters} == expected_dead  # the same (source, raw) is kept once
        assert all(isinstance(d.raw, bytes) and d.reason for d in letters)
        # every stored document is JSON SQLite can read: a search through json_each must not fail
        sink.store.search(SearchQuery(where={"json.a": "1", "@timestamp": "x"}))
    finally:
        sink.close()


def test_file_ingest_with_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    """A non-UTF-8 file name (surrogate-escaped by Python) still gives durable, storable keys."""
    try:
        path = tmp_path / b"bad-\xff.log".decode("utf-8", "surrogateescape")
        path.write_bytes(b'{"message": "x"}\n\xff\n')
    except (OSError, UnicodeEncodeError):  # pragma: no cover - file systems that refuse such names
        pytest.skip("the file system refuses non-UTF-8 names")
    sink = _Sink()
    try:
        records = list(file_records(str(path)))
        assert [r.raw for r in records] == [b'{"message": "x"}', b"\xff"]
        keys = [r.source_key for r in records]
        assert len(set(keys)) == 2 and all(k.encode("utf-8") for k in keys)
        assert keys == [r.source_key for r in file_records(str(path))]  # stable across re-reads
        stats = sink.pipeline.run(records, "json")
        assert (stats.stored, stats.dead_lettered) == (1, 1)
    finally:
        sink.close()


# ---------------------------------------------------------------------------------------------------- 3. split_records


@FUZZ
@given(body=st.one_of(st.binary(max_size=500), st.builds(lambda b: b"[" + b, st.binary(max_size=300)),
                      json_lines.map(str.encode)))
@example(body=b"[" * 100_000)
@example(body=b'["\\ud800", {"a": "\\udfff"}]')
@example(body=b"[NaN, Infinity]")
@example(body=b"[" + b"9" * 5000 + b"]")
def test_split_records_never_raises(body: bytes) -> None:
    records = split_records(body)
    assert isinstance(records, list) and all(isinstance(r, bytes) for r in records)


small_json = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    json_keys, inner, max_size=3), max_leaves=8)
json_objects = st.dictionaries(json_keys, small_json, max_size=4)


@FUZZ
@given(items=st.lists(json_objects, max_size=8), pretty=st.booleans(), lead=st.sampled_from([b"", b" ", b"\n\t"]))
@example(items=[{"s": "\ud800"}], pretty=False, lead=b"")
def test_split_records_array_is_one_record_per_element(items: list[dict], pretty: bool, lead: bytes) -> None:
    body = lead + json.dumps(items, indent=2 if pretty else None).encode()
    records = split_records(body)
    assert len(records) == len(items)
    for record, item in zip(records, items, strict=True):
        record.decode("utf-8")  # each record is UTF-8 text the pipeline can decode
        assert "\n" not in record.decode("utf-8")
        # the same value back (compared as JSON text: NaN is not equal to itself)
        assert json.dumps(json.loads(record), sort_keys=True) == json.dumps(item, sort_keys=True)


ndjson_lines = st.one_of(json_objects.map(lambda o: json.dumps(o, ensure_ascii=False).encode("utf-8", "surrogatepass")),
                         st.binary(max_size=60).filter(lambda b: b"\n" not in b))


@FUZZ
@given(lines=st.lists(ndjson_lines, min_size=1, max_size=10), crlf=st.booleans(), trailing=st.booleans())
def test_split_records_ndjson_keeps_every_line(lines: list[bytes], crlf: bool, trailing: bool) -> None:
    body = (b"\r\n" if crlf else b"\n").join(lines) + (b"\n" if trailing else b"")
    if body.lstrip().startswith(b"["):
        try:
            if isinstance(json.loads(body), list):
                return  # a body that is one JSON array is read as an array: nothing to check here
        except (ValueError, RecursionError):
            pass
    assert split_records(body) == [line.rstrip(b"\r") for line in lines if line.strip()]


# ---------------------------------------------------------------------------------------------------- 4. TCP framing


def frames_of(chunks: list[bytes]) -> tuple[list[bytes], BaseException | None]:
    """Run read_frames over a stream fed in ``chunks`` (as a socket delivers them); frames and the error."""

    async def run() -> tuple[list[bytes], BaseException | None]:
        reader = asyncio.StreamReader(limit=MAX_FRAME + 64)  # what SyslogReceivers.start uses

        async def feed() -> None:
            for chunk in chunks:
                reader.feed_data(chunk)
                await asyncio.sleep(0)
            reader.feed_eof()

        feeder = asyncio.create_task(feed())
        frames: list[bytes] = []
        error = None
        try:
            async for frame in read_frames(reader):
                frames.append(frame)
        except FRAMING_ERRORS as exc:  # what the connection handler catches and logs before closing
            error = exc
        await feeder
        return frames, error

    return asyncio.run(run())


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut where a socket might deliver it."""
    points = sorted(min(c, len(data)) for c in cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


cut_points = st.lists(st.integers(0, 2000), max_size=6)
streams = st.one_of(
    st.binary(max_size=600),
    st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([b"\n", b"\r\n", b" ", b"12 ", b"0 ", b"9999999 ",
                                                                 b"1234567890 ", b"5 <38>x", b"262145 "]),
                       digits(1, 300).map(lambda n: n.encode() + b" ")), max_size=20).map(b"".join),
)


@FUZZ
@given(stream=streams, cuts=cut_points)
@example(stream=b"9999999 " + b"x" * 100, cuts=[])
@example(stream=b"300 <38>short", cuts=[2])
@example(stream=b"\n\n\r\n5 hello12 ", cuts=[1, 7])
def test_framing_random_streams(stream: bytes, cuts: list[int]) -> None:
    frames, error = frames_of(chunked(stream, cuts))
    assert all(frame and len(frame) <= MAX_FRAME + 64 for frame in frames)
    assert sum(len(f) for f in frames) <= len(stream)
    whole_frames, whole_error = frames_of([stream])  # how the bytes arrive changes nothing
    assert whole_frames == frames and type(whole_error) is type(error)


@FUZZ
@given(msgs=st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=15), last_newline=st.booleans(),
       cuts=cut_points)
def test_framing_well_formed_streams_round_trip(msgs: list[tuple[bool, bytes]], last_newline: bool,
                                                cuts: list[int]) -> None:
    """Octet-counted frames (any bytes) mixed with newline-framed syslog messages come out as sent."""
    stream = b""
    expected = []
    for i, (octet, payload) in enumerate(msgs):
        if octet and payload:
            stream += str(len(payload)).encode() + b" " + payload
            expected.append(payload)
        else:
            msg = b"<" + payload.replace(b"\n", b" ").rstrip(b"\r")
            stream += msg + (b"\n" if last_newline or i < len(msgs) - 1 else b"")
            expected.append(msg)
    frames, error = frames_of(chunked(stream, cuts))
    assert error is None
    assert frames == expected


def test_framing_huge_declared_length_is_refused_before_buffering() -> None:
    """A bogus octet count closes the connection at once: nothing of the frame is read, let alone kept."""

    async def run() -> tuple[BaseException, bytes]:
        reader = asyncio.StreamReader(limit=MAX_FRAME + 64)
        reader.feed_data(b"9999999 " + b"x" * 1000)
        reader.feed_eof()
        with pytest.raises(ValueError, match="exceeds") as caught:
            await read_frames(reader).__anext__()
        return caught.value, await reader.read()

    error, left = asyncio.run(run())
    assert isinstance(error, FRAMING_ERRORS) and left == b"x" * 1000
    # at the limit the frame is read; over it, refused
    frames, error = frames_of([str(MAX_FRAME).encode() + b" " + b"a" * MAX_FRAME + b"5 <38>x"])
    assert [len(f) for f in frames] == [MAX_FRAME, 5] and error is None
    frames, error = frames_of([str(MAX_FRAME + 1).encode() + b" " + b"a" * (MAX_FRAME + 1)])
    assert frames == [] and isinstance(error, ValueError)
    # a newline-framed line longer than the reader's limit cannot grow the buffer either
    frames, error = frames_of([b"<38>" + b"a" * (2 * MAX_FRAME) + b"\n<38>next\n"])
    assert frames == [] and isinstance(error, FRAMING_ERRORS)


def test_frame_over_max_line_bytes_is_dead_lettered_with_its_bytes() -> None:
    """The receiver takes frames up to MAX_FRAME; the pipeline's max_line_bytes (default 64 KiB) then sends a
    longer one to the dead-letter store whole, so it is kept, not dropped."""
    big = b"<38>Nov 22 12:15:51 web01 sshd[1]: " + b"A" * 100_000
    frames, error = frames_of([str(len(big)).encode() + b" " + big + b"<38>Nov 22 12:15:52 web01 sshd[1]: ok\n"])
    assert error is None and frames[0] == big and len(frames) == 2
    sink = _Sink(max_line_bytes=65536)
    try:
        stats = sink.pipeline.run([RawRecord(f"spool:1:{i}", f) for i, f in enumerate(frames)], "syslog")
        assert (stats.stored, stats.dead_lettered) == (1, 1)
        (letter,) = sink.dead.latest()
        assert letter.raw == big and "exceeds the limit" in letter.reason
    finally:
        sink.close()


# ---------------------------------------------------------------------------------------------------- 5. HTTP ingest

HTTP_LIMIT = 4096


@pytest.fixture(scope="module")
def ingest_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str], Any]]:
    home = tmp_path_factory.mktemp("fuzz-http") / "var"
    rt = open_runtime(Settings(home=home, portal={"mfa_required_roles": []},  # type: ignore[arg-type]
                               soc={"http_max_bytes": HTTP_LIMIT}))
    with rt.transaction() as s:
        user = create_user(s, rt.audit, rt.settings.portal, actor="t", username="analyst", role="security_analyst",
                           password=PASSWORD)
        token = create_token(s, rt.audit, actor="t", user=user, name="t")[1]
    with TestClient(create_app(rt)) as client:
        yield client, {"Authorization": f"Bearer {token}"}, rt
    rt.close()


http_bodies = st.one_of(
    st.binary(max_size=2000),
    st.lists(near_valid, max_size=12).map(lambda lines: "\n".join(lines).encode("utf-8")),
    st.lists(json_documents(), max_size=6).map(lambda docs: dump(docs, True).encode()),
    st.integers(HTTP_LIMIT - 8, HTTP_LIMIT + 8).map(lambda n: b'{"a":"' + b"x" * n + b'"}'),
)


def test_http_ingest_answers_202_or_413_never_500(ingest_client) -> None:  # type: ignore[no-untyped-def]
    client, auth, _rt = ingest_client
    sent = {"records": 0}

    @FEW
    @given(body=http_bodies, chunked_upload=st.booleans())
    @example(body=b"[" * 3000, chunked_upload=False)
    @example(body=b'["\\ud800", {"a": NaN}]', chunked_upload=False)
    @example(body=b'{"a": "\\udfff"}\n{"b": Infinity}\n\xff\xfe', chunked_upload=False)
    @example(body=b"x" * (HTTP_LIMIT + 1), chunked_upload=True)
    def post(body: bytes, chunked_upload: bool) -> None:
        content: Any = iter([body[i:i + 700] for i in range(0, len(body), 700)]) if chunked_upload else body
        r = client.post("/api/soc/ingest", content=content, headers=auth)
        if len(body) > HTTP_LIMIT:
            assert r.status_code == 413, r.text
        else:
            assert r.status_code == 202, r.text
            assert r.json()["accepted"] == len(split_records(body))
            sent["records"] += r.json()["accepted"]

    post()
    # the consumer gets through every record (a poison record would stall the spool forever) ...
    deadline = time.monotonic() + 30
    while True:
        health = client.get("/api/soc/health", headers=auth).json()
        if health["spool_backlog_bytes"] == 0:
            break
        assert time.monotonic() < deadline, f"the spool consumer is stuck: {health}"
        time.sleep(0.05)
    # ... and each record became an event or a dead letter (dead letters with the same raw bytes are kept once)
    metrics = client.get("/metrics").text
    stored = _metric(metrics, "yunshu_soc_stored_total")
    dead = _metric(metrics, "yunshu_soc_dead_lettered_total")
    assert stored + dead == sent["records"]
    assert health["dead_letters"] <= dead


def _metric(text: str, name: str) -> int:
    m = re.search(rf'^{name}{{source="http"}} ([0-9.e+]+)$', text, re.M)
    return int(float(m.group(1))) if m else 0


def test_a_run_of_bad_lines_is_dead_lettered_as_it_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file with no parseable line: its dead letters are written a batch at a time (not held to the end of the
    file), and a line of any length keeps at most DEAD_LETTER_MAX_BYTES of its bytes."""
    from soc import pipeline as pipeline_module
    from soc.pipeline import DEAD_LETTER_MAX_BYTES

    sink = _Sink(max_line_bytes=65536)
    calls: list[int] = []
    submit = pipeline_module._BatchWriter.submit

    def counting(self: object, batch: list, dead: list, encoded: object = None) -> None:
        calls.append(len(dead))
        submit(self, batch, dead, encoded)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline_module._BatchWriter, "submit", counting)
    try:
        huge = b"{" + b"x" * (DEAD_LETTER_MAX_BYTES + 10)
        lines = [f"not json {i} {{".encode() for i in range(50)] + [huge]
        stats = sink.pipeline.run([RawRecord(f"file:/t:{i}", raw) for i, raw in enumerate(lines)], "json")
        assert (stats.stored, stats.dead_lettered) == (0, 51)
        assert sum(calls) == 51 and max(calls) <= 7  # handed to the writer batch_size (7) at a time
        letter = sink.dead.latest(1)[0]
        assert letter.raw == huge[:DEAD_LETTER_MAX_BYTES] and f"first {DEAD_LETTER_MAX_BYTES} bytes" in letter.reason
    finally:
        sink.close()
