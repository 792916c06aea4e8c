"""Linux audit records (``/var/log/audit/audit.log``, raw or enriched format).

``type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=59 success=yes exe="/usr/bin/id" …``
Every key/value of the record is kept under ``auditd.log`` (hex-encoded strings decoded, the nested
``msg='…'`` of user-space records flattened in, enriched ``UID="root"`` names included) so Sigma rules
written against auditd keys (``type``, ``a0``, ``exe``, ``key``, ``SYSCALL`` …) can be mapped one to one;
the usual ECS fields are filled as well.
"""

from __future__ import annotations

import re
from typing import Final

from soc.ecs import ECS_VERSION, Event
from soc.parsers.common import ParseContext, ParseError, add_related, as_count, as_ip, epoch_iso, set_endpoint

_HEADER: Final = re.compile(
    r"(?:node=(\S+) )?type=([\w-]+) msg=audit\((\d{1,12})(?:\.(\d{1,9}))?:(\d{1,20})\): ?(.*)", re.DOTALL | re.ASCII
)
_KV: Final = re.compile(r"""([\w-]+)=("[^"]*"|'[^']*'|\S*)""")
_HEX: Final = re.compile(r"(?:[0-9A-F]{2})+")
_ARG: Final = re.compile(r"a\d{1,4}")
_HEX_FIELDS: Final = frozenset(("exe", "comm", "cwd", "name", "proctitle", "cmd", "acct", "key", "data", "old",
                                "new", "terminal", "hostname", "id"))
_UNSET_IDS: Final = frozenset(("4294967295", "-1", "unset"))

# record type → (category, type) ; anything else is ("host", "info")
_CATEGORIES: Final = {
    "USER_LOGIN": ("authentication", "start"),
    "USER_LOGOUT": ("authentication", "end"),
    "USER_AUTH": ("authentication", "info"),
    "USER_ACCT": ("authentication", "info"),
    "USER_ERR": ("authentication", "info"),
    "USER_CHAUTHTOK": ("iam", "change"),
    "CRED_ACQ": ("authentication", "info"),
    "CRED_DISP": ("authentication", "info"),
    "CRED_REFR": ("authentication", "info"),
    "ANOM_LOGIN_FAILURES": ("authentication", "info"),
    "LOGIN": ("authentication", "start"),
    "USER_START": ("session", "start"),
    "USER_END": ("session", "end"),
    "USER_CMD": ("process", "start"),
    "SYSCALL": ("process", "info"),
    "EXECVE": ("process", "start"),
    "PROCTITLE": ("process", "info"),
    "CWD": ("process", "info"),
    "PATH": ("file", "info"),
    "CONFIG_CHANGE": ("configuration", "change"),
    "USYS_CONFIG": ("configuration", "change"),
    "DAEMON_START": ("process", "start"),
    "DAEMON_END": ("process", "end"),
    "DAEMON_ABORT": ("process", "end"),
    "DAEMON_CONFIG": ("configuration", "change"),
    "DAEMON_RESUME": ("process", "info"),
    "DAEMON_ROTATE": ("process", "info"),
    "SERVICE_START": ("process", "start"),
    "SERVICE_STOP": ("process", "end"),
    "ADD_USER": ("iam", "creation"),
    "DEL_USER": ("iam", "deletion"),
    "ADD_GROUP": ("iam", "creation"),
    "DEL_GROUP": ("iam", "deletion"),
    "AVC": ("host", "info"),
    "SOCKADDR": ("network", "info"),
}
_OUTCOMES: Final = {"yes": "success", "success": "success", "1": "success",
                    "no": "failure", "failed": "failure", "fail": "failure", "0": "failure"}


def _value(key: str, raw: str, is_execve: bool) -> str:
    if raw[:1] == '"':
        return raw[1:-1] if len(raw) > 1 and raw.endswith('"') else raw[1:]
    if (key in _HEX_FIELDS or (is_execve and _ARG.fullmatch(key))) and _HEX.fullmatch(raw):
        decoded = bytes.fromhex(raw).decode("utf-8", "replace")
        return decoded.replace("\x00", " ").rstrip() if key == "proctitle" else decoded
    return raw


