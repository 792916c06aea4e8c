"""Ingest end to end: files, HTTP bulk and syslog over UDP/TCP, into the store, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from core.runtime import Runtime, open_runtime
from core.settings import Settings
from inventory.models import Host, System
from portal.app import create_app
from portal.models import ROLES
from portal.security import create_token, create_user
from soc.consumer import SpoolConsumer
from soc.deadletter import DeadLetterStore
from soc.enrich import Enricher, RegisterIndex
from soc.metrics import SocMetrics
from soc.pipeline import Pipeline
from soc.receivers import MAX_FRAME
from soc.service import ingest_files, open_soc
from soc.spool import Position, Spool
from soc.store.base import SearchQuery, StoreUnavailable
from soc.store.sqlite import ROW_COLUMNS, SQLiteStore
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
    writers = _children(proc.pid)
    assert writers, "a file this large is written by the store's writer process"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_for(lambda: not any(_alive(pid) for pid in writers))  # its input ended: it commits what it has and ends
    partial = _count(home)
    assert 0 < partial < total, "kill the ingest while it is half way"
    rerun = json.loads(_cli(home, "soc", "ingest", "--format", "sshd", str(big)).stdout)
    assert rerun["stored"] + partial == total and rerun["duplicates"] == partial
    assert _count(home) == total


def _children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # (a zombie has ended; its new parent reaps it when it will)


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
    (letter,) = client.app.state.soc.soc.deadletters.latest()  # names who sent it, not only the spool place
    assert letter.source.startswith("json|http:") and " spool:" in letter.source and letter.raw == b"this is not json"
    metrics = client.get("/metrics").text
    assert 'yunshu_soc_stored_total{source="http"} 4.0' in metrics
    assert 'yunshu_soc_dead_lettered_total{source="http"} 1.0' in metrics
    assert "yunshu_soc_text_index_lag_rows" in metrics
    client.app.state.soc.soc.store.wait_indexed()
    assert client.get("/api/soc/health", headers=analyst).json()["text_index_lag_rows"] == 0


def test_http_ingest_limits(soc_portal) -> None:  # type: ignore[no-untyped-def]
    client, rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    big = b"x" * (rt.settings.soc.http_max_bytes + 1)
    assert client.post("/api/soc/ingest", content=big, headers=analyst).status_code == 413
    from portal.soc_api import MAX_RECORDS_PER_REQUEST

    spooled = client.get("/api/soc/health", headers=analyst).json()["spool_backlog_bytes"]
    for many in (b"1\n" * (MAX_RECORDS_PER_REQUEST + 1), b"[" + b"0," * MAX_RECORDS_PER_REQUEST + b"0]"):
        refused = client.post("/api/soc/ingest", content=many, headers=analyst)
        assert refused.status_code == 413 and f"at most {MAX_RECORDS_PER_REQUEST}" in refused.json()["detail"]
    assert client.get("/api/soc/health", headers=analyst).json()["spool_backlog_bytes"] == spooled  # nothing taken
    at_most = client.post("/api/soc/ingest", content=b"\n" + b"1\n" * MAX_RECORDS_PER_REQUEST, headers=analyst)
    assert at_most.json() == {"accepted": MAX_RECORDS_PER_REQUEST}
    approver = {"Authorization": f"Bearer {tokens['resource_approver']}"}
    assert client.post("/api/soc/ingest", content=b"{}", headers=approver).status_code == 403
    assert client.post("/api/soc/ingest", content=b"{}").status_code == 401


class FlakyStore(SQLiteStore):
    """The embedded store with an off switch, to play an outage; it notes the messages of every accepted write."""

    down = False

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.written: list[str] = []

    def write_encoded(self, encoded):  # type: ignore[no-untyped-def]  # write() comes here too
        if self.down:
            raise StoreUnavailable("switched off by the test")
        result = super().write_encoded(encoded)
        self.written += [row[ROW_COLUMNS.index("message")] for row in encoded.payload]
        return result


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
    assert store.written == [f"n{i}" for i in range(1000)]  # replayed in spool order, each written once


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


def _ingest_metrics(text: str) -> dict[str, dict[str, int]]:
    """The yunshu_soc_* ingest counters of a /metrics page: {source: {counter: value}}."""
    found: dict[str, dict[str, int]] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "counter" or not family.name.startswith("yunshu_soc_"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and "source" in sample.labels:
                found.setdefault(sample.labels["source"], {})[family.name.removeprefix("yunshu_soc_")] = \
                    int(sample.value)
    return found


NOT_TEXT = b"\xff\xfe\x00 not text at all \x81"  # neither UTF-8 nor GB18030: dead-lettered


def test_every_transport_counts_all_five_metrics_by_source(tmp_path: Path) -> None:
    """The service as `yunshu up` runs it (listeners on): syslog over UDP and TCP and JSON over HTTP, good and bad
    records; /metrics then counts received, spooled, parsed, stored and dead-lettered per source exactly."""
    from tests.live_server import free_port

    port = free_port()
    rt = open_runtime(Settings(home=tmp_path / "var", portal={"mfa_required_roles": []},  # type: ignore[arg-type]
                               soc={"syslog_port": port}))
    try:
        load_sample(rt)
        with rt.transaction() as s:
            user = create_user(s, rt.audit, rt.settings.portal, actor="t", username="analyst",
                               role="security_analyst", password=PASSWORD)
            analyst = {"Authorization": f"Bearer {create_token(s, rt.audit, actor='t', user=user, name='t')[1]}"}
        with TestClient(create_app(rt, soc_listeners=True)) as client:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                for i in range(20):
                    udp.sendto(f"<38>Nov 20 10:00:{i:02d} web01 sshd[42]: Failed password for root from "
                               f"198.18.5.{i} port 22 ssh2".encode(), ("127.0.0.1", port))
                udp.sendto(NOT_TEXT, ("127.0.0.1", port))
            frames = b""
            for i in range(30):
                msg = f"<38>1 2026-11-20T02:00:{i:02d}Z web02 sshd 42 - - Accepted password for ops from " \
                      f"198.18.6.{i} port 22 ssh2".encode()
                frames += str(len(msg)).encode() + b" " + msg
            oversize = b"<38>" + b"z" * MAX_FRAME  # dead-lettered by the receiver, never spooled
            frames += str(len(oversize)).encode() + b" " + oversize + str(len(NOT_TEXT)).encode() + b" " + NOT_TEXT
            with socket.create_connection(("127.0.0.1", port)) as tcp:
                tcp.sendall(frames)
            docs = [json.dumps({"@timestamp": "2026-11-20T01:00:00Z", "message": f"http {i}"}) for i in range(3)]
            body = "\n".join([*docs, "this is not json"]).encode()
            assert client.post("/api/soc/ingest", content=body, headers=analyst).json() == {"accepted": 4}

            def settled() -> bool:
                counts = _ingest_metrics(client.get("/metrics").text)
                return all(counts.get(src, {}).get("parsed", 0) + counts.get(src, {}).get("dead_lettered", 0) == n
                           for src, n in (("udp", 21), ("tcp", 32), ("http", 4)))

            _wait_for(settled, timeout=30)
            counts = _ingest_metrics(client.get("/metrics").text)
            health = client.get("/api/soc/health", headers=analyst).json()
    finally:
        rt.close()
    assert {src: {k: v for k, v in c.items() if k != "dropped"} for src, c in counts.items()} == {
        "udp": {"received": 21, "spooled": 21, "parsed": 20, "stored": 20, "dead_lettered": 1},
        "tcp": {"received": 32, "spooled": 31, "parsed": 30, "stored": 30, "dead_lettered": 2},
        "http": {"received": 4, "spooled": 4, "parsed": 3, "stored": 3, "dead_lettered": 1},
    }
    assert all(c.get("dropped", 0) == 0 for c in counts.values())
    assert health["ingest"] == {src: {**c, "dropped": c.get("dropped", 0)} for src, c in counts.items()}
    assert health["dead_letters"] == 4


def test_file_ingest_counts_by_source_file(tmp_path: Path) -> None:
    """`yunshu soc ingest` (ingest_files) counts in the library's SocMetrics under source="file"."""
    rt = make_runtime(tmp_path / "var")
    mixed = tmp_path / "mixed.log"
    good = (LOGHUB / "Linux_2k.log").read_bytes().splitlines()[:3]
    mixed.write_bytes(b"\n".join([good[0], NOT_TEXT, good[1], b"x" * 70000, good[2]]) + b"\n")
    try:
        soc = open_soc(rt)  # as the command line opens it: a registry of its own
        try:
            stats = ingest_files(soc, [str(mixed)], "sshd")
            first = soc.metrics.ingest_totals()
            again = ingest_files(soc, [str(mixed)], "sshd")
            second = soc.metrics.ingest_totals()
        finally:
            soc.close()
    finally:
        rt.close()
    assert (stats.read, stats.stored, stats.dead_lettered) == (5, 3, 2)
    assert first == {"file": {"received": 5, "spooled": 0, "parsed": 3, "stored": 3, "dead_lettered": 2,
                              "dropped": 0}}
    assert (again.stored, again.duplicates) == (0, 3)
    # a second run reads and parses again; duplicates are parsed but not newly stored
    assert second == {"file": {"received": 10, "spooled": 0, "parsed": 6, "stored": 3, "dead_lettered": 4,
                               "dropped": 0}}


