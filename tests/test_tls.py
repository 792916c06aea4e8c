"""等保 8.1.4.1 c: the portal can serve over TLS (≥1.2 only) with Secure cookies and HSTS."""

from __future__ import annotations

import http.client
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.live_server import live_server


def _context(home: Path) -> ssl.SSLContext | None:
    cert = home / "keys" / "portal-tls.crt"
    if not cert.exists():
        return None
    return ssl.create_default_context(cafile=str(cert))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("tls-home")
    env = {"YUNSHU_PORTAL__TLS_SELF_SIGNED": "true", "YUNSHU_ADMIN_PASSWORD": "Str0ng-Passw0rd!x"}
    with live_server(home, env, ["--no-demo"], scheme="https", context_for=_context) as base:
        yield base, home


def _get(base: str, home: Path, path: str) -> http.client.HTTPResponse:
    url = urlparse(base)
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=_context(home), timeout=10)
    conn.request("GET", path)
    return conn.getresponse()


def test_https_with_secure_cookie_and_hsts(tls_server: tuple[str, Path]) -> None:
    base, home = tls_server
    response = _get(base, home, "/login")
    assert response.status == 200
    cookie = response.getheader("set-cookie") or ""
    assert "ys_login_csrf=" in cookie and re.search(r";\s*Secure", cookie)
    assert "max-age" in (response.getheader("strict-transport-security") or "")
    key = home / "keys" / "portal-tls.key"
    assert key.stat().st_mode & 0o077 == 0


def test_old_tls_and_plain_http_refused(tls_server: tuple[str, Path]) -> None:
    base, home = tls_server
    url = urlparse(base)
    old = _context(home)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=old, timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        conn.request("GET", "/healthz")
    plain = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionResetError, ConnectionError)):
        plain.request("GET", "/healthz")
        plain.getresponse()
