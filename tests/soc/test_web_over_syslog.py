"""Web-server lines carried in syslog (nginx ``access_log syslog:``, Apache through ``logger`` or ``ErrorLog
syslog:``) become the same web events as the lines read from files, with the syslog header's host kept."""

from __future__ import annotations

import pytest

from soc.detect.engine import Detector
from soc.detect.loader import BUILTIN_RULES, load_rules
from soc.parsers import parse

ACCESS = '203.0.113.9 - alice [21/Nov/2026:00:00:00 +0800] "GET /a?id=7 HTTP/1.1" 404 12 "-" "curl/8"'


def _sent(header: str, msg: str) -> str:
    return f"{header}{msg}"


@pytest.mark.parametrize(("tag", "dataset"), [("nginx", "nginx.access"), ("httpd[99]", "apache.access"),
                                              ("apache2", "apache.access"), ("apache", "apache.access")])
def test_access_line_over_syslog_is_a_web_access_event(tag: str, dataset: str) -> None:
    line = _sent(f"<190>Nov 21 00:00:05 web01 {tag}: ", ACCESS)
    event = parse(line, "syslog")
    alone = parse(ACCESS, "nginx")
    assert event["event"]["dataset"] == dataset
    assert event["event"]["category"] == ["web"] and event["event"]["outcome"] == "failure"
    assert event["event"]["original"] == line  # the whole received line, header included
    assert event["@timestamp"] == alone["@timestamp"] == "2026-11-20T16:00:00.000Z"  # the line's own time and zone
    for key in ("source", "user", "url", "http", "user_agent", "related", "message"):
        assert event[key] == alone[key], key
    assert event["host"]["name"] == "web01"  # the sender's name from the header
    assert event["log"]["syslog"]["facility"]["name"] == "local7"
    assert event["process"]["name"] == tag.partition("[")[0]


def test_nginx_error_line_over_syslog() -> None:
    msg = ('2026/11/21 00:00:01 [error] 812#3: *7 open() "/srv/x" failed (2: No such file or directory), '
           "client: 198.51.100.4, server: a")
    event = parse(_sent("<187>Nov 21 00:00:01 web01 nginx: ", msg), "syslog")
    assert event["event"]["dataset"] == "nginx.error" and event["event"]["type"] == ["error"]
    assert event["log"]["level"] == "error" and event["log"]["syslog"]["severity"]["code"] == 3
    assert event["process"] == {"name": "nginx", "pid": 812, "thread": {"id": 3}}
    assert event["source"]["ip"] == "198.51.100.4"
    assert event["message"].startswith("open()")


def test_apache_error_sent_to_syslog_without_its_time() -> None:
    msg = "[core:error] [pid 99:tid 12] [client 198.51.100.7:5050] AH00126: Invalid URI in request"
    event = parse(_sent("<139>Nov 21 00:00:01 web02 httpd[99]: ", msg), "syslog")
    assert event["event"]["dataset"] == "apache.error"
    assert event["error"]["code"] == "AH00126" and event["apache"]["error"]["module"] == "core"
    assert event["source"] == {"ip": "198.51.100.7", "port": 5050}
    assert event["process"] == {"name": "httpd", "pid": 99, "thread": {"id": 12}}
    assert event["@timestamp"] == "2026-11-20T16:00:01.000Z"  # the header's time (the line has none)


def test_apache_error_piped_to_logger_keeps_its_time_in_the_line() -> None:
    msg = "[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] File does not exist: /var/www/html/x"
    event = parse(_sent("<190>Nov 21 00:00:05 web01 httpd: ", msg), "syslog")
    assert event["event"]["dataset"] == "apache.error" and event["log"]["level"] == "error"
    assert event["source"]["ip"] == "1.2.3.4" and event["message"].startswith("File does not exist")
    assert event["host"]["name"] == "web01"


def test_rfc5424_app_name_selects_the_web_parser() -> None:
    event = parse(f"<190>1 2026-11-20T16:00:05Z web03 nginx - - - {ACCESS}", "syslog")
    assert event["event"]["dataset"] == "nginx.access" and event["host"]["name"] == "web03"
    # without a header time the access line's own time stands, and it is not tagged as assumed
    event = parse(f"<190>1 - web03 nginx - - - {ACCESS}", "syslog")
    assert event["@timestamp"] == "2026-11-20T16:00:00.000Z" and "timestamp_assumed" not in event.get("tags", [])
    assert "timestamp_assumed" in parse("<190>1 - web03 nginx - - - worker started", "syslog")["tags"]


@pytest.mark.parametrize("msg", ["signal process started", "[bogus] no closing", "2026/11/21 not an error line",
                                 '1.2.3.4 - - [99/Foo/2026:00:00:00 +0800] "GET / HTTP/1.1" 200 1'])
def test_other_web_server_messages_stay_plain_syslog(msg: str) -> None:
    for tag in ("nginx", "httpd"):
        event = parse(_sent(f"<190>Nov 21 00:00:01 web01 {tag}: ", msg), "syslog")
        assert event["event"]["dataset"] == "system.syslog"
        assert event["message"] == msg and "http" not in event


def test_web_rules_fire_on_lines_shipped_over_syslog() -> None:
    detector = Detector(load_rules([BUILTIN_RULES]))
    line = ('<190>Nov 21 00:00:05 web01 nginx: 203.0.113.9 - - [21/Nov/2026:00:00:00 +0800] '
            '"GET /view?file=../../../../etc/passwd HTTP/1.1" 200 12 "-" "curl/8"')
    matched, _ = detector.process(parse(line, "syslog"))
    assert any("traversal" in rule.title.lower() for rule in matched), [r.title for r in matched]
