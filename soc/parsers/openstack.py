"""OpenStack service logs (oslo.log default format), e.g. nova-api::

    2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-… USER PROJECT - - -] 10.11.10.1
    "GET /v2/…/servers/detail HTTP/1.1" status: 200 len: 1893 time: 0.2477829

A leading file name (as in the Loghub collection, ``nova-api.log.1.2017-05-16_13:53:08 2017-…``) is accepted.
"""

from __future__ import annotations

import re
from typing import Final

from soc.ecs import ECS_VERSION, Event
from soc.parsers.common import ParseContext, ParseError, add_related, as_count, iso_text, set_endpoint

_LINE: Final = re.compile(
    r"(?:(\S+\.log\S*) )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?) (\d{1,10}) ([A-Z]+) (\S+) ?(.*)",
    re.DOTALL | re.ASCII,
)
_INSTANCE: Final = re.compile(r"\[instance: ([0-9a-fA-F-]{8,64})\] ?")
_WSGI: Final = re.compile(
    r'(\S+) "(\S+) (\S+) HTTP/(\d(?:\.\d)?)" status: (\d{3}) len: (\d+)(?: time: (\d{1,9}(?:\.\d{1,9})?))?'
)
_ERROR_LEVELS: Final = frozenset(("ERROR", "CRITICAL", "FATAL"))


def _none(value: str) -> str | None:
    return None if value in ("-", "", "None") else value


def parse_openstack(line: str, ctx: ParseContext) -> Event:
    """One oslo.log line → ECS event; wsgi request lines become ``openstack.api`` web events."""
    m = _LINE.match(line)
    if m is None:
        raise ParseError("not an OpenStack log line (expected 'YYYY-MM-DD hh:mm:ss.mmm PID LEVEL logger ...')")
    filename, ts, pid, level, logger, rest = m.groups()
    rest = rest.rstrip()
    node: dict = {
        "kind": "event", "category": ["host"], "type": ["error" if level in _ERROR_LEVELS else "info"],
        "dataset": "openstack.log", "module": "openstack", "original": line,
    }
    openstack: dict = {}
    event: Event = {
        "@timestamp": iso_text(ts, ctx.tz),
        "event": node,
        "message": rest,
        "process": {"pid": int(pid)},
        "log": {"level": level.lower(), "logger": logger},
        "service": {"name": logger.partition(".")[0]},
        "openstack": openstack,
        "ecs": {"version": ECS_VERSION},
    }
    if filename:
        event["log"]["file"] = {"path": filename}
    if ctx.hostname:
        event["host"] = {"name": ctx.hostname}
    if rest.startswith("["):
        close = rest.find("]")
        if close > 0:
            _request_context(event, openstack, rest[1:close].split())
            rest = rest[close + 1:].lstrip()
    im = _INSTANCE.match(rest)
    if im is not None:
        event.setdefault("cloud", {})["instance"] = {"id": im.group(1)}
        rest = rest[im.end():]
    event["message"] = rest
    wm = _WSGI.match(rest)
    if wm is not None:
        _wsgi(event, node, wm)
    if not openstack:
        del event["openstack"]
    return event


def _request_context(event: Event, openstack: dict, parts: list[str]) -> None:
    """``[req-ID USER PROJECT DOMAIN USER_DOMAIN PROJECT_DOMAIN]`` (``-`` for absent; ``[-]`` for none)."""
    if not parts or not parts[0].startswith("req-"):
        return
    openstack["request_id"] = parts[0]
    if len(parts) > 1 and (user := _none(parts[1])):
        event["user"] = {"id": user}
        add_related(event, "user", user)
    if len(parts) > 2 and (project := _none(parts[2])):
        openstack["project_id"] = project
        event["cloud"] = {"project": {"id": project}}


def _wsgi(event: Event, node: dict, m: re.Match[str]) -> None:
    client, method, target, version, status_text, length, seconds = m.groups()
    status = int(status_text)
    node["category"] = ["web"]
    node["type"] = ["access"]
    node["dataset"] = "openstack.api"
    node["outcome"] = "success" if status < 400 else "failure"
    if seconds is not None:
        node["duration"] = round(float(seconds) * 1_000_000_000)
    set_endpoint(event, "source", client.partition(",")[0])
    response: dict = {"status_code": status}
    if (body_bytes := as_count(length)) is not None:
        response["body"] = {"bytes": body_bytes}
    event["http"] = {"request": {"method": method}, "response": response, "version": version}
    path, sep, query = target.partition("?")
    url = {"original": target, "path": path}
    if sep:
        url["query"] = query
    event["url"] = url
