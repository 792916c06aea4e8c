"""Log parsers: one raw line → one ECS event (a nested dict, see :mod:`soc.ecs`).

``parse(line, fmt, ctx)`` returns the event or raises :class:`ParseError` — never any other exception,
whatever the input, so the ingest loop can send every failure to the dead-letter store.

Formats (``FORMATS``):

* ``syslog`` — RFC 5424, RFC 3164 (with or without ``<PRI>``; the year inferred) and rsyslog's RFC 3339 file
  format; the message goes to the parser for its program (``sshd``, ``sudo``, ``su``, ``login``, ``kernel``
  netfilter lines, PAM modules …).
* ``sshd`` — syslog lines read as an auth log: every message goes through the sshd/PAM parser.
* ``nginx`` / ``apache`` — access logs (combined / common); ``apache`` also takes the error log and
  ``nginx`` its error log.
* ``auditd`` — Linux audit records; ``json`` — Kubernetes audit, ECS documents, other JSON objects;
  ``openstack`` — oslo.log service logs.
* ``auto`` — chosen per line from its first characters. Access logs found this way are reported as
  ``nginx.access`` (the two servers write the same format; pass ``fmt="apache"`` to say otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from soc.ecs import Event
from soc.parsers.auditd import parse_auditd
from soc.parsers.common import DEFAULT_CONTEXT, MONTHS, ParseContext, ParseError
from soc.parsers.jsonlog import parse_json
from soc.parsers.openstack import parse_openstack
from soc.parsers.syslog import parse_any_syslog, parse_rfc3164, parse_sshd, parse_syslog
from soc.parsers.web import (
    parse_apache_access,
    parse_apache_error,
    parse_nginx,
    parse_nginx_error,
)

__all__ = ["FORMATS", "ParseContext", "ParseError", "detect", "parse"]

FORMATS: Final = ("auto", "syslog", "sshd", "nginx", "apache", "auditd", "json", "openstack")

Parser = Callable[[str, ParseContext], Event]


def _apache(line: str, ctx: ParseContext) -> Event:
    return parse_apache_error(line, ctx) if line.startswith("[") else parse_apache_access(line, ctx)


def _nginx(line: str, ctx: ParseContext) -> Event:
    if line[:1].isdigit() and line[4:5] == "/" and line[7:8] == "/":
        return parse_nginx_error(line, ctx)
    return parse_nginx(line, ctx)


_PARSERS: Final[dict[str, Parser]] = {
    "syslog": parse_any_syslog,
    "sshd": parse_sshd,
    "nginx": _nginx,
    "apache": _apache,
    "auditd": parse_auditd,
    "json": parse_json,
    "openstack": parse_openstack,
}
_HEX_START: Final = frozenset("0123456789abcdefABCDEF:")


def _auto_parser(line: str) -> tuple[str, Parser] | None:
    """(format name, the concrete parser) for one line, judged from its first characters."""
    first = line[:1]
    if first == "<":
        return "syslog", parse_syslog  # = parse_any_syslog, one call less
    if first == "{":
        return "json", parse_json
    if first == "[":
        return "apache", parse_apache_error
    if first.isdigit():
        if line[4:5] == "-" and line[7:8] == "-" and line[13:14] == ":":
            return ("syslog", parse_any_syslog) if line[10:11] == "T" else ("openstack", parse_openstack)
        if line[4:5] == "/" and line[7:8] == "/" and line[13:14] == ":":
            return "nginx", parse_nginx_error
        return "nginx", parse_nginx  # an IPv4 client: access log
    if line[3:4] == " " and line[:3] in MONTHS:
        return "syslog", parse_rfc3164
    if first == "t" and line.startswith("type="):
        return "auditd", parse_auditd
    if first == "n" and line.startswith("node="):
        return "auditd", parse_auditd
    token, _, rest = line.partition(" ")
    if ".log" in token and rest[:1].isdigit():
        return "openstack", parse_openstack  # Loghub-style: file name, then the oslo.log line
    if rest and (first in _HEX_START or "." in token) and " [" in rest[:200]:
        return "nginx", parse_nginx  # IPv6 or host-name client: access log
    return None


def detect(line: str) -> str | None:
    """The format of one line judged from its first characters (one of ``FORMATS`` minus ``auto``), or None."""
    found = _auto_parser(line)
    return None if found is None else found[0]


def _coerce(line: object) -> str:
    if isinstance(line, str):
        return line
    if isinstance(line, (bytes, bytearray, memoryview)):
        return bytes(line).decode("utf-8", "replace")
    raise ParseError(f"a line must be str or bytes, not {type(line).__name__}")


def parse(line: str, fmt: str = "auto", ctx: ParseContext | None = None) -> Event:
    """Parse one raw line in format ``fmt`` (see ``FORMATS``) into an ECS event; ParseError says why not."""
    try:
        if type(line) is not str:
            line = _coerce(line)
        last = line[-1:]
        if last == "\n" or last == "\r":
            line = line.rstrip("\r\n")
        if not line or line.isspace():
            raise ParseError("empty line")
        if ctx is None:
            ctx = DEFAULT_CONTEXT
        if fmt == "auto":
            found = _auto_parser(line)
            if found is None:
                raise ParseError(f"unrecognised log format: {line[:60]!r}")
            return found[1](line, ctx)
        parser = _PARSERS.get(fmt) if isinstance(fmt, str) else None
        if parser is None:
            raise ParseError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return parser(line, ctx)
    except ParseError:
        raise
    except Exception as exc:  # a parser bug must still reach the dead-letter store as a ParseError
        raise ParseError(f"internal error: {type(exc).__name__}: {exc}") from exc
