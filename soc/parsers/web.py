"""Web server logs: nginx/Apache access (combined and common log format), the nginx and Apache error logs, and
the same lines carried in syslog (nginx ``access_log syslog:server=…``, Apache piped to ``logger -t httpd``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import cython

from soc.ecs import ECS_VERSION, Event
from soc.parsers.common import (
    DEFAULT_CONTEXT,
    MONTHS,
    ParseContext,
    ParseError,
    as_count,
    as_ip,
    as_port,
    digits_value,
    local_iso,
    offset_iso,
    set_endpoint,
)
from soc.parsers.scan import split_access

_QUOTED: Final = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
# host ident authuser [date] "request" status bytes ["referrer" "user-agent"] [anything nginx adds]
_ACCESS: Final = re.compile(
    r"(\S+) \S+ (\S+) \[(\d{1,2}/[A-Z][a-z]{2}/\d{4}:\d\d):(\d\d):(\d\d) ([+-]\d\d:?\d\d)\] "
    + _QUOTED + r" (\d{3}) (\d+|-)(?: " + _QUOTED + r" " + _QUOTED + r")?",
    re.DOTALL | re.ASCII,
)
# [Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] msg          (Apache 2.2)
# [Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 1.2.3.4:5678] AH00128: msg
# from "[module:level]" on: also what Apache sends to syslog (ErrorLog syslog:…), which leaves the time out
_APACHE_ERROR_BODY: Final = (
    r"\[(?:([^\s:\]]*):)?(\w+)\]"
    r"(?: \[pid (\d{1,10})(?::tid (\d{1,20}))?\])?"
    r"(?: \[client ([^\]\s]+)\])?"
    r" ?(.*)"
)
_APACHE_ERROR: Final = re.compile(
    r"\[(?:[A-Z][a-z]{2}) (([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? (\d{4}))\] "
    + _APACHE_ERROR_BODY,
    re.DOTALL | re.ASCII,
)
_APACHE_SYSLOG_ERROR: Final = re.compile(_APACHE_ERROR_BODY, re.DOTALL | re.ASCII)
_ERROR_CODE: Final = re.compile(r"(AH\d{5}): ")
_ERROR_LEVELS: Final = frozenset(("emerg", "alert", "crit", "error"))
# Apache's LogLevel names: a bracketed word that is none of them does not make a syslog message an error line
_APACHE_LEVELS: Final = _ERROR_LEVELS | {"warn", "notice", "info", "debug", *(f"trace{n}" for n in range(1, 9))}

_MODULE_OF: Final = {"nginx.access": "nginx", "apache.access": "apache"}  # event.module of the common datasets
_clf_cache: dict[tuple[str, str], str] = {}
_err_cache: dict[tuple[str, object], str] = {}
_CACHE_MAX: Final = 4096


def _clf_hour(key: tuple[str, str]) -> str:
    """``YYYY-MM-DDTHH:`` (UTC) for ``('10/Oct/2000:13', '-0700')``; "" for offsets that are not whole hours."""
    hour_text, zone = key
    day, mon, rest = hour_text.split("/")
    year, hour = rest.split(":")
    month = MONTHS.get(mon)
    if month is None:
        raise ParseError(f"unknown month {mon!r}")
    zone = zone.replace(":", "")
    offset = (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60) * (-1 if zone[0] == "-" else 1)
    hh = int(hour)
    if hh > 23:
        raise ParseError(f"invalid hour {hour!r}")
    prefix = "" if offset % 3600 else offset_iso(int(year), month, int(day), hh, 0, 0, 0, offset)[:14]
    if len(_clf_cache) >= _CACHE_MAX:
        _clf_cache.clear()
    _clf_cache[key] = prefix
    return prefix


# The last conversion (hour text, minute, second, zone, result), replaced whole: a busy server writes many lines a
# second, so the line before mostly has the same time.
_last_clf: tuple = ("", "", "", "", "")


@cython.locals(hour_text=str, minute=str, second=str, zone=str, last=tuple)
def _clf_timestamp(hour_text: str, minute: str, second: str, zone: str) -> str:
    """``10/Oct/2000:13`` + ``55`` + ``36`` + ``-0700`` → UTC ISO (the UTC hour cached, the rest copied)."""
    global _last_clf
    last = _last_clf
    if last[2] == second and last[1] == minute and last[0] == hour_text and last[3] == zone:
        return last[4]
    key = (hour_text, zone)
    prefix = _clf_cache.get(key)
    if prefix is None:
        prefix = _clf_hour(key)
    if prefix and minute < "60" and second < "60":
        result = f"{prefix}{minute}:{second}.000Z"
    else:
        day, mon, rest = hour_text.split("/")
        year, hour = rest.split(":")
        digits = zone.replace(":", "")
        offset = (int(digits[1:3]) * 3600 + int(digits[3:5]) * 60) * (-1 if digits[0] == "-" else 1)
        result = offset_iso(int(year), MONTHS[mon], int(day), int(hour), int(minute), int(second), 0, offset)
    _last_clf = (hour_text, minute, second, zone, result)
    return result


def _url(event: Event, target: str) -> None:
    url: dict = {"original": target}
    if target.startswith("/"):
        path, sep, query = target.partition("?")
        url["path"] = path
        if sep:
            url["query"] = query
    elif "://" in target:
        rest = target.partition("://")[2]
        slash = rest.find("/")
        if slash >= 0:
            path, sep, query = rest[slash:].partition("?")
            url["path"] = path
            if sep:
                url["query"] = query
    event["url"] = url


@cython.locals(request=str, size=str, user=str, referrer=str, agent=str, dataset=str, parts=list, method=str,
               version=str)
def parse_access(line: str, ctx: ParseContext, dataset: str = "nginx.access") -> Event:
    """An access-log line in combined or common log format (nginx and Apache write the same)."""
    groups = split_access(line) if cython.compiled else None  # the common shape, split without the regex
    if groups is None:
        m = _ACCESS.match(line)
        if m is None:
            raise ParseError("not an access-log line (expected 'host ident user [time] \"request\" status bytes')")
        groups = m.groups()
    client, user, hour_text, minute, second, zone, request, status_text, size, referrer, agent = groups
    status = digits_value(status_text)
    module = _MODULE_OF.get(dataset) or dataset.partition(".")[0]
    event: Event = {
        "@timestamp": _clf_timestamp(hour_text, minute, second, zone),
        "event": {
            "kind": "event", "category": ["web"], "type": ["access"], "dataset": dataset, "module": module,
            "outcome": "success" if status < 400 else "failure", "original": line,
        },
        "message": line,
        "ecs": {"version": ECS_VERSION},
    }
    ip = as_ip(client)
    if ip is not None:
        event["source"] = {"ip": ip}
        related: dict = {"ip": [ip]}
    else:
        event["source"] = {"domain": client}
        related = {"hosts": [client]}
    if user != "-":
        event["user"] = {"name": user}
        related["user"] = [user]
    event["related"] = related
    http: dict = {"response": {"status_code": status}}
    if size != "-" and (body_bytes := as_count(size)) is not None:
        http["response"]["body"] = {"bytes": body_bytes}
    parts = request.split(" ")
    if len(parts) == 3:
        method, target, version = parts
        if version.startswith("HTTP/"):
            http["request"] = {"method": method}
            http["version"] = version[5:]
            _url(event, target)
    elif len(parts) == 2:
        method, target = parts
        if method.isalpha():
            http["request"] = {"method": method}
            _url(event, target)
    if referrer is not None and referrer != "-":
        http.setdefault("request", {})["referrer"] = referrer
    event["http"] = http
    if agent is not None and agent != "-":
        event["user_agent"] = {"original": agent}
    if ctx.hostname:
        event["host"] = {"name": ctx.hostname}
    return event


def parse_nginx(line: str, ctx: ParseContext) -> Event:
    """nginx access log (``combined`` or common format)."""
    return parse_access(line, ctx, "nginx.access")


def parse_apache_access(line: str, ctx: ParseContext) -> Event:
    """Apache access log (``combined`` or ``common``)."""
    return parse_access(line, ctx, "apache.access")


def _error_timestamp(m: re.Match[str], ctx: ParseContext) -> str:
    key = (m.group(1), ctx.tz)
    out = _err_cache.get(key)
    if out is None:
        month = MONTHS.get(m.group(2))
        if month is None:
            raise ParseError(f"unknown month {m.group(2)!r}")
        frac = m.group(7)
        micros = int(frac.ljust(6, "0")) if frac else 0
        out = local_iso(ctx.tz, int(m.group(8)), month, int(m.group(3)), int(m.group(4)), int(m.group(5)),
                        int(m.group(6)), micros)
        if len(_err_cache) >= _CACHE_MAX:
            _err_cache.clear()
        _err_cache[key] = out
    return out


def parse_apache_error(line: str, ctx: ParseContext) -> Event:
    """Apache error log, 2.2 (``[time] [level] [client ip] msg``) and 2.4 (``[module:level] [pid n:tid m]``)."""
    m = _APACHE_ERROR.match(line)
    if m is None:
        raise ParseError("not an Apache error-log line (expected '[Www Mmm dd hh:mm:ss yyyy] [level] ...')")
    event: Event = {"@timestamp": _error_timestamp(m, ctx), "ecs": {"version": ECS_VERSION}}
    _apache_error_fields(event, line, *m.group(9, 10, 11, 12, 13, 14))
    if ctx.hostname:
        event["host"] = {"name": ctx.hostname}
    return event


def _apache_error_fields(event: Event, line: str, module: str | None, level: str, pid: str | None, tid: str | None,
                         client: str | None, msg: str) -> None:
    """The fields of an Apache error line after its time (``[module:level] [pid] [client] msg``)."""
    level = level.lower()
    msg = msg.rstrip()
    event["event"] = {
        "kind": "event", "category": ["web"], "type": ["error" if level in _ERROR_LEVELS else "info"],
        "dataset": "apache.error", "module": "apache", "original": line,
    }
    event["message"] = msg
    event.setdefault("log", {})["level"] = level
    if module:
        event["apache"] = {"error": {"module": module}}
    if pid is not None:
        process: dict = event.setdefault("process", {})
        process["pid"] = int(pid)
        if tid is not None:
            process["thread"] = {"id": int(tid)}
    if client is not None:
        ip = as_ip(client)
        if ip is not None:
            set_endpoint(event, "source", client)
        else:
            host, _, port = client.rpartition(":")
            host = host.strip("[]")
            if port.isdigit() and as_ip(host) is not None:  # "ip:port"; a port out of range is left out
                set_endpoint(event, "source", host, as_port(port))
            else:
                set_endpoint(event, "source", client)
    code = _ERROR_CODE.match(msg)
    if code is not None:
        event["error"] = {"code": code.group(1)}


# 2024/01/31 12:00:00 [error] 1234#5678: *99 open() "/x" failed (2: No such file), client: 1.2.3.4, server: a, …
_NGINX_ERROR: Final = re.compile(
    r"(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) \[(\w+)\] (\d{1,10})#(\d{1,20}): (?:\*(\d{1,20}) )?(.*)",
    re.DOTALL | re.ASCII,
)
_NGINX_CLIENT: Final = re.compile(r", client: ([^,\s]+)")


def parse_nginx_error(line: str, ctx: ParseContext) -> Event:
    """nginx error log: ``2024/01/31 12:00:00 [error] 1234#0: *99 message, client: 1.2.3.4, …``."""
    m = _NGINX_ERROR.match(line)
    if m is None:
        raise ParseError("not an nginx error-log line (expected 'YYYY/MM/DD hh:mm:ss [level] pid#tid: ...')")
    year, month, day, hh, mi, ss, level, pid, tid, conn, msg = m.groups()
    level = level.lower()
    msg = msg.rstrip()
    event: Event = {
        "@timestamp": local_iso(ctx.tz, int(year), int(month), int(day), int(hh), int(mi), int(ss)),
        "event": {
            "kind": "event", "category": ["web"], "type": ["error" if level in _ERROR_LEVELS else "info"],
            "dataset": "nginx.error", "module": "nginx", "original": line,
        },
        "message": msg,
        "log": {"level": level},
        "process": {"pid": int(pid), "thread": {"id": int(tid)}},
        "ecs": {"version": ECS_VERSION},
    }
    if conn is not None:
        event["nginx"] = {"error": {"connection_id": int(conn)}}
    cm = _NGINX_CLIENT.search(msg)
    if cm is not None:
        set_endpoint(event, "source", cm.group(1))
    if ctx.hostname:
        event["host"] = {"name": ctx.hostname}
    return event