def test_file_ingest_counts_into_the_metrics_given(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path / "var")
    metrics = SocMetrics()
    log = tmp_path / "one.log"
    log.write_bytes((LOGHUB / "Linux_2k.log").read_bytes().splitlines()[0] + b"\n")
    try:
        soc = open_soc(rt, metrics=metrics)
        try:
            ingest_files(soc, [str(log)], "sshd")
        finally:
            soc.close()
    finally:
        rt.close()
    assert metrics.ingest_totals()["file"]["stored"] == 1


def test_concurrent_http_posts_all_land_in_order_without_blocking_the_event_loop(soc_portal) -> None:  # type: ignore[no-untyped-def]
    """The spool's fsync runs off the event loop and holds no database: while posts wait on a slow disk, the loop
    ticks on time and /healthz answers; every post answers 202 once durable, its records contiguous and in order
    in the spool, all of them stored."""
    client, _, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    services = client.app.state.soc
    real_append = services.spool.append
    posts, per_post, disk_seconds = 8, 50, 0.4

    disk = threading.Lock()  # one slow fsync at a time, as on a real disk

    def slow_disk(records):  # type: ignore[no-untyped-def]
        with disk:
            time.sleep(disk_seconds)
            return real_append(records)

    services.spool.append = slow_disk  # the real spool behind a slow disk
    now = datetime.now(UTC).isoformat()

    def body(post: int) -> bytes:
        return "\n".join(json.dumps({"@timestamp": now, "message": f"post {post} record {i:02d}"})
                         for i in range(per_post)).encode()

    async def run() -> tuple[list[httpx.Response], float]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://yunshu") as ac:
            warm = await ac.post("/api/soc/ingest", content=b"", headers=analyst)  # first-call costs out of the way
            assert warm.json() == {"accepted": 0} and (await ac.get("/healthz")).status_code == 200
            uploads = asyncio.gather(*(ac.post("/api/soc/ingest", content=body(p), headers=analyst)
                                       for p in range(posts)))
            stall = 0.0  # how late, in all, the event loop was for its 20 ms ticks while the posts were running
            health = asyncio.ensure_future(ac.get("/healthz"))  # other requests are served meanwhile
            health_done_first = False
            while not uploads.done():
                health_done_first = health_done_first or health.done()
                started = time.perf_counter()
                await asyncio.sleep(0.02)
                stall += time.perf_counter() - started - 0.02
            assert health.done() and health.result().status_code == 200
            assert health_done_first, "/healthz had to wait for the posts"
            return await uploads, stall

    try:
        started = time.perf_counter()
        answers, stall = asyncio.run(run())
        elapsed = time.perf_counter() - started
    finally:
        del services.spool.append
    assert [(r.status_code, r.json()) for r in answers] == [(202, {"accepted": per_post})] * posts
    assert elapsed >= posts * disk_seconds * 0.9  # the posts really queued on the slow disk …
    # … off the loop: fsyncs on the loop would stall it for all of them (posts × disk_seconds)
    assert stall < posts * disk_seconds / 4, f"the event loop stalled for {stall:.2f} s in all"
    records, _ = services.spool.read(Position(1, 0), 10_000)
    messages = [json.loads(r.raw)["message"] for r in records if r.source.startswith("json|http:")]
    runs = [(post, [m for _, m in group]) for post, group in groupby(((m.split()[1], m) for m in messages),
                                                                       key=lambda pm: pm[0])]
    assert sorted(post for post, _ in runs) == [str(p) for p in range(posts)]  # each post one contiguous run
    assert all(ms == [f"post {post} record {i:02d}" for i in range(per_post)] for post, ms in runs)
    _wait_for(lambda: services.soc.store.count(SearchQuery(text="record")) == posts * per_post)


