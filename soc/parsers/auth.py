"""Authentication messages inside syslog: OpenSSH ``sshd``, PAM, ``sudo``, ``su``, ``login`` and a few old daemons.

Each handler takes the event built from the syslog header and the message text, adds what it understands
(``event.action``/``outcome``/``category``/``type``, ``user.*``, ``source.*``, ``related.*``) and returns
whether it recognised the message. Dispatch is on the first word, then one precompiled regex.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import cython

from soc.ecs import Event
from soc.parsers.common import add_related, as_ip, as_port, set_endpoint, set_user
from soc.parsers.scan import split_ssh_login

AUTH_DATASET: Final = "system.auth"

_LOGIN: Final = re.compile(r"(Accepted|Failed) (\S+) for (invalid user )?(.*?) from (\S+) port (\d{1,5})",
                           re.DOTALL | re.ASCII)
_INVALID: Final = re.compile(r"(?:[Ii]nvalid user|input_userauth_request: invalid user) (.*?)"
                             r"(?: from (\S+)(?: port (\d{1,5}))?)?(?: \[preauth\])?$", re.DOTALL | re.ASCII)
_DISCONNECT: Final = re.compile(
    r"(?:Disconnected from|Connection closed by|Connection reset by|Received disconnect from) "
    r"(?:(invalid user|authenticating user|user) (.*?) )?(\S+)(?: port (\d{1,5}))?",
    re.DOTALL | re.ASCII,
)
_MAX_ATTEMPTS: Final = re.compile(r"error: maximum authentication attempts exceeded for (invalid user )?(.*?) "
                                  r"from (\S+) port (\d{1,5})", re.DOTALL | re.ASCII)
_FROM_PORT: Final = re.compile(r".*? from (\S+) port (\d{1,5})", re.DOTALL | re.ASCII)
_FROM: Final = re.compile(r".*? from (\S+)()", re.DOTALL | re.ASCII)
_WITH_PORT: Final = re.compile(r"Unable to negotiate with (\S+) port (\d{1,5})", re.ASCII)
_REVERSE: Final = re.compile(r"reverse mapping checking getaddrinfo for (\S+) \[([^\]]+)\]")
_REPEATED: Final = re.compile(r"message repeated \d+ times: \[ ?(.*?) ?\]$", re.DOTALL | re.ASCII)
_PAM_PREFIX: Final = re.compile(r"pam_[\w-]+\(([^:)]*)(?::(\w+))?\): ")
_RHOST_USER: Final = re.compile(r"rhost=(\S*)(?:\s+user=(\S+))?")
_SESSION: Final = re.compile(r"session (opened|closed) for user ([^\s(]+)(?:\(uid=(\d+)\))?"
                             r"(?: by ([^\s(]*)(?:\(uid=(\d+)\))?)?")
_SUDO: Final = re.compile(r"\s*(\S+) : (.*)", re.DOTALL | re.ASCII)
_SU: Final = re.compile(r"(Successful|FAILED) su for (\S+) by (\S+)")
_SU_CLASSIC: Final = re.compile(r"'su (\S+)' (succeeded|failed) for (\S+)")
_FTP_CONNECT: Final = re.compile(r"connection from (\S+) \(([^)]*)\)")
_FTP_ANON: Final = re.compile(r"ANONYMOUS FTP LOGIN FROM ([^\s,]+)")
_KLOGIN_FAIL: Final = re.compile(r"Authentication failed from (\S+) \(([^)]*)\)")
_SNMP: Final = re.compile(r"Received SNMP packet\(s\) from (\S+)")
_LOGIN_FAILED: Final = re.compile(r"FAILED LOGIN \(?\d+\)? (?:on '?\S+?'? )?FROM '?(\S*?)'? FOR '?(\S+?)'?,")


def _mark(event: Event, action: str, outcome: str | None, category: str, etype: str) -> None:
    node = event["event"]
    node["category"] = [category]
    node["type"] = [etype]
    node["action"] = action
    node["dataset"] = AUTH_DATASET
    if outcome is not None:
        node["outcome"] = outcome


def _peer(event: Event, host: str | None, port: str | None = None) -> None:
    if host:
        set_endpoint(event, "source", host.rstrip(":"), as_port(port))


def _user_and_peer(event: Event, user: str | None, host: str, port: int | None) -> None:
    """Fast path for a fresh event: ``user.name``, ``source.*`` and ``related.*`` in one go."""
    if not host:
        if user:
            set_user(event, user)
        return
    ip = as_ip(host)
    if ip is not None:
        event["source"] = {"ip": ip, "port": port} if port is not None else {"ip": ip}
        related: dict = {"ip": [ip]}
    else:
        event["source"] = {"domain": host, "port": port} if port is not None else {"domain": host}
        related = {"hosts": [host]}
    if user:
        event["user"] = {"name": user}
        related["user"] = [user]
    if "related" in event:
        for kind, values in related.items():
            for value in values:
                add_related(event, kind, value)
    else:
        event["related"] = related


def _ssh_login(event: Event, msg: str) -> bool:
    groups = split_ssh_login(msg) if cython.compiled else None  # the common shape, split without the regex
    if groups is None:
        m = _LOGIN.match(msg)
        if m is None:
            return False
        groups = m.groups()
    verdict, _method, _invalid, user, host, port = groups
    node = event["event"]
    node["category"] = ["authentication"]
    node["action"] = "ssh_login"
    node["dataset"] = AUTH_DATASET
    if verdict == "Accepted":
        node["type"] = ["start"]
        node["outcome"] = "success"
    else:
        node["type"] = ["info"]
        node["outcome"] = "failure"
    _user_and_peer(event, user, host, as_port(port))
    return True


def _ssh_invalid(event: Event, msg: str) -> bool:
    m = _INVALID.match(msg)
    if m is None:
        return False
    user, host, port = m.groups()
    node = event["event"]
    node["category"] = ["authentication"]
    node["type"] = ["info"]
    node["action"] = "ssh_invalid_user"
    node["dataset"] = AUTH_DATASET
    node["outcome"] = "failure"
    if host:
        _user_and_peer(event, user, host, as_port(port))
    else:
        set_user(event, user)
    return True


def _ssh_disconnect(event: Event, msg: str) -> bool:
    m = _DISCONNECT.match(msg)
    if m is None:
        return _ssh_connection(event, msg)
    _kind, user, host, port = m.groups()
    node = event["event"]
    node["category"] = ["session"]
    node["type"] = ["end"]
    node["action"] = "ssh_disconnect"
    node["dataset"] = AUTH_DATASET
    node["outcome"] = "unknown"
    _user_and_peer(event, user, host.rstrip(":"), as_port(port))
    return True


def _ssh_connection(event: Event, msg: str) -> bool:
    m = _FROM_PORT.match(msg) if msg.startswith("Connection from ") else None
    if m is None:
        return False
    _mark(event, "ssh_connection", None, "network", "connection")
    _peer(event, m.group(1), m.group(2))
    return True


def _ssh_error(event: Event, msg: str) -> bool:
    m = _MAX_ATTEMPTS.match(msg)
    if m is not None:
        _mark(event, "ssh_max_auth_attempts", "failure", "authentication", "info")
        set_user(event, m.group(2))
        _peer(event, m.group(3), m.group(4))
        return True
    if msg.startswith("error: PAM: "):
        m = _FROM_PORT.match(msg) or _FROM.match(msg)
        _mark(event, "ssh_login", "failure", "authentication", "info")
        if m is not None:
            _peer(event, m.group(1), m.group(2) or None)
        return True
    return False


def _ssh_no_ident(event: Event, msg: str) -> bool:
    m = _FROM_PORT.match(msg)
    if m is None or not msg.startswith("Did not receive identification"):
        return False
    _mark(event, "ssh_no_identification", "failure", "network", "connection")
    _peer(event, m.group(1), m.group(2))
    return True


def _ssh_unable(event: Event, msg: str) -> bool:
    m = _WITH_PORT.match(msg)
    if m is None:
        return False
    _mark(event, "ssh_negotiation_failed", "failure", "network", "connection")
    _peer(event, m.group(1), m.group(2))
    return True


def _ssh_bad(event: Event, msg: str) -> bool:
    m = _FROM_PORT.match(msg)
    if m is None:
        return False
    _mark(event, "ssh_bad_protocol", "failure", "network", "connection")
    _peer(event, m.group(1), m.group(2))
    return True


def _ssh_reverse(event: Event, msg: str) -> bool:
    m = _REVERSE.match(msg)
    if m is None:
        return False
    _mark(event, "ssh_reverse_mapping_failed", None, "network", "info")
    _peer(event, m.group(2))
    if m.group(1) and as_ip(m.group(1)) is None:
        event["source"]["domain"] = m.group(1)
    return True


def _ssh_repeated(event: Event, msg: str) -> bool:
    m = _REPEATED.match(msg)
    return m is not None and sshd(event, m.group(1))


# ---------------------------------------------------------------------------------------------------- PAM

def _pam_auth_failure(event: Event, msg: str) -> bool:
    node = event["event"]
    node["category"] = ["authentication"]
    node["type"] = ["info"]
    node["action"] = "pam_auth_failure"
    node["dataset"] = AUTH_DATASET
    node["outcome"] = "failure"
    m = _RHOST_USER.search(msg)
    if m is not None:
        rhost, user = m.groups()
        if rhost:
            _user_and_peer(event, user, rhost, None)
        elif user:
            set_user(event, user)
    return True


def _pam_check_pass(event: Event, msg: str) -> bool:
    if not msg.startswith("check pass; user unknown"):
        return False
    _mark(event, "pam_user_unknown", "failure", "authentication", "info")
    return True


def _pam_session(event: Event, msg: str) -> bool:
    m = _SESSION.match(msg)
    if m is None:
        return False
    verb, target, uid, by, _by_uid = m.groups()
    node = event["event"]
    node["category"] = ["session"]
    node["dataset"] = AUTH_DATASET
    node["outcome"] = "success"
    if verb == "opened":
        node["type"] = ["start"]
        node["action"] = "session_opened"
    else:
        node["type"] = ["end"]
        node["action"] = "session_closed"
    if by and by != "LOGIN" and by != target:  # su/sudo: the invoker acts as the target user
        effective = {"name": target, "id": uid} if uid else {"name": target}
        event["user"] = {"name": by, "effective": effective}
        event["related"] = {"user": [by, target]}
    else:
        event["user"] = {"name": target, "id": uid} if uid else {"name": target}
        event["related"] = {"user": [target]}
    return True


def _pam_more_failures(event: Event, msg: str) -> bool:
    if "authentication failure" not in msg:
        return False
    return _pam_auth_failure(event, msg)


_PAM: Final[dict[str, Callable[[Event, str], bool]]] = {
    "authentication": lambda e, m: m.startswith("authentication failure") and _pam_auth_failure(e, m),
    "check": _pam_check_pass,
    "session": _pam_session,
    "PAM": _pam_more_failures,
}


def pam(event: Event, msg: str) -> bool:
    """PAM module messages (``pam_unix``, ``pam_sss``…), with or without the ``pam_x(svc:type): `` prefix."""
    if msg.startswith("pam_"):
        m = _PAM_PREFIX.match(msg)
        if m is None:
            return False
        msg = msg[m.end():]
    handler = _PAM.get(msg.partition(" ")[0])
    return handler is not None and handler(event, msg)


def pam_generic(event: Event, msg: str) -> bool:
    """Programs that only log through PAM (gdm, cron, systemd-logind …), plus a few plain failure notes."""
    if pam(event, msg):
        return True
    if msg.startswith("Couldn't authenticate user"):
        _mark(event, "authentication_failed", "failure", "authentication", "info")
        return True
    return False


# ---------------------------------------------------------------------------------------------------- sshd

_SSHD: Final[dict[str, Callable[[Event, str], bool]]] = {
    "Acce": _ssh_login,
    "Fail": _ssh_login,
    "Inva": _ssh_invalid,
    "inva": _ssh_invalid,
    "inpu": _ssh_invalid,
    "Disc": _ssh_disconnect,
    "Conn": _ssh_disconnect,
    "Rece": _ssh_disconnect,
    "erro": _ssh_error,
    "Did ": _ssh_no_ident,
    "Unab": _ssh_unable,
    "Bad ": _ssh_bad,
    "reve": _ssh_reverse,
    "mess": _ssh_repeated,
    "pam_": pam,
    # PAM without prefix (old "sshd(pam_unix)" tags)
    "auth": _PAM["authentication"],
    "chec": _pam_check_pass,
    "sess": _pam_session,
    "PAM ": _pam_more_failures,
}


def sshd(event: Event, msg: str) -> bool:
    """OpenSSH server messages and the PAM messages sshd logs."""
    handler = _SSHD.get(msg[:4])
    if handler is not None and handler(event, msg):
        return True
    event["event"]["dataset"] = AUTH_DATASET
    return False


# ---------------------------------------------------------------------------------------------------- sudo, su, login

def sudo(event: Event, msg: str) -> bool:
    """``alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`` (and the failure variants)."""
    if msg.startswith("pam_"):
        return pam(event, msg)
    m = _SUDO.match(msg)
    if m is None:
        return False
    user, rest = m.groups()
    command = None
    at = rest.find("COMMAND=")
    if at >= 0:
        command = rest[at + 8:]
        rest = rest[:at]
    fields: dict[str, str] = {}
    error = None
    for part in rest.split(";"):
        part = part.strip()
        key, eq, value = part.partition("=")
        if eq and key.isupper():
            fields[key] = value
        elif part:
            error = part
    if not fields and command is None:
        return False
    set_user(event, user)
    info: dict[str, str] = {}
    if "USER" in fields:
        event["user"]["effective"] = {"name": fields["USER"]}
        add_related(event, "user", fields["USER"])
        info["user"] = fields["USER"]
    process = event.setdefault("process", {})
    if command is not None:
        process["command_line"] = command
        info["command"] = command
    if "PWD" in fields:
        process["working_directory"] = fields["PWD"]
        info["pwd"] = fields["PWD"]
    if "TTY" in fields:
        info["tty"] = fields["TTY"]
    if error:
        info["error"] = error
        _mark(event, "sudo", "failure", "authentication", "info")
    else:
        _mark(event, "sudo", "success", "process", "start")
    event["system"] = {"auth": {"sudo": info}}
    return True


def su(event: Event, msg: str) -> bool:
    """``su``: PAM lines, ``Successful su for root by alice`` and the classic ``'su root' failed for bob``."""
    if pam(event, msg):
        return True
    m = _SU.match(msg)
    if m is not None:
        verdict, target, by = m.groups()
    else:
        m = _SU_CLASSIC.match(msg)
        if m is None:
            return False
        target, verdict, by = m.groups()
    ok = verdict in ("Successful", "succeeded")
    _mark(event, "su", "success" if ok else "failure", "authentication", "start" if ok else "info")
    set_user(event, by)
    event["user"]["effective"] = {"name": target}
    add_related(event, "user", target)
    return True


def login(event: Event, msg: str) -> bool:
    """``login``: PAM lines, ``ROOT LOGIN ON tty2``, ``FAILED LOGIN 1 FROM host FOR root, ...``."""
    if pam(event, msg):
        return True
    if msg.startswith("ROOT LOGIN"):
        _mark(event, "login", "success", "authentication", "start")
        set_user(event, "root")
        return True
    m = _LOGIN_FAILED.match(msg)
    if m is not None:
        _mark(event, "login", "failure", "authentication", "info")
        host, user = m.groups()
        if host and host != "(null)":
            set_endpoint(event, "source", host)
        set_user(event, user)
        return True
    return False


# ---------------------------------------------------------------------------------------------------- old daemons

def ftpd(event: Event, msg: str) -> bool:
    """``connection from IP (name) at …`` and ``ANONYMOUS FTP LOGIN FROM IP, (anonymous)``."""
    m = _FTP_CONNECT.match(msg)
    if m is not None:
        _mark(event, "ftp_connection", None, "network", "connection")
        event["event"]["dataset"] = "system.syslog"
        set_endpoint(event, "source", m.group(1))
        if m.group(2) and "domain" not in event.get("source", {}):
            event.setdefault("source", {})["domain"] = m.group(2)
        return True
    m = _FTP_ANON.match(msg)
    if m is not None:
        _mark(event, "ftp_login", "success", "authentication", "start")
        set_endpoint(event, "source", m.group(1))
        set_user(event, "anonymous")
        return True
    return pam(event, msg)


def klogind(event: Event, msg: str) -> bool:
    """Kerberos rlogin: ``Authentication failed from IP (name): …``, ``Kerberos authentication failed``."""
    m = _KLOGIN_FAIL.match(msg)
    if m is not None:
        _mark(event, "klogin_auth_failure", "failure", "authentication", "info")
        set_endpoint(event, "source", m.group(1))
        if m.group(2) and as_ip(m.group(2)) is None:
            event.setdefault("source", {})["domain"] = m.group(2)
        return True
    if msg.startswith("Kerberos authentication failed"):
        _mark(event, "klogin_auth_failure", "failure", "authentication", "info")
        return True
    return pam(event, msg)


def snmpd(event: Event, msg: str) -> bool:
    """``Received SNMP packet(s) from IP``."""
    m = _SNMP.match(msg)
    if m is None:
        return False
    node = event["event"]
    node["category"] = ["network"]
    node["type"] = ["connection"]
    node["action"] = "snmp_packet"
    set_endpoint(event, "source", m.group(1))
    return True