def _fields(text: str, is_execve: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, raw in _KV.findall(text):
        if raw[:1] == "'":
            inner = raw[1:-1] if len(raw) > 1 and raw.endswith("'") else raw[1:]
            if key == "msg" and "=" in inner:
                out.update(_fields(inner, is_execve))
            else:
                out[key] = inner
        elif raw and raw != "(null)":
            out[key] = _value(key, raw, is_execve)
    return out


def _int(text: str | None) -> int | None:
    return as_count(text) if text is not None else None  # ASCII digits only: "²".isdigit() is True


def parse_auditd(line: str, ctx: ParseContext) -> Event:
    """One audit record → ECS event (``auditd.log`` keeps every field)."""
    m = _HEADER.match(line)
    if m is None:
        raise ParseError("not an audit record (expected 'type=X msg=audit(EPOCH.MS:SEQ): ...')")
    node, rtype, secs, frac, seq, body = m.groups()
    raw_part, _, enriched = body.partition("\x1d")
    is_execve = rtype == "EXECVE"
    fields = _fields(raw_part, is_execve)
    if enriched:
        fields.update(_fields(enriched, is_execve))
    millis = int(frac[:3].ljust(3, "0")) if frac else 0
    category, etype = _CATEGORIES.get(rtype, ("host", "info"))
    event: Event = {
        "@timestamp": epoch_iso(int(secs), millis),
        "event": {
            "kind": "event", "category": [category], "type": [etype], "action": rtype.lower(),
            "dataset": "auditd.log", "module": "auditd", "original": line,
        },
        "message": body.replace("\x1d", " ").rstrip(),
        "auditd": {"log": {**fields, "record_type": rtype, "sequence": int(seq)}},
        "ecs": {"version": ECS_VERSION},
    }
    if node:
        event["host"] = {"name": node}
    elif ctx.hostname:
        event["host"] = {"name": ctx.hostname}
    outcome = _OUTCOMES.get(fields.get("success") or fields.get("res") or "")
    if outcome is not None:
        event["event"]["outcome"] = outcome
    _process(event, fields, is_execve)
    _user(event, fields)
    addr = fields.get("addr")
    if addr and addr != "?" and as_ip(addr) is not None:
        set_endpoint(event, "source", addr)
    hostname = fields.get("hostname")
    if hostname and hostname != "?":
        if as_ip(hostname) is None:
            event.setdefault("source", {})["domain"] = hostname
        elif "source" not in event:
            set_endpoint(event, "source", hostname)
    return event


def _process(event: Event, fields: dict[str, str], is_execve: bool) -> None:
    process: dict = {}
    pid = _int(fields.get("pid"))
    if pid is not None:
        process["pid"] = pid
    ppid = _int(fields.get("ppid"))
    if ppid is not None:
        process["parent"] = {"pid": ppid}
    exe = fields.get("exe")
    if exe and exe != "?":
        process["executable"] = exe
        process["name"] = exe.rpartition("/")[2]
    comm = fields.get("comm")
    if comm and comm != "?":
        process["name"] = comm
    if "proctitle" in fields:
        process["title"] = fields["proctitle"]
    if "cwd" in fields:
        process["working_directory"] = fields["cwd"]
    if is_execve:
        argc = _int(fields.get("argc"))
        if argc is not None:
            args = [fields[f"a{i}"] for i in range(min(argc, 1024)) if f"a{i}" in fields]
            process["args"] = args
            process["args_count"] = argc
            process["command_line"] = " ".join(args)
    if process:
        event["process"] = process


def _user(event: Event, fields: dict[str, str]) -> None:
    user: dict = {}
    uid = fields.get("uid")
    if uid is not None and uid not in _UNSET_IDS:
        user["id"] = uid
    auid = fields.get("auid")
    if auid is not None and auid not in _UNSET_IDS:
        user["audit"] = {"id": auid}
    euid = fields.get("euid")
    if euid is not None and euid not in _UNSET_IDS and euid != uid:
        user["effective"] = {"id": euid}
    name = fields.get("acct") or fields.get("UID")
    if name and name not in ("?", "(unknown)", "unset"):
        user["name"] = name
        add_related(event, "user", name)
    audit_name = fields.get("AUID")
    if audit_name and audit_name not in ("unset", "?") and "audit" in user:
        user["audit"]["name"] = audit_name
        add_related(event, "user", audit_name)
    if user:
        event["user"] = user
