"""Ingest end to end: files, HTTP bulk and syslog over UDP/TCP, into the store, nothing lost or doubled."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.runtime import Runtime
from inventory.models import Host, System
from portal.app import create_app
from portal.models import ROLES
from portal.security import create_token, create_user
from soc.consumer import SpoolConsumer
from soc.deadletter import DeadLetterStore
from soc.enrich import Enricher, RegisterIndex
from soc.pipeline import Pipeline
from soc.spool import Spool
from soc.store.base import SearchQuery, StoreUnavailable
from soc.store.sqlite import SQLiteStore
from tests.conftest import PASSWORD, load_sample, make_runtime
from tests.live_server import live_server
from tests.shared_data import LOGHUB as SHARED_LOGHUB
from tests.shared_data import require

LOGHUB = require(SHARED_LOGHUB)


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"YUNSHU_HOME": str(home), "PATH": os.environ["PATH"]}
    return subprocess.run([sys.executable, "-m", "portal.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _count(home: Path, **where: str) -> int:
    store = SQLiteStore(home / "soc" / "events.db")
    try:
        return store.count(SearchQuery(where=dict(where)))
    finally:
        store.close()


def test_file_ingest_cli_is_idempotent(tmp_path: Path) -> None:
    home = tmp_path / "var"
    first = _cli(home, "soc", "ingest", str(LOGHUB / "Linux_2k.log"), str(LOGHUB / "Apache_2k.log"))
    assert first.returncode == 0, first.stderr
    stats = json.loads(first.stdout)
    assert (stats["read"], stats["stored"], stats["dead_lettered"]) == (4000, 4000, 0)
    assert set(stats) >= {"read", "stored", "dead_lettered", "duration_s"}
    again = json.loads(_cli(home, "soc", "ingest", str(LOGHUB / "Linux_2k.log")).stdout)
    assert (again["stored"], again["duplicates"]) == (0, 2000)
    assert _count(home) == 4000
    found = _cli(home, "soc", "search", "--query", "authentication failure", "--limit", "5")
    lines = found.stdout.strip().splitlines()
    assert len(lines) == 5 and all("authentication failure" in json.loads(x)["message"] for x in lines)


def test_bad_lines_are_dead_lettered(tmp_path: Path) -> None:
    home = tmp_path / "var"
    mixed = tmp_path / "mixed.log"
    good = (LOGHUB / "Linux_2k.log").read_bytes().splitlines()[:3]
    mixed.write_bytes(b"\n".join([good[0], b"\xff\xfe\x00 not text at all \x81", good[1], b"x" * 70000, good[2]])
                      + b"\n")
    stats = json.loads(_cli(home, "soc", "ingest", "--format", "sshd", str(mixed)).stdout)
    assert (stats["read"], stats["stored"], stats["dead_lettered"]) == (5, 3, 2)
    dead = DeadLetterStore(home / "soc" / "deadletter.db")
    reasons = sorted(d.reason for d in dead.latest())
    dead.close()
    assert any("exceeds the limit" in r for r in reasons)
    assert any("parse error" in r or "GB18030" in r for r in reasons)


def test_kill_9_mid_file_then_rerun_loses_and_doubles_nothing(tmp_path: Path) -> None:
    home = tmp_path / "var"
    big = tmp_path / "big.log"
    lines = (LOGHUB / "Linux_2k.log").read_text(encoding="utf-8").splitlines()
    total = 60_000
    big.write_text("\n".join(f"{lines[i % len(lines)]} #{i}" for i in range(total)) + "\n", encoding="utf-8")
    env = {"YUNSHU_HOME": str(home), "PATH": os.environ["PATH"]}
    proc = subprocess.Popen([sys.executable, "-m", "portal.cli", "soc", "ingest", "--format", "sshd", str(big)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not (home / "soc" / "events.db").exists() or _count(home) < 5000):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(home)
    assert 0 < partial < total, "kill the ingest while it is half way"
    rerun = json.loads(_cli(home, "soc", "ingest", "--format", "sshd", str(big)).stdout)
    assert rerun["stored"] + partial == total and rerun["duplicates"] == partial
    assert _count(home) == total


@pytest.fixture
def soc_portal(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime, dict[str, str]]]:
    rt = make_runtime(tmp_path / "var", mfa_required_roles=[])
    load_sample(rt)
    tokens = {}
    with rt.transaction() as s:
        for role in ("security_analyst", "department_user", "resource_approver"):
            user = create_user(s, rt.audit, rt.settings.portal, actor="t", username=role.replace("_", "-"), role=role,
                               password=PASSWORD, department="GAJ" if role == "department_user" else None)
            tokens[role] = create_token(s, rt.audit, actor="t", user=user, name="t")[1]
    assert set(tokens) <= set(ROLES)
    with TestClient(create_app(rt)) as client:
        yield client, rt, tokens
    rt.close()


def _wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _hosts(rt: Runtime, dept: str) -> Host:
    with rt.sessions() as s:
        return s.scalars(select(Host).join(System).where(System.department_code == dept).order_by(Host.name)).first()


def test_http_bulk_ingest_with_scoping(soc_portal) -> None:  # type: ignore[no-untyped-def]
    client, rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    gaj, rsj = _hosts(rt, "GAJ"), _hosts(rt, "RSJ")
    docs = [{"@timestamp": "2026-11-20T01:00:00Z", "message": f"login ok {i}", "host": {"name": h.name}}
            for i, h in enumerate([gaj, gaj, rsj])]
    body = "\n".join(json.dumps(d) for d in docs) + "\nthis is not json\n"
    r = client.post("/api/soc/ingest", content=body.encode(), headers=analyst)
    assert r.status_code == 202 and r.json() == {"accepted": 4}
    _wait_for(lambda: client.get("/api/soc/events", headers=analyst).json()["total"] == 3)
    as_array = client.post("/api/soc/ingest", json=[{"@timestamp": "2026-11-20T02:00:00Z", "message": "array",
                                                      "host": {"ip": gaj.ipv4 or gaj.ipv6}}], headers=analyst)
    assert as_array.json() == {"accepted": 1}
    _wait_for(lambda: client.get("/api/soc/events", headers=analyst).json()["total"] == 4)
    items = client.get("/api/soc/events?q=array", headers=analyst).json()["items"]
    assert items[0]["gov"]["department"] == "GAJ"  # enriched from the register by IP
    dept_user = {"Authorization": f"Bearer {tokens['department_user']}"}
    mine = client.get("/api/soc/events", headers=dept_user).json()
    assert mine["total"] == 3 and {e["gov"]["department"] for e in mine["items"]} == {"GAJ"}
    health = client.get("/api/soc/health", headers=analyst).json()
    assert health["dead_letters"] == 1 and health["spool_backlog_bytes"] == 0
    metrics = client.get("/metrics").text
    assert 'yunshu_soc_stored_total{source="http"} 4.0' in metrics
    assert 'yunshu_soc_dead_lettered_total{source="http"} 1.0' in metrics


def test_http_ingest_limits(soc_portal) -> None:  # type: ignore[no-untyped-def]
    client, rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    big = b"x" * (rt.settings.soc.http_max_bytes + 1)
    assert client.post("/api/soc/ingest", content=big, headers=analyst).status_code == 413
    approver = {"Authorization": f"Bearer {tokens['resource_approver']}"}
    assert client.post("/api/soc/ingest", content=b"{}", headers=approver).status_code == 403
    assert client.post("/api/soc/ingest", content=b"{}").status_code == 401


class FlakyStore(SQLiteStore):
    """The embedded store with an off switch, to play an outage."""

    down = False

    def write(self, docs):  # type: ignore[no-untyped-def]
        if self.down:
            raise StoreUnavailable("switched off by the test")
        return super().write(docs)


def test_outage_spools_then_replays_in_order(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "events.db")
    spool = Spool(tmp_path / "spool")
    pipeline = Pipeline(store, DeadLetterStore(tmp_path / "dead.db"), Enricher(RegisterIndex()), retry_seconds=0)
    consumer = SpoolConsumer(spool, pipeline, retry_seconds=0.05)
    consumer.start()
    try:
        store.down = True
        for batch in range(10):
            spool.append([("json|http:test", json.dumps({"@timestamp": "2026-11-20T03:00:00Z",
                                                         "message": f"n{batch * 100 + i}"}).encode())
                          for i in range(100)])
        time.sleep(0.3)
        assert store.count(SearchQuery()) == 0 and spool.backlog_bytes() > 0
        store.down = False
        _wait_for(lambda: store.count(SearchQuery()) == 1000)
        _wait_for(lambda: spool.backlog_bytes() == 0)
    finally:
        consumer.stop()
    assert store.count(SearchQuery()) == 1000  # nothing doubled by the retries


def test_syslog_udp_and_tcp_into_store(tmp_path: Path) -> None:
    """A real `yunshu up` with its syslog listeners; messages arrive over UDP and both TCP framings."""
    home = tmp_path / "var"
    from tests.live_server import free_port

    port = free_port()
    env = {"YUNSHU_SOC__SYSLOG_PORT": str(port), "YUNSHU_ADMIN_PASSWORD": "Str0ng-Passw0rd!x"}
    with live_server(home, env, ["--no-demo"]):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(50):
            udp.sendto(f"<38>Nov 20 10:00:{i:02d} web01 sshd[42]: Failed password for root from "
                       f"198.18.5.{i} port 22 ssh2".encode(), ("127.0.0.1", port))
        udp.close()
        with socket.create_connection(("127.0.0.1", port)) as tcp:
            frames = b""
            for i in range(50):
                msg = f"<38>1 2026-11-20T02:00:{i:02d}Z web02 sshd 42 - - Accepted password for ops from " \
                      f"198.18.6.{i} port 22 ssh2".encode()
                frames += str(len(msg)).encode() + b" " + msg
            tcp.sendall(frames)
        with socket.create_connection(("127.0.0.1", port)) as tcp:
            tcp.sendall(b"".join(f"<38>Nov 20 10:01:{i:02d} web03 sudo: ops : TTY=pts/0 ; PWD=/ ; USER=root ; "
                                 f"COMMAND=/bin/ls {i}\n".encode() for i in range(50)))
        _wait_for(lambda: (home / "soc" / "events.db").exists() and _count(home) == 150, timeout=30)
    assert _count(home, **{"host.name": "web01"}) == 50
    assert _count(home, **{"host.name": "web02"}) == 50
