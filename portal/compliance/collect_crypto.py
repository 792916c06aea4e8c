"""Crypto collector: TLS versions and ciphers of the system's web endpoints (and the portal's) found by really
connecting with :mod:`ssl`, clear-text HTTP beside them, the 密码应用方案 on file, and whether the ``cryptography``
package offers SM3 and SM4 here."""

from __future__ import annotations

import socket
import ssl
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.backends.openssl import backend
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from sqlalchemy import select

from core.runtime import Runtime
from policies.mlps.evidence import CryptoFacts, Provenance, TlsEndpoint
from portal.compliance.digest import stamp
from portal.compliance.system_info import SystemInfo
from portal.tickets.models import Ticket

VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
            "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
WEB_ROLES = ("web", "lb", "proxy", "gateway")


@dataclass(frozen=True)
class Target:
    """An endpoint to probe: TLS on ``tls_port``, clear-text HTTP on ``http_port`` (None: not tried)."""

    name: str
    host: str
    tls_port: int = 443
    http_port: int | None = 80


def _try_version(host: str, port: int, version: ssl.TLSVersion, timeout: float) -> str | None:
    """The cipher negotiated when only ``version`` is offered, or None if the server refuses it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():  # offering TLS 1.0/1.1 is the point here: does the server still accept them?
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer old versions so that the server decides
    except (ValueError, ssl.SSLError):
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            cipher = tls.cipher()
            return cipher[0] if cipher else "?"
    except (OSError, ssl.SSLError):
        return None


def _plaintext_http(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            raw.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            return raw.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def probe(target: Target, timeout: float = 2.0) -> dict[str, Any]:
    """Connect to ``target`` once per TLS version; the accepted versions with their ciphers and clear text."""
    accepted = {}
    reachable = True
    try:
        socket.create_connection((target.host, target.tls_port), timeout=timeout).close()
    except OSError:
        reachable = False
    if reachable:
        for name, version in VERSIONS.items():
            cipher = _try_version(target.host, target.tls_port, version, timeout)
            if cipher:
                accepted[name] = cipher
    plaintext = target.http_port is not None and _plaintext_http(target.host, target.http_port, timeout)
    return {"name": target.name, "address": f"{target.host}:{target.tls_port}", "tls_reachable": reachable,
            "protocols": accepted, "plaintext_http": plaintext,
            "http_address": f"{target.host}:{target.http_port}" if target.http_port else None}


def sm_support() -> dict[str, bool]:
    """Whether this ``cryptography`` build computes SM3 and SM4 (checked by using them)."""
    out = {"SM3": False, "SM4": False}
    try:
        if backend.hash_supported(hashes.SM3()):
            digest = hashes.Hash(hashes.SM3())
            digest.update(b"abc")
            out["SM3"] = digest.finalize().hex().startswith("66c7f0f4")
    except Exception:
        out["SM3"] = False
    try:
        out["SM4"] = backend.cipher_supported(algorithms.SM4(b"\0" * 16), modes.CBC(b"\0" * 16))
    except Exception:
        out["SM4"] = False
    return out


def portal_target(rt: Runtime) -> Target | None:
    """Yunshu's own portal endpoint when it serves TLS."""
    portal = rt.settings.portal
    if not portal.tls_enabled:
        return None
    return Target("portal", portal.host, portal.port, None)


def system_targets(system: SystemInfo) -> list[Target]:
    """The system's web-facing hosts (by role) at their IPv4 address."""
    return [Target(h.name, h.ipv4, 443, 80) for h in system.hosts
            if h.ipv4 and h.role in WEB_ROLES]


def collect_crypto(rt: Runtime, system: SystemInfo, now: datetime, *,
                   targets: list[Target] | None = None, include_portal: bool = False,
                   timeout: float = 2.0) -> tuple[CryptoFacts, dict[str, Provenance], dict[str, Any]]:
    """Probe the endpoints (``targets`` or the system's web hosts) and read the scheme on file."""
    chosen = list(system_targets(system) if targets is None else targets)
    if include_portal and (portal := portal_target(rt)) is not None:
        chosen.append(portal)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(chosen)))) as pool:
        probes = list(pool.map(lambda t: probe(t, timeout), chosen))
    endpoints = [TlsEndpoint(name=p["name"], protocols=sorted(p["protocols"]), plaintext=p["plaintext_http"])
                 for p in probes if p["tls_reachable"] or p["plaintext_http"]]
    with rt.sessions() as session:
        scheme = session.scalars(select(Ticket.crypto_plan_ref).where(Ticket.system_id == system.id,
                                                                      Ticket.crypto_plan_ref.is_not(None))
                                 .order_by(Ticket.id.desc()).limit(1)).first()
    sm = sm_support()
    negotiated_sm = sorted({alg for p in probes for c in p["protocols"].values() for alg in ("SM3", "SM4")
                            if alg in c.upper()})
    facts = CryptoFacts(endpoints=endpoints, scheme_on_file=scheme is not None,
                        scheme_requires_sm=scheme is not None and system.mlps_level >= 3,
                        sm_algorithms_in_use=negotiated_sm)
    material = {"probes": probes, "scheme": scheme, "sm_available": sm}
    return facts, {"crypto": stamp("TLS probes (ssl), tickets' 密码应用方案, cryptography SM3/SM4", now, material)}, \
        material