# --- carried in syslog -------------------------------------------------------------------------------------------

def _lay_over(event: Event, parsed: Event, own_time: bool) -> None:
    """Lay the fields of a web-server line parsed on its own over the syslog event that carried it. The syslog
    header keeps ``host``, ``log.syslog`` and the process name; ``event.original`` stays the whole received line.
    ``own_time``: the line's time replaces the header's (an access line names its zone; the header does not)."""
    original = event["event"].get("original")
    for key, value in parsed.items():
        if key == "host" or key == "ecs" or (key == "@timestamp" and not own_time):
            continue
        if key == "log" or key == "process":
            event.setdefault(key, {}).update(value)
        else:
            event[key] = value
    if original is not None:
        event["event"]["original"] = original


def _carried(event: Event, msg: str, parser: Callable[[str, ParseContext], Event], own_time: bool) -> bool:
    """Parse a web-server line carried in a syslog message and lay it over the syslog event (``own_time``: the
    line's time, which names its zone, replaces the header's); False when the message is no such line."""
    try:
        parsed = parser(msg, DEFAULT_CONTEXT)
    except ParseError:
        return False
    _lay_over(event, parsed, own_time)
    return True


def nginx_message(event: Event, msg: str) -> bool:
    """An nginx access or error line sent to syslog (``access_log syslog:server=…``, ``error_log syslog:…``);
    anything else nginx says stays a plain syslog event."""
    if msg[:1].isdigit() and msg[4:5] == "/" and msg[7:8] == "/":
        return _carried(event, msg, parse_nginx_error, own_time=False)  # local time, no zone: the header's is as good
    return _carried(event, msg, parse_nginx, own_time=True)


def apache_message(event: Event, msg: str) -> bool:
    """An Apache access or error line piped to syslog (``CustomLog "|logger -t httpd"``, ``ErrorLog "|logger …"``)
    or an error line Apache sent to syslog itself (``ErrorLog syslog:local1``: ``[module:level] [pid …] msg``, no
    time)."""
    if msg[:1] == "[":
        if _APACHE_ERROR.match(msg) is not None:  # piped to logger, the line keeps its own (local) time
            return _carried(event, msg, parse_apache_error, own_time=False)
        m = _APACHE_SYSLOG_ERROR.match(msg)
        if m is None or m.group(2).lower() not in _APACHE_LEVELS:
            return False
        _apache_error_fields(event, event["event"].get("original", msg), *m.groups())
        return True
    return _carried(event, msg, parse_apache_access, own_time=True)
