"""The SOC command line on bad input: a clear message and exit 2 (or a per-item error), never a traceback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from portal.cli import main
from tests.conftest import sample_home_with_users


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-errors") / "var"
    sample_home_with_users(path, [])
    return path


def _run(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("YUNSHU_HOME", str(home))
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse refusing an option
        code = int(exc.code or 0)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


# (content type, body, exit code): a 404 page is a wrong URL (2); a body that claims to be JSON and is not may be a
# proxy's error page while the cluster is down (3, unavailable)
_NOT_ES = [("text/plain", b"Not Found", 2), ("application/json", b'{"error": "no such route"}', 2),
           ("application/json", b"<html>Not Found</html>", 3)]


@pytest.fixture(params=_NOT_ES, ids=["text", "json", "html-as-json"])
def not_elasticsearch(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    content_type, body, code = request.param

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("content-type", content_type)
            self.send_header("x-elastic-product", "Elasticsearch")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_HEAD = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", code
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("args", [
    ["soc", "search", "--limit", "99999999999999999999"],
    ["soc", "stats", "--size", "99999999999999999999"],
    ["soc", "alerts", "assign", "99999999999999999999", "bob"],
    ["soc", "drill", "report", "0"],
    ["soc", "search", "--where", "user.name==root"],
    ["soc", "search", "--store", "ftp://x"],
])
def test_bad_options_are_refused_with_exit_2(home: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = _run(home, monkeypatch, capsys, *args)
    assert code == 2 and err.strip()


def test_a_mistyped_sqlite_store_is_refused_not_created(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "events.db"
    code, _, err = _run(home, monkeypatch, capsys, "soc", "search", "--store", f"sqlite:///{missing}")
    assert code == 2 and "no embedded event store" in err and not missing.exists()


def test_a_server_that_is_not_elasticsearch_is_a_clear_error(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str],
                                                             not_elasticsearch: tuple[str, int]) -> None:
    url, expected = not_elasticsearch
    code, _, err = _run(home, monkeypatch, capsys, "soc", "search", "--store", url)
    assert "Elasticsearch" in err and code == expected


def test_a_huge_number_in_where_finds_nothing_instead_of_failing(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(home, monkeypatch, capsys, "soc", "search", "--where", "process.pid=99999999999999999999")
    assert (code, out) == (0, "") and "0 of 0 events" in err


def test_rule_files_that_are_not_mappings_are_reported_per_file(home: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "list.yml").write_text("- a\n- b\n")
    (tmp_path / "scalar.yml").write_text("42\n")
    (tmp_path / "good.yml").write_text("title: ok\nlogsource: {product: test}\n"
                                       "detection: {sel: {user: root}, condition: sel}\n")
    code, out, _ = _run(home, monkeypatch, capsys, "soc", "rules", "check", str(tmp_path))
    reasons = {Path(e["path"]).name: e["reason"] for e in map(json.loads, out.splitlines()) if "reason" in e}
    assert set(reasons) == {"list.yml", "scalar.yml"} and code == 1
    assert all("must be a mapping" in r for r in reasons.values())


def test_rules_match_on_unreadable_or_odd_event_files(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rule = tmp_path / "r.yml"
    rule.write_text("title: root\nlogsource: {product: test}\ndetection: {sel: {user: root}, condition: sel}\n")
    for missing in (tmp_path / "none.jsonl", tmp_path):
        code, _, err = _run(home, monkeypatch, capsys, "soc", "rules", "match", "--rules", str(rule),
                            "--events", str(missing))
        assert code == 2 and "--events" in err
    odd = tmp_path / "odd.jsonl"
    odd.write_bytes(b'{"user": "root", "x": "\xff"}\n' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"\n")
    code, out, err = _run(home, monkeypatch, capsys, "soc", "rules", "match", "--rules", str(rule),
                          "--events", str(odd))
    assert code == 1 and [json.loads(line)["event_index"] for line in out.splitlines()] == [0]
    assert "odd.jsonl:2: not JSON" in err


def test_drill_report_to_a_path_that_cannot_be_written(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = _run(home, monkeypatch, capsys, "soc", "drill", "run", "web-to-root")
    assert code == 0
    code, _, err = _run(home, monkeypatch, capsys, "soc", "drill", "report", "1", "-o", str(tmp_path))
    assert code == 2 and "-o" in err