def test_file_ingest_with_host_enriches_lines_that_name_none(tmp_path: Path) -> None:
    """Access-log lines carry no host: ``--host`` names the server, so the register tags them (gov.*)."""
    home = tmp_path / "var"
    rt = make_runtime(home)
    try:
        load_sample(rt)
        with rt.sessions() as session:
            web = session.scalars(select(Host).where(Host.name.like("%-web%")).order_by(Host.name)).first()
            assert web is not None and web.system_id
            host_name, system_id = web.name, web.system_id
    finally:
        rt.close()
    access = tmp_path / "access.log"
    access.write_text('198.51.100.7 - - [22/Nov/2026:10:00:00 +0800] "GET /index.html HTTP/1.1" 200 512 "-" "curl"\n'
                      '198.51.100.8 - - [22/Nov/2026:10:00:01 +0800] "GET /login HTTP/1.1" 302 0 "-" "curl"\n',
                      encoding="utf-8")
    done = _cli(home, "soc", "ingest", "--format", "nginx", "--host", host_name, str(access))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stored"] == 2 and "not a host of the register" not in done.stderr
    assert _count(home, **{"gov.system.id": system_id, "host.name": host_name}) == 2
    unknown = _cli(home, "soc", "ingest", "--format", "nginx", "--host", "no-such-host", str(tmp_path / "access.log"))
    assert unknown.returncode == 0 and "--host no-such-host: not a host of the register" in unknown.stderr
