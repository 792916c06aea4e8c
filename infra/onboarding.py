"""On-boarding as a job: ``onboard.yml`` (等保 baseline) with the Yunshu syslog receiver as the hosts' forwarding
target, then ``evidence.yml`` read back and stored (see :mod:`infra.host_evidence`)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from core.runtime import Runtime
from infra.jobs import JobEventView
from infra.scoped_jobs import current_lab, run_scoped


def _host_port(host: str, port: int) -> str:
    try:
        return f"[{host}]:{port}" if ipaddress.ip_address(host).version == 6 else f"{host}:{port}"
    except ValueError:  # a name
        return f"{host}:{port}"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def is_local_address(address: str) -> bool:
    """Whether this machine has ``address`` (a socket can be bound to it)."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def syslog_target(rt: Runtime) -> str | None:
    """Where on-boarded hosts send their logs: the configured target, else the receiver's address, else (receiver
    on loopback) the lab controller's address; None when none of these can be reached from the hosts."""
    soc = rt.settings.soc
    if soc.syslog_forward_target:
        return soc.syslog_forward_target
    if not _loopback(soc.syslog_host) and soc.syslog_host not in ("0.0.0.0", "::"):
        return _host_port(soc.syslog_host, soc.syslog_port)
    lab = current_lab(rt)
    return _host_port(str(lab.controller), soc.syslog_port) if lab is not None else None


def syslog_listen_addresses(rt: Runtime) -> list[str]:
    """Addresses the syslog receiver of ``yunshu up`` listens on: the configured one, plus the lab controller's
    when the receiver is on loopback and a lab is up — the address on-boarded lab hosts forward to."""
    soc = rt.settings.soc
    addresses = [soc.syslog_host]
    lab = current_lab(rt)
    if (not soc.syslog_forward_target and _loopback(soc.syslog_host) and lab is not None
            and is_local_address(str(lab.controller))):
        addresses.append(str(lab.controller))
    return addresses


def onboard(rt: Runtime, scope: list[str], actor: str, *, check: bool = False,
            on_event: Callable[[JobEventView, dict[str, Any]], None] | None = None,
            on_created: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run the 等保 baseline on ``scope`` as a job; returns the job record."""
    target = syslog_target(rt)
    extravars = {"yunshu_syslog_target": target} if target else None
    return run_scoped(rt, "onboard", "onboard.yml", scope, actor, check=check, extravars=extravars,
                      on_event=on_event, on_created=on_created)
