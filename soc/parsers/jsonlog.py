"""JSON lines: Kubernetes audit events, documents that are already ECS, and any other JSON object."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from soc.ecs import ECS_VERSION, TIME_ASSUMED, TIME_UNPARSED, Event
from soc.parsers.common import (
    ParseContext,
    ParseError,
    add_related,
    add_tag,
    as_ip,
    assume_time,
    epoch_number_iso,
    iso_text,
    now_iso,
    set_endpoint,
)

# ECS field sets that are objects: a JSON document using one of these names for a scalar is not ECS.
_ECS_OBJECTS: Final = frozenset((
    "agent", "client", "cloud", "container", "destination", "dns", "ecs", "error", "event", "file", "group",
    "host", "http", "log", "network", "observer", "orchestrator", "organization", "package", "process",
    "registry", "related", "rule", "server", "service", "source", "threat", "tls", "trace", "transaction",
    "url", "user", "user_agent", "vulnerability", "gov",
))
_TIME_KEYS: Final = ("@timestamp", "timestamp", "time", "ts", "date", "datetime", "eventTime")
_MESSAGE_KEYS: Final = ("message", "msg", "log", "text")
_LEVEL_KEYS: Final = ("level", "severity", "lvl", "loglevel", "log.level")
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89abcdefABCDEF]")  # \ud800-\udfff in the JSON text
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# Deepest nesting a JSON line may have. Real logs stay far below; without a bound, acceptance would depend on how
# deep the Python stack happens to be when the line is parsed (json.loads recurses), and orjson refuses to write
# documents past 254 levels. Deeper lines are dead-lettered with their raw bytes.
MAX_JSON_DEPTH: Final = 128
_VERB_TYPES: Final = {
    "create": "creation", "delete": "deletion", "deletecollection": "deletion", "update": "change",
    "patch": "change", "get": "access", "list": "access", "watch": "access",
}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _timestamp(value: Any, ctx: ParseContext) -> str | None:
    """A JSON time value (ISO text or epoch number) → UTC ISO string, None when it is not one."""
    try:
        if isinstance(value, str):
            return iso_text(value, ctx.tz)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return epoch_number_iso(value)
    except ParseError:
        return None
    return None


def _merge(node: dict, key: str, value: Any) -> None:
    current = node.get(key)
    if isinstance(current, dict) and isinstance(value, dict):
        for k, v in value.items():
            _merge(current, k, v)
    else:
        node[key] = value


def expand_dotted(obj: dict) -> dict:
    """``{"source.ip": x, "event": {"a.b": 1}}`` → nested; a dotted key that collides with a scalar stays flat."""
    out: dict = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            value = expand_dotted(value)
        if "." in key and key != "@timestamp":
            *parents, leaf = key.split(".")
            node = out
            for part in parents:
                nxt = node.get(part)
                if nxt is None:
                    nxt = node[part] = {}
                elif not isinstance(nxt, dict):
                    node = None
                    break
                node = nxt
            if node is None:
                out[key] = value
            else:
                _merge(node, leaf, value)
        else:
            _merge(out, key, value)
    return out


def _is_ecs(obj: dict) -> bool:
    if "@timestamp" not in obj and "ecs" not in obj and "ecs.version" not in obj:
        return False
    return all(isinstance(obj[key], dict) for key in _ECS_OBJECTS.intersection(obj))


def _finite(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None  # 1e999 overflows to inf


def _no_constant(_name: str) -> None:
    return None


def _without_surrogates(value: Any) -> Any:
    """Lone UTF-16 surrogates (``"\\ud800"`` unpaired) replaced by U+FFFD: UTF-8 cannot hold them."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def _depth(value: Any) -> int:
    """How many arrays and objects deep ``value`` nests (0 for a scalar), walked without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def loads(line: str) -> Any:
    """``json.loads`` keeping to what the stores take: NaN, ±Infinity and overflowing numbers become null, lone
    surrogates U+FFFD (``event.original`` keeps the text as it came); ValueError past MAX_JSON_DEPTH levels."""
    value = json.loads(line, parse_float=_finite, parse_constant=_no_constant)
    if line.count("[") + line.count("{") > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if "\\u" in line and _SURROGATE_ESCAPE.search(line) is not None:
        value = _without_surrogates(value)
    return value


def parse_json(line: str, ctx: ParseContext) -> Event:
    """A JSON object per line: Kubernetes audit, ECS documents kept as they are, anything else under ``json``."""
    try:
        obj = loads(line)
    except RecursionError as exc:  # deeper than the stack allows, which is deeper than MAX_JSON_DEPTH
        raise ParseError(f"not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise ParseError(f"not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ParseError(f"JSON line is a {type(obj).__name__}, not an object")
    try:
        api = obj.get("apiVersion")
        if obj.get("kind") == "Event" and isinstance(api, str) and api.startswith("audit.k8s.io/"):
            return k8s_audit(obj, line, ctx)
        if _is_ecs(obj):
            return _ecs_document(obj, line, ctx)
        return _generic(obj, line, ctx)
    except RecursionError as exc:
        raise ParseError("JSON nested too deeply") from exc


_IP_OBJECTS = ("source", "destination", "client", "server", "host")


def _clean_addresses(event: Event) -> None:
    """ECS address fields keep only valid addresses (an ``ip`` field that is not one would make Elasticsearch
    refuse the whole document); what was dropped is tagged."""
    dropped = False
    for name in _IP_OBJECTS:
        node = event.get(name)
        if isinstance(node, dict) and "ip" in node:
            values = node["ip"] if isinstance(node["ip"], list) else [node["ip"]]
            good = [a for a in (as_ip(v) if isinstance(v, str) else None for v in values) if a is not None]
            dropped |= len(good) != len(values)
            if not good:
                del node["ip"]
            else:
                node["ip"] = good if isinstance(node["ip"], list) else good[0]
    related = event.get("related")
    if isinstance(related, dict) and "ip" in related:
        values = related["ip"] if isinstance(related["ip"], list) else [related["ip"]]
        good = [a for a in (as_ip(v) if isinstance(v, str) else None for v in values) if a is not None]
        dropped |= len(good) != len(values)
        related["ip"] = good
    if dropped:
        add_tag(event, "invalid_ip_dropped")


def _ecs_document(obj: dict, line: str, ctx: ParseContext) -> Event:
    event = expand_dotted(obj)
    if not all(isinstance(event[key], dict) for key in _ECS_OBJECTS.intersection(event)):
        return _generic(obj, line, ctx)
    ts = _timestamp(event.get("@timestamp"), ctx)
    if ts is None:
        assume_time(event, ctx, TIME_UNPARSED)
    else:
        event["@timestamp"] = ts
    _clean_addresses(event)
    node = event.setdefault("event", {})
    node.setdefault("kind", "event")
    if not isinstance(node.get("category"), list):
        node["category"] = [node["category"]] if isinstance(node.get("category"), str) else ["host"]
    if not isinstance(node.get("type"), list):
        node["type"] = [node["type"]] if isinstance(node.get("type"), str) else ["info"]
    node.setdefault("dataset", "json")
    node.setdefault("module", "json")
    node["original"] = line
    if not isinstance(event.get("message"), str):
        event["message"] = _message(obj, line)
    event.setdefault("ecs", {}).setdefault("version", ECS_VERSION)
    if ctx.hostname:
        event.setdefault("host", {}).setdefault("name", ctx.hostname)
    return event


def _message(obj: dict, line: str) -> str:
    for key in _MESSAGE_KEYS:
        value = obj.get(key)
        if isinstance(value, str):
            return value
    return line


def _generic(obj: dict, line: str, ctx: ParseContext) -> Event:
    ts = None
    for key in _TIME_KEYS:
        if key in obj:
            ts = _timestamp(obj[key], ctx)
            if ts is not None:
                break
    event: Event = {
        "@timestamp": ts or now_iso(ctx),
        "event": {
            "kind": "event", "category": ["host"], "type": ["info"], "dataset": "json", "module": "json",
            "original": line,
        },
        "message": _message(obj, line),
        "json": obj,
        "ecs": {"version": ECS_VERSION},
    }
    if ts is None:
        add_tag(event, TIME_ASSUMED)
    for key in _LEVEL_KEYS:
        level = _str(obj.get(key))
        if level is not None:
            event["log"] = {"level": level.lower()}
            break
    host = _str(obj.get("hostname")) or _str(obj.get("host")) or ctx.hostname
    if host:
        event["host"] = {"name": host}
    return event


def k8s_audit(obj: dict, line: str, ctx: ParseContext) -> Event:
    """A Kubernetes API-server audit event (``audit.k8s.io/v1`` ``Event``)."""
    verb = _str(obj.get("verb")) or "unknown"
    uri = _str(obj.get("requestURI"))
    user = _dict(obj.get("user"))
    username = _str(user.get("username"))
    status = _dict(obj.get("responseStatus")).get("code")
    ts = _timestamp(obj.get("stageTimestamp"), ctx) or _timestamp(obj.get("requestReceivedTimestamp"), ctx)
    node: dict = {
        "kind": "event", "category": ["api"], "type": [_VERB_TYPES.get(verb, "info")], "action": verb,
        "dataset": "kubernetes.audit", "module": "kubernetes", "original": line,
    }
    event: Event = {
        "@timestamp": ts or now_iso(ctx),
        "event": node,
        "message": f"{username or '?'} {verb} {uri or ''}".rstrip() + (f" -> {status}" if status is not None else ""),
        "kubernetes": {"audit": obj},
        "ecs": {"version": ECS_VERSION},
    }
    if ts is None:
        add_tag(event, TIME_ASSUMED)
    audit_id = _str(obj.get("auditID"))
    if audit_id:
        node["id"] = audit_id
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:  # an HTTP status code
        event["http"] = {"response": {"status_code": status}}
        node["outcome"] = "success" if status < 400 else "failure"
    else:
        node["outcome"] = "unknown"
    if username:
        event["user"] = {"name": username}
        add_related(event, "user", username)
        uid = _str(user.get("uid"))
        if uid:
            event["user"]["id"] = uid
        groups = user.get("groups")
        if isinstance(groups, list):
            names = [g for g in groups if isinstance(g, str)]
            if names:
                event["user"]["roles"] = names
        impersonated = _str(_dict(obj.get("impersonatedUser")).get("username"))
        if impersonated:
            event["user"]["effective"] = {"name": impersonated}
            add_related(event, "user", impersonated)
    ips = obj.get("sourceIPs")
    if isinstance(ips, list):
        first = True
        for ip in ips:
            if isinstance(ip, str) and ip:
                if first:
                    set_endpoint(event, "source", ip)
                    first = False
                elif (addr := as_ip(ip)) is not None:
                    add_related(event, "ip", addr)
    agent = _str(obj.get("userAgent"))
    if agent:
        event["user_agent"] = {"original": agent}
    if uri:
        path, sep, query = uri.partition("?")
        url = {"original": uri, "path": path}
        if sep:
            url["query"] = query
        event["url"] = url
    ref = _dict(obj.get("objectRef"))
    orchestrator: dict = {"type": "kubernetes"}
    resource: dict = {}
    if _str(ref.get("resource")):
        resource["type"] = ref["resource"]
    if _str(ref.get("name")):
        resource["name"] = ref["name"]
    if resource:
        orchestrator["resource"] = resource
    if _str(ref.get("namespace")):
        orchestrator["namespace"] = ref["namespace"]
    api_version = _str(ref.get("apiVersion"))
    if api_version:
        group = _str(ref.get("apiGroup"))
        orchestrator["api_version"] = f"{group}/{api_version}" if group else api_version
    event["orchestrator"] = orchestrator
    if ctx.hostname:
        event["host"] = {"name": ctx.hostname}
    return event
