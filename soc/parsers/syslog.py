"""Syslog headers (RFC 5424, RFC 3164 with or without ``<PRI>``, RFC 3339 "legacy" lines) and the program dispatch.

The header gives ``@timestamp``, ``host.*``, ``process.*`` and ``log.syslog.*``; the message is then handed
to the parser registered for the program name (``sshd``, ``sudo``, ``kernel`` …), which adds what it
understands. A message no program parser recognises still makes a plain ``system.syslog`` event.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import tzinfo
from typing import Final

import cython

from soc.ecs import ECS_VERSION, TIME_ASSUMED, Event
from soc.parsers import auth, firewall, web
from soc.parsers.common import (
    MONTHS,
    ParseContext,
    ParseError,
    add_tag,
    as_ip,
    day_offset,
    days_since_epoch,
    digits_value,
    epoch_iso,
    iso_text,
    local_iso,
    now_iso,
    now_utc,
)
from soc.parsers.scan import split_rfc3164

Handler = Callable[[Event, str], bool]

FACILITIES: Final = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5",
    "local6", "local7",
)
SEVERITIES: Final = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug")

# <PRI>? Mmm dd hh:mm:ss[.frac] host tag[pid]: msg    (tag may be "sshd(pam_unix)" or "syslogd 1.4.1")
_RFC3164: Final = re.compile(
    r"(?:<(\d{1,3})>)?"
    r"(([A-Z][a-z]{2}) +(\d{1,2}) (\d\d)):(\d\d):(\d\d)(?:\.(\d{1,6}))? +"
    r"(\S+) +"
    r"(?:([^\s:\[]+(?: [^\s:\[]+)?)(?:\[(\d{1,10})\])?: ?)?"
    r"(.*)",
    re.DOTALL | re.ASCII,
)
_HOSTLESS_TAG: Final = re.compile(r"([A-Za-z][\w./-]{0,47})(?:\[(\d{1,10})\])?:", re.ASCII)
# <PRI>? YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm) host tag[pid]: msg   (rsyslog RFC3339 file format)
_RFC3339_LEGACY: Final = re.compile(
    r"(?:<(\d{1,3})>)?"
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?) +"
    r"(\S+) +"
    r"(?:([^\s:\[]+(?: [^\s:\[]+)?)(?:\[(\d{1,10})\])?: ?)?"
    r"(.*)",
    re.DOTALL | re.ASCII,
)
# <PRI>1 TIMESTAMP HOST APP-NAME PROCID MSGID [SD]|- MSG
_RFC5424: Final = re.compile(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+)(?: (.*))?", re.DOTALL | re.ASCII)
_SD_ELEMENT: Final = re.compile(r'\[([^\s=\]"]+)((?: +[^\s=\]"]+="[^"\\]*(?:\\.[^"\\]*)*")*) *\]', re.DOTALL | re.ASCII)
_SD_PARAM: Final = re.compile(r'([^\s=\]"]+)="([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL | re.ASCII)
_SD_UNESCAPE: Final = re.compile(r'\\(["\\\]])')

# Program name → message parser. Names are what precedes "(" / "[" in the tag.
PROGRAMS: Final[dict[str, Handler]] = {
    "sshd": auth.sshd,
    "sshd-session": auth.sshd,
    "sudo": auth.sudo,
    "su": auth.su,
    "login": auth.login,
    "gdm": auth.pam_generic,
    "gdm-binary": auth.pam_generic,
    "gdm-password": auth.pam_generic,
    "systemd-logind": auth.pam_generic,
    "cron": auth.pam_generic,
    "CRON": auth.pam_generic,
    "crond": auth.pam_generic,
    "ftpd": auth.ftpd,
    "vsftpd": auth.ftpd,
    "klogind": auth.klogind,
    "snmpd": auth.snmpd,
    "kernel": firewall.kernel,
    "nginx": web.nginx_message,
    "httpd": web.apache_message,
    "apache": web.apache_message,
    "apache2": web.apache_message,
}

_hour3164: dict[tuple[str, tzinfo, object], str] = {}  # ("Mmm dd hh", tz, now) → "YYYY-MM-DDTHH:" in UTC or ""
_day3164: dict[tuple[str, str, tzinfo, object], tuple[int, int, int, int | None]] = {}  # (Mmm, dd) → y, m, d, base
_TS_CACHE_MAX: Final = 4096


def _year_for(month: int, ctx: ParseContext) -> int:
    """RFC 3164 has no year: take the latest year that puts the month at most about a month after now."""
    ref = now_utc(ctx).astimezone(ctx.tz)
    if month - ref.month <= 1 - 12:  # e.g. a January line read in December: the sender is already in the new year
        return ref.year + 1
    if month - ref.month <= 1:
        return ref.year
    return ref.year - 1


def _day_3164(mon: str, day: str, ctx: ParseContext, nowkey: object) -> tuple[int, int, int, int | None]:
    """(year, month, day, UTC epoch of local midnight or None on a DST-change day) for ``Mmm dd``."""
    key = (mon, day, ctx.tz, nowkey)
    out = _day3164.get(key)
    if out is None:
        month = MONTHS.get(mon)
        if month is None:
            raise ParseError(f"unknown month {mon!r}")
        year = _year_for(month, ctx)
        dd = int(day)
        days = days_since_epoch(year, month, dd)
        offset = day_offset(ctx.tz, year, month, dd)
        out = (year, month, dd, None if offset is None else days * 86400 - offset)
        if len(_day3164) >= _TS_CACHE_MAX:
            _day3164.clear()
        _day3164[key] = out
    return out


def _hour_prefix(key: tuple[str, tzinfo, object], mon: str, day: str, hour: str, ctx: ParseContext) -> str:
    """``YYYY-MM-DDTHH:`` (UTC) for a local ``Mmm dd hh``; "" when minutes would shift too (odd offsets, DST)."""
    _year, _month, _day, base = _day_3164(mon, day, ctx, key[2])
    hh = int(hour)
    prefix = "" if base is None or hh > 23 or base % 3600 else epoch_iso(base + hh * 3600)[:14]
    if len(_hour3164) >= _TS_CACHE_MAX:
        _hour3164.clear()
    _hour3164[key] = prefix
    return prefix


# The last conversion: (Mmm dd hh, zone, mm, ss, fraction, now key, result), replaced whole. A sender writes many
# lines in the same second, so the line before usually has the same time (88% of the bench corpus's syslog lines).
_last3164: tuple = ("", None, "", "", None, None, "")


@cython.locals(hour_text=str, minute=str, second=str, last=tuple)
def _timestamp_3164(hour_text: str, mon: str, day: str, hour: str, minute: str, second: str, frac: str | None,
                    ctx: ParseContext) -> str:
    """``Mmm dd hh:mm:ss[.frac]`` local time → UTC ISO; the UTC hour is cached, minutes and seconds copied."""
    global _last3164
    now = ctx.now
    tz = ctx.tz
    nowkey = now if now is not None else int(time.time()) // 3600
    last = _last3164
    if (last[3] == second and last[0] == hour_text and last[4] == frac and last[2] == minute and last[1] is tz
            and last[5] == nowkey):
        return last[6]
    key = (hour_text, tz, nowkey)
    prefix = _hour3164.get(key)
    if prefix is None:
        prefix = _hour_prefix(key, mon, day, hour, ctx)
    if prefix and minute < "60" and second < "60":
        result = f"{prefix}{minute}:{second}.{frac[:3].ljust(3, '0') if frac else '000'}Z"
    else:
        year, month, dd, _base = _day_3164(mon, day, ctx, nowkey)
        micros = int(frac.ljust(6, "0")) if frac else 0
        result = local_iso(tz, year, month, dd, int(hour), int(minute), int(second), micros)
    _last3164 = (hour_text, tz, minute, second, frac, nowkey, result)
    return result


_priorities: dict[str, tuple[int, int, str, int, str]] = {}  # "<PRI>" text → pri, facility, its name, severity, …


def _priority(syslog: dict, pri_text: str) -> None:
    known = _priorities.get(pri_text)
    if known is None:
        pri = int(pri_text)
        if pri > 191:
            raise ParseError(f"syslog priority {pri} out of range 0-191")
        facility, severity = divmod(pri, 8)
        known = (pri, facility, FACILITIES[facility], severity, SEVERITIES[severity])
        if len(_priorities) < 1024:  # valid texts are few: "0" … "191", also zero-padded ("07", "007")
            _priorities[pri_text] = known
    pri, facility, facility_name, severity, severity_name = known
    syslog["priority"] = pri
    syslog["facility"] = {"code": facility, "name": facility_name}
    syslog["severity"] = {"code": severity, "name": severity_name}


def program_name(tag: str) -> str | None:
    """``sshd(pam_unix)`` → ``sshd``, ``syslogd 1.4.1`` → ``syslogd``, ``-- root`` → None."""
    name = tag
    if "(" in name:
        name = name.partition("(")[0]
    if " " in name:
        name = name.partition(" ")[0]
    if not name or name[0] == "-":
        return None
    return name


_names: dict[str, str | None] = {}


@cython.locals(msg=str, host=str, tag=str, first=cython.Py_UCS4)
def _build(timestamp: str, line: str, msg: str, syslog: dict, host: str | None, tag: str | None, pid: str | None,
           handler: Handler | None, ctx: ParseContext) -> Event:
    """The event from the header fields, then the program parser on the message."""
    event: Event = {
        "@timestamp": timestamp,
        "event": {
            "kind": "event", "category": ["host"], "type": ["info"], "dataset": "system.syslog",
            "module": "system", "original": line,
        },
        "message": msg,
        "log": {"syslog": syslog},
        "ecs": {"version": ECS_VERSION},
    }
    if host:
        first = host[0]
        if (first.isdigit() or ":" in host) and (ip := as_ip(host)) is not None:
            event["host"] = {"hostname": host, "name": host, "ip": [ip]}
        else:
            event["host"] = {"hostname": host, "name": host}
    elif ctx.hostname:
        event["host"] = {"name": ctx.hostname}
    name = None
    if tag:
        syslog["appname"] = tag
        name = _names.get(tag, "")
        if name == "":
            name = program_name(tag)
            if len(_names) >= _TS_CACHE_MAX:
                _names.clear()
            _names[tag] = name
        if name is not None:
            event["process"] = {"name": name, "pid": digits_value(pid)} if pid else {"name": name}
        elif pid:
            event["process"] = {"pid": digits_value(pid)}
    if handler is None:
        handler = PROGRAMS.get(name) if name is not None else None
        if handler is None and tag is not None:
            if msg.startswith("pam_") or "(pam_" in tag:
                handler = auth.pam_generic
            elif tag.startswith("-- "):  # old login(1) logs under "-- user"
                handler = auth.login
    if handler is not None:
        handler(event, msg)
    return event


@cython.locals(msg=str)
def parse_rfc3164(line: str, ctx: ParseContext, handler: Handler | None = None) -> Event:
    """``<PRI>Mmm dd hh:mm:ss host prog[pid]: msg`` (``<PRI>`` optional, the year inferred)."""
    groups = split_rfc3164(line) if cython.compiled else None  # the common shape, split without the regex
    if groups is not None:
        pri, hour_text, mon, day, hour, minute, second, frac, host, tag, pid, msg = groups
    else:
        m = _RFC3164.match(line)
        if m is None:
            raise ParseError("not an RFC 3164 syslog line (expected 'Mmm dd hh:mm:ss host ...')")
        pri, hour_text, mon, day, hour, minute, second, frac, host, tag, pid, msg = m.groups()
        if host[-1] == ":" and (hm := _HOSTLESS_TAG.fullmatch(host)) is not None:
            # "Mmm dd hh:mm:ss prog[pid]: msg": the sender left out its name, so the "host" was the tag
            tag, pid = hm.groups()
            host, msg = None, line[m.end(9):]
    syslog: dict = {}
    if pri is not None:
        _priority(syslog, pri)
    timestamp = _timestamp_3164(hour_text, mon, day, hour, minute, second, frac, ctx)
    return _build(timestamp, line, msg.strip(), syslog, host, tag, pid, handler, ctx)


def parse_rfc3339_legacy(line: str, ctx: ParseContext, handler: Handler | None = None) -> Event:
    """``[<PRI>]2024-01-31T12:00:00.123+08:00 host prog[pid]: msg`` (rsyslog's high-precision file format)."""
    m = _RFC3339_LEGACY.match(line)
    if m is None:
        raise ParseError("not a syslog line with an RFC 3339 timestamp")
    pri, ts, host, tag, pid, msg = m.groups()
    syslog: dict = {}
    if pri is not None:
        _priority(syslog, pri)
    return _build(iso_text(ts, ctx.tz), line, msg.strip(), syslog, host, tag, pid, handler, ctx)


def _structured_data(text: str) -> tuple[dict[str, dict[str, str]], str]:
    """Parse leading SD-ELEMENTs; return them and the rest of the text (the MSG)."""
    sd: dict[str, dict[str, str]] = {}
    pos = 0
    while pos < len(text) and text[pos] == "[":
        m = _SD_ELEMENT.match(text, pos)
        if m is None:
            raise ParseError("malformed RFC 5424 structured data")
        params = sd.setdefault(m.group(1), {})
        for name, value in _SD_PARAM.findall(m.group(2)):
            params[name] = _SD_UNESCAPE.sub(r"\1", value) if "\\" in value else value
        pos = m.end()
    return sd, text[pos:]


def parse_rfc5424(line: str, ctx: ParseContext, handler: Handler | None = None) -> Event:
    """``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG``."""
    m = _RFC5424.match(line)
    if m is None:
        raise ParseError("not an RFC 5424 syslog line (expected '<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD')")
    pri, ts, host, app, procid, msgid, rest = m.groups()
    syslog: dict = {"version": "1"}
    _priority(syslog, pri)
    rest = rest or ""
    sd = None
    if rest.startswith("["):
        sd, rest = _structured_data(rest)
    elif rest.startswith("-"):
        rest = rest[1:]
    msg = (rest[1:] if rest.startswith(" ") else rest).removeprefix("\ufeff").rstrip()
    timestamp = now_iso(ctx) if ts == "-" else iso_text(ts, ctx.tz)
    if sd:
        syslog["structured_data"] = sd
    if msgid != "-":
        syslog["msgid"] = msgid
    pid = None
    if procid != "-":
        syslog["procid"] = procid
        if procid.isascii() and procid.isdigit() and len(procid) <= 10:
            pid = procid
    event = _build(timestamp, line, msg, syslog, None if host == "-" else host, None if app == "-" else app, pid,
                   handler, ctx)
    if ts == "-" and event["@timestamp"] == timestamp:  # (a web line carried in the message has its own time)
        add_tag(event, TIME_ASSUMED)
    return event


def parse_syslog(line: str, ctx: ParseContext, handler: Handler | None = None) -> Event:
    """Any syslog line: RFC 5424, RFC 3164 or the RFC 3339 file format, chosen by its first characters."""
    start = 0  # where the line goes on after "<PRI>"
    if line.startswith("<"):
        close = line.find(">", 1, 5)
        if close < 0:
            raise ParseError("syslog '<PRI>' is not closed")
        start = close + 1
        if line.startswith("1 ", start):
            return parse_rfc5424(line, ctx, handler)
    if line[start:start + 1].isdigit():
        return parse_rfc3339_legacy(line, ctx, handler)
    return parse_rfc3164(line, ctx, handler)


def parse_sshd(line: str, ctx: ParseContext) -> Event:
    """Syslog lines read as an auth log: every message goes through the sshd/PAM parser."""
    return parse_syslog(line, ctx, auth.sshd)


def parse_any_syslog(line: str, ctx: ParseContext) -> Event:
    """Syslog lines, dispatched on the program name."""
    return parse_syslog(line, ctx)


__all__ = ["FACILITIES", "PROGRAMS", "SEVERITIES", "parse_rfc3164", "parse_rfc3339_legacy",
           "parse_rfc5424", "parse_sshd", "parse_syslog", "program_name"]
