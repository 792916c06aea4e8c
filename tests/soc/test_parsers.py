"""Log parsers: real Loghub files against their ground truth, hand-written samples for every format, fuzzing."""

from __future__ import annotations

import csv
import json
import random
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from soc.ecs import ECS_VERSION, Event, get
from soc.parsers import FORMATS, ParseContext, ParseError, detect, parse
from tests.shared_data import LOGHUB, require

SHANGHAI = ZoneInfo("Asia/Shanghai")
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
CTX_2005 = ParseContext(now=datetime(2005, 8, 1, tzinfo=UTC))
CTX_2026 = ParseContext(now=datetime(2026, 11, 22, 4, 0, tzinfo=UTC))
MONTHS = {name: i for i, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def common_fields(event: Event, line: str) -> None:
    """What every event carries, whatever its format."""
    assert ISO_Z.match(event["@timestamp"]), event["@timestamp"]
    node = event["event"]
    assert node["kind"] == "event"
    assert isinstance(node["category"], list) and node["category"]
    assert isinstance(node["type"], list) and node["type"]
    assert node["dataset"] and node["module"]
    assert node["original"] == line.rstrip("\r\n")
    assert isinstance(event["message"], str)
    assert event["ecs"]["version"]
    for kind in ("ip", "user"):
        values = get(event, f"related.{kind}")
        assert values is None or (isinstance(values, list) and len(values) == len(set(values)))


def shanghai_utc(year: int, month: int, day: int, clock: str) -> str:
    h, m, s = (int(x) for x in clock.split(":"))
    local = datetime(year, month, day, h, m, s, tzinfo=SHANGHAI)
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def loghub(name: str) -> tuple[list[str], list[dict[str, str]]]:
    log, structured = require(LOGHUB / name), require(LOGHUB / f"{name}_structured.csv")
    lines = log.read_text(encoding="utf-8").splitlines()
    with structured.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(lines) == len(rows) == 2000
    return lines, rows


# ---------------------------------------------------------------------------------------------------- Loghub Linux


@pytest.mark.parametrize("fmt", ["sshd", "auto", "syslog"])
def test_loghub_linux_every_line_matches_ground_truth(fmt: str) -> None:
    lines, rows = loghub("Linux_2k.log")
    for line, row in zip(lines, rows, strict=True):
        event = parse(line, fmt, CTX_2005)
        common_fields(event, line)
        where = f"line {row['LineId']}: {line!r}"
        assert event["host"]["name"] == event["host"]["hostname"] == row["Level"], where
        assert event["log"]["syslog"]["appname"] == row["Component"], where
        component = row["Component"]
        expected_name = None if component.startswith("-") else component.split("(")[0].split()[0]
        assert get(event, "process.name") == expected_name, where
        assert get(event, "process.pid") == (int(row["PID"]) if row["PID"] else None), where
        assert event["message"] == row["Content"], where
        expected_ts = shanghai_utc(2005, MONTHS[row["Month"]], int(row["Date"]), row["Time"])
        assert event["@timestamp"] == expected_ts, where
        assert event["event"]["dataset"] in ("system.auth", "system.syslog"), where


def test_loghub_linux_templates_map_to_actions() -> None:
    lines, rows = loghub("Linux_2k.log")
    seen: set[str] = set()
    for line, row in zip(lines, rows, strict=True):
        tid, content = row["EventId"], row["Content"]
        for fmt in ("sshd", "auto"):
            event = parse(line, fmt, CTX_2005)
            node = event["event"]
            if tid in ("E15", "E16", "E17", "E18", "E19"):  # PAM authentication failure
                assert node["action"] == "pam_auth_failure"
                assert node["outcome"] == "failure"
                assert node["category"] == ["authentication"]
                assert node["dataset"] == "system.auth"
                rhost = re.search(r"rhost=(\S*)", content).group(1)
                if rhost:
                    got = get(event, "source.ip") or get(event, "source.domain")
                    assert got == rhost
                    if re.fullmatch(r"[\d.]+", rhost):
                        assert get(event, "source.ip") == rhost and rhost in event["related"]["ip"]
                    else:
                        assert get(event, "source.ip") is None and get(event, "source.domain") == rhost
                else:
                    assert "source" not in event
                user = {"E17": "guest", "E18": "root", "E19": "test"}.get(tid)
                assert get(event, "user.name") == user
                if user:
                    assert event["related"]["user"] == [user]
            elif tid == "E27":
                assert (node["action"], node["outcome"]) == ("pam_user_unknown", "failure")
            elif tid in ("E101", "E102", "E103"):
                opened = tid != "E101"
                assert node["action"] == ("session_opened" if opened else "session_closed")
                assert node["category"] == ["session"]
                assert node["type"] == (["start"] if opened else ["end"])
                assert get(event, "user.name") == re.search(r"for user (\S+)", content).group(1)
            seen.add(tid)
        event = parse(line, "auto", CTX_2005)
        if tid in ("E13", "E14"):  # klogind: Authentication failed from IP (name)
            assert event["event"]["outcome"] == "failure"
            assert get(event, "source.ip") == re.search(r"from (\S+)", content).group(1)
        elif tid == "E29":  # ftpd: connection from IP (name)
            assert event["event"]["action"] == "ftp_connection"
            assert get(event, "source.ip") == re.search(r"from (\S+)", content).group(1)
        elif tid == "E91":
            assert (get(event, "user.name"), event["event"]["outcome"]) == ("root", "success")
    assert {"E16", "E18", "E27", "E101", "E102", "E13", "E29"} <= seen


# ---------------------------------------------------------------------------------------------------- Loghub Apache


@pytest.mark.parametrize("fmt", ["apache", "auto"])
def test_loghub_apache_error_log_matches_ground_truth(fmt: str) -> None:
    lines, rows = loghub("Apache_2k.log")
    with_client = 0
    for line, row in zip(lines, rows, strict=True):
        event = parse(line, fmt)
        common_fields(event, line)
        where = f"line {row['LineId']}: {line!r}"
        assert event["event"]["dataset"] == "apache.error"
        assert event["log"]["level"] == row["Level"], where
        _, mon, day, clock, year = row["Time"].split()
        assert event["@timestamp"] == shanghai_utc(int(year), MONTHS[mon], int(day), clock), where
        message = event["message"]
        if "source" in event:  # the client is a field, not part of the message
            with_client += 1
            message = f"[client {event['source']['ip']}] {message}"
            assert event["related"]["ip"] == [event["source"]["ip"]]
        assert message == row["Content"], where
        assert event["event"]["type"] == (["error"] if row["Level"] == "error" else ["info"])
    assert with_client > 0


# ---------------------------------------------------------------------------------------------------- syslog headers


def test_rfc5424_with_structured_data() -> None:
    line = ('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
            'eventSource="Application" eventID="1011"][examplePriority@32473 class="high" note="a \\"q\\" \\] b"] '
            '\ufeffAn application event log entry...')
    event = parse(line)
    common_fields(event, line)
    assert event["@timestamp"] == "2003-10-11T22:14:15.003Z"
    syslog = event["log"]["syslog"]
    assert syslog["priority"] == 165
    assert syslog["facility"] == {"code": 20, "name": "local4"}
    assert syslog["severity"] == {"code": 5, "name": "Notice"}
    assert syslog["appname"] == "evntslog" and syslog["msgid"] == "ID47" and "procid" not in syslog
    assert syslog["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high", "note": 'a "q" ] b'},
    }
    assert event["host"] == {"hostname": "mymachine.example.com", "name": "mymachine.example.com"}
    assert event["message"] == "An application event log entry..."
    assert event["event"]["dataset"] == "system.syslog"


def test_rfc5424_sshd_ipv6_and_offset() -> None:
    line = ("<38>1 2024-03-01T10:00:00.123456+08:00 bastion sshd 4242 - - Accepted publickey for alice from "
            "2001:DB8::10 port 50022 ssh2: ED25519 SHA256:abc")
    event = parse(line, "syslog")
    common_fields(event, line)
    assert event["@timestamp"] == "2024-03-01T02:00:00.123Z"
    assert event["process"] == {"name": "sshd", "pid": 4242}
    assert event["log"]["syslog"]["procid"] == "4242"
    assert event["event"]["action"] == "ssh_login" and event["event"]["outcome"] == "success"
    assert event["event"]["type"] == ["start"]
    assert event["source"] == {"ip": "2001:db8::10", "port": 50022}
    assert event["related"] == {"ip": ["2001:db8::10"], "user": ["alice"]}
    assert event["event"]["dataset"] == "system.auth" and event["event"]["module"] == "system"


def test_rfc5424_nil_values() -> None:
    ctx = ParseContext(now=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), hostname="collector")
    event = parse("<14>1 - - - - - -", "syslog", ctx)
    assert event["@timestamp"] == "2026-01-02T03:04:05.678Z"
    assert event["host"] == {"name": "collector"}
    assert event["message"] == ""
    assert "process" not in event
    assert event["tags"] == ["timestamp_assumed"]  # stamped with the parse time (a store may need to know)
    assert "tags" not in parse("<14>1 2026-01-02T03:04:05Z h a - - - m", "syslog", ctx)


def test_rfc3164_with_pri_and_su() -> None:
    line = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"
    event = parse(line, "auto", CTX_2026)
    common_fields(event, line)
    assert event["@timestamp"] == "2026-10-11T14:14:15.000Z"
    syslog = event["log"]["syslog"]
    assert (syslog["priority"], syslog["facility"]["code"], syslog["severity"]["code"]) == (34, 4, 2)
    assert syslog["facility"]["name"] == "auth"
    assert event["process"] == {"name": "su"}
    assert (event["event"]["action"], event["event"]["outcome"]) == ("su", "failure")
    assert event["user"] == {"name": "lonvick", "effective": {"name": "root"}}
    assert event["related"]["user"] == ["lonvick", "root"]


def test_rfc3339_file_format_and_ip_host() -> None:
    line = ("2024-05-01T08:30:00.250+08:00 10.1.2.3 CRON[991]: pam_unix(cron:session): session opened for user "
            "root(uid=0) by (uid=0)")
    event = parse(line, "auto", CTX_2026)
    common_fields(event, line)
    assert event["@timestamp"] == "2024-05-01T00:30:00.250Z"
    assert event["host"] == {"hostname": "10.1.2.3", "name": "10.1.2.3", "ip": ["10.1.2.3"]}
    assert event["event"]["action"] == "session_opened"
    assert event["user"] == {"name": "root", "id": "0"}


def test_rfc3164_without_host_name() -> None:
    ctx = ParseContext(now=CTX_2026.now, hostname="from-file")
    event = parse("Nov 22 12:00:00 sshd[123]: Accepted password for root from 198.18.0.7 port 22 ssh2", "auto", ctx)
    assert event["host"] == {"name": "from-file"}
    assert event["process"] == {"name": "sshd", "pid": 123}
    assert (event["event"]["action"], event["source"]["ip"]) == ("ssh_login", "198.18.0.7")


@pytest.mark.parametrize(
    ("line", "fmt"),
    [
        ("<13>1 - - - - - -", "syslog"),
        ("<13>Nov 22 12:00:00 h p: x", "syslog"),
        ("Nov 22 12:00:00 h p: x", "syslog"),
        ("2024-05-01T08:30:00+08:00 h p: x", "syslog"),
        ("2017-05-16 00:00:00.008 1 INFO x y", "openstack"),
        ("nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 1 INFO x y", "openstack"),
        ('1.2.3.4 - - [22/Nov/2026:12:15:51 +0800] "GET / HTTP/1.1" 200 1', "nginx"),
        ('::1 - - [22/Nov/2026:12:15:51 +0800] "GET / HTTP/1.1" 200 1', "nginx"),
        ('proxy.example.org - - [22/Nov/2026:12:15:51 +0800] "GET / HTTP/1.1" 200 1', "nginx"),
        ("2026/11/22 12:00:00 [error] 1#0: x", "nginx"),
        ("[Sun Dec 04 04:47:44 2005] [notice] x", "apache"),
        ("type=SYSCALL msg=audit(1.2:3): x=y", "auditd"),
        ("node=a type=SYSCALL msg=audit(1.2:3): x=y", "auditd"),
        ('{"a": 1}', "json"),
        ("what is this", None),
    ],
)
def test_detect(line: str, fmt: str | None) -> None:
    assert detect(line) == fmt
    if fmt is not None:
        assert parse(line, "auto", CTX_2026)["event"]["original"] == line


def test_priority_out_of_range_is_an_error() -> None:
    with pytest.raises(ParseError, match="priority"):
        parse("<999>Oct 11 22:14:15 host prog: x")


@pytest.mark.parametrize(
    ("now", "line_date", "expected"),
    [
        # a December line read on 2 January: last year
        (datetime(2025, 1, 2, tzinfo=UTC), "Dec 31 23:59:59", "2024-12-31T15:59:59.000Z"),
        # New Year's night in Shanghai (UTC still 31 Dec): a 31 Dec line is this (old) year
        (datetime(2024, 12, 31, 16, 30, tzinfo=UTC), "Dec 31 23:59:00", "2024-12-31T15:59:00.000Z"),
        # read on 31 Dec; the sender's clock is already in January: next year
        (datetime(2024, 12, 31, 10, 0, tzinfo=UTC), "Jan  1 00:00:05", "2024-12-31T16:00:05.000Z"),
        # Shanghai is already in 2025 while UTC is not: a 1 January line is 2025
        (datetime(2024, 12, 31, 16, 30, tzinfo=UTC), "Jan  1 00:20:00", "2024-12-31T16:20:00.000Z"),
        # one month ahead is tolerated, more means last year
        (datetime(2024, 6, 15, tzinfo=UTC), "Jul 10 12:00:00", "2024-07-10T04:00:00.000Z"),
        (datetime(2024, 6, 15, tzinfo=UTC), "Sep  1 12:00:00", "2023-09-01T04:00:00.000Z"),
        (datetime(2024, 2, 1, tzinfo=UTC), "Feb 29 08:00:00", "2024-02-29T00:00:00.000Z"),
    ],
)
def test_rfc3164_year_inference(now: datetime, line_date: str, expected: str) -> None:
    event = parse(f"{line_date} host prog[1]: hello", "syslog", ParseContext(now=now))
    assert event["@timestamp"] == expected


def test_rfc3164_impossible_date_is_an_error() -> None:
    ctx = ParseContext(now=datetime(2025, 2, 1, tzinfo=UTC))  # 2025 is not a leap year
    with pytest.raises(ParseError, match="invalid date"):
        parse("Feb 29 08:00:00 host prog: x", "syslog", ctx)
    with pytest.raises(ParseError):
        parse("Feb 28 25:00:00 host prog: x", "syslog", ctx)


def test_rfc3164_other_zones_and_dst() -> None:
    ny = ParseContext(tz=ZoneInfo("America/New_York"), now=datetime(2024, 3, 20, tzinfo=UTC))
    assert parse("Mar 10 01:30:00 h p: x", "syslog", ny)["@timestamp"] == "2024-03-10T06:30:00.000Z"  # EST
    assert parse("Mar 10 03:30:00 h p: x", "syslog", ny)["@timestamp"] == "2024-03-10T07:30:00.000Z"  # EDT
    assert parse("Mar 11 03:30:00 h p: x", "syslog", ny)["@timestamp"] == "2024-03-11T07:30:00.000Z"
    kolkata = ParseContext(tz=ZoneInfo("Asia/Kolkata"), now=datetime(2024, 3, 20, tzinfo=UTC))
    assert parse("Mar 11 03:30:15 h p: x", "syslog", kolkata)["@timestamp"] == "2024-03-10T22:00:15.000Z"
    millis = parse("Mar 11 03:30:15.5 h p: x", "syslog", CTX_2026)
    assert millis["@timestamp"] == "2026-03-10T19:30:15.500Z"


# ---------------------------------------------------------------------------------------------------- sshd / PAM


SSHD_CASES = [
    ("Failed password for invalid user admin from 198.51.100.7 port 40222 ssh2",
     {"event.action": "ssh_login", "event.outcome": "failure", "user.name": "admin", "source.ip": "198.51.100.7",
      "source.port": 40222}),
    ("Failed password for root from 198.51.100.7 port 40222 ssh2",
     {"event.action": "ssh_login", "event.outcome": "failure", "user.name": "root", "event.type": ["info"]}),
    ("Accepted password for deploy from 10.0.0.5 port 51000 ssh2",
     {"event.action": "ssh_login", "event.outcome": "success", "user.name": "deploy", "event.type": ["start"]}),
    ("Invalid user oracle from 203.0.113.9 port 6060",
     {"event.action": "ssh_invalid_user", "event.outcome": "failure", "user.name": "oracle",
      "source.ip": "203.0.113.9", "source.port": 6060}),
    ("Invalid user oracle from 203.0.113.9",
     {"event.action": "ssh_invalid_user", "user.name": "oracle", "source.ip": "203.0.113.9", "source.port": None}),
    ("Disconnected from authenticating user root 203.0.113.9 port 6060 [preauth]",
     {"event.action": "ssh_disconnect", "event.category": ["session"], "event.type": ["end"], "user.name": "root",
      "source.ip": "203.0.113.9", "source.port": 6060, "event.outcome": "unknown"}),
    ("Disconnected from 203.0.113.9 port 6060",
     {"event.action": "ssh_disconnect", "source.ip": "203.0.113.9", "user.name": None}),
    ("Received disconnect from 203.0.113.9 port 6060:11: Bye Bye [preauth]",
     {"event.action": "ssh_disconnect", "source.ip": "203.0.113.9", "source.port": 6060}),
    ("Received disconnect from 203.0.113.9: 11: Bye Bye",
     {"event.action": "ssh_disconnect", "source.ip": "203.0.113.9", "source.port": None}),
    ("Connection closed by 2001:db8::7 port 6060 [preauth]",
     {"event.action": "ssh_disconnect", "source.ip": "2001:db8::7", "source.port": 6060}),
    ("Connection closed by invalid user test 203.0.113.9 port 6060 [preauth]",
     {"event.action": "ssh_disconnect", "user.name": "test", "source.ip": "203.0.113.9"}),
    ("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
     {"event.action": "pam_auth_failure", "event.outcome": "failure", "user.name": "root",
      "source.ip": "203.0.113.9"}),
    ("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=scan.example.net",
     {"event.action": "pam_auth_failure", "source.domain": "scan.example.net", "source.ip": None}),
    ("pam_unix(sshd:auth): check pass; user unknown",
     {"event.action": "pam_user_unknown", "event.outcome": "failure"}),
    ("pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
     {"event.action": "session_opened", "event.category": ["session"], "user.name": "alice", "user.id": "1000"}),
    ("pam_unix(sshd:session): session closed for user alice",
     {"event.action": "session_closed", "event.type": ["end"], "user.name": "alice"}),
    ("PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
     {"event.action": "pam_auth_failure", "source.ip": "203.0.113.9", "user.name": "root"}),
    ("message repeated 3 times: [ Failed password for root from 203.0.113.9 port 22 ssh2]",
     {"event.action": "ssh_login", "event.outcome": "failure", "source.ip": "203.0.113.9"}),
    ("error: maximum authentication attempts exceeded for root from 203.0.113.9 port 4444 ssh2 [preauth]",
     {"event.action": "ssh_max_auth_attempts", "user.name": "root", "source.port": 4444}),
    ("Did not receive identification string from 203.0.113.9 port 4444",
     {"event.action": "ssh_no_identification", "source.ip": "203.0.113.9"}),
    ("Server listening on 0.0.0.0 port 22.",
     {"event.action": None, "event.dataset": "system.auth", "event.category": ["host"]}),
]


@pytest.mark.parametrize(("msg", "expected"), SSHD_CASES)
@pytest.mark.parametrize("fmt", ["sshd", "syslog", "auto"])
def test_sshd_messages(fmt: str, msg: str, expected: dict) -> None:
    line = f"Nov 22 12:15:51 bastion sshd[4242]: {msg}"
    event = parse(line, fmt, CTX_2026)
    common_fields(event, line)
    assert event["@timestamp"] == "2026-11-22T04:15:51.000Z"
    assert event["message"] == msg
    for field, value in expected.items():
        assert get(event, field) == value, field
    if get(event, "source.ip"):
        assert get(event, "source.ip") in event["related"]["ip"]
    if get(event, "user.name"):
        assert get(event, "user.name") in event["related"]["user"]


def test_sudo() -> None:
    line = ("Nov 22 12:00:01 web01 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
            "COMMAND=/usr/bin/systemctl restart nginx ; echo done")
    event = parse(line, "auto", CTX_2026)
    common_fields(event, line)
    assert (event["event"]["action"], event["event"]["outcome"]) == ("sudo", "success")
    assert event["user"] == {"name": "alice", "effective": {"name": "root"}}
    assert event["process"]["command_line"] == "/usr/bin/systemctl restart nginx ; echo done"
    assert event["process"]["working_directory"] == "/home/alice"
    assert event["related"]["user"] == ["alice", "root"]
    assert event["system"]["auth"]["sudo"]["tty"] == "pts/0"

    failed = parse("Nov 22 12:00:01 web01 sudo: mallory : 3 incorrect password attempts ; TTY=pts/1 ; "
                   "PWD=/tmp ; USER=root ; COMMAND=/bin/bash", "syslog", CTX_2026)
    assert (failed["event"]["action"], failed["event"]["outcome"]) == ("sudo", "failure")
    assert failed["system"]["auth"]["sudo"]["error"] == "3 incorrect password attempts"
    assert failed["user"]["name"] == "mallory"

    session = parse("Nov 22 12:00:01 web01 sudo: pam_unix(sudo:session): session opened for user root(uid=0) "
                    "by alice(uid=1000)", "syslog", CTX_2026)
    assert session["event"]["action"] == "session_opened"
    assert session["user"] == {"name": "alice", "effective": {"name": "root", "id": "0"}}


# ---------------------------------------------------------------------------------------------------- firewall


def test_iptables_ufw_block() -> None:
    line = ("Nov 22 12:00:01 fw01 kernel: [123456.789012] [UFW BLOCK] IN=eth0 OUT= "
            "MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.9 DST=198.18.0.10 LEN=60 TOS=0x00 "
            "PREC=0x00 TTL=51 ID=4242 DF PROTO=TCP SPT=50022 DPT=22 WINDOW=29200 RES=0x00 SYN URGP=0")
    event = parse(line, "auto", CTX_2026)
    common_fields(event, line)
    assert event["event"]["category"] == ["network"]
    assert event["event"]["type"] == ["connection", "denied"]
    assert event["event"]["action"] == "UFW BLOCK"
    assert (event["event"]["dataset"], event["event"]["module"]) == ("iptables.log", "iptables")
    assert event["source"] == {"ip": "203.0.113.9", "port": 50022, "mac": "52-54-00-65-43-21"}
    assert event["destination"] == {"ip": "198.18.0.10", "port": 22, "mac": "52-54-00-12-34-56"}
    assert event["network"] == {"transport": "tcp", "type": "ipv4"}
    assert event["observer"] == {"ingress": {"interface": {"name": "eth0"}}}
    assert event["related"]["ip"] == ["203.0.113.9", "198.18.0.10"]
    assert event["host"]["name"] == "fw01"


def test_iptables_prefix_icmp_and_ipv6() -> None:
    drop = parse("Nov 22 12:00:01 gw kernel: DROP IN=ens3 OUT=ens4 SRC=198.18.1.1 DST=198.18.2.2 LEN=84 TOS=0x00 "
                 "PREC=0x00 TTL=63 ID=0 DF PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1", "syslog", CTX_2026)
    assert drop["event"]["action"] == "DROP"
    assert drop["network"]["transport"] == "icmp"
    assert "port" not in drop["source"] and "port" not in drop["destination"]
    assert drop["observer"] == {"ingress": {"interface": {"name": "ens3"}}, "egress": {"interface": {"name": "ens4"}}}
    v6 = parse("Nov 22 12:00:01 gw kernel: [ 12.3] nft-in: IN=eth0 OUT= SRC=2001:0db8:0000::1 DST=fd00::2 LEN=80 "
               "TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=5353 DPT=53 LEN=40", "syslog", CTX_2026)
    assert v6["source"] == {"ip": "2001:db8::1", "port": 5353}
    assert v6["network"] == {"transport": "udp", "type": "ipv6"}
    assert v6["event"]["action"] == "nft-in" and v6["event"]["type"] == ["connection"]
    plain = parse("Nov 22 12:00:01 gw kernel: usb 1-1: new high-speed USB device", "syslog", CTX_2026)
    assert plain["event"]["dataset"] == "system.syslog" and "source" not in plain


# ---------------------------------------------------------------------------------------------------- web


def test_nginx_combined_ipv4() -> None:
    line = ('198.51.100.23 - - [22/Nov/2026:12:15:51 +0800] "GET /api/v1/items?id=42&x=1 HTTP/1.1" 200 5120 '
            '"https://portal.example.gov.cn/" "Mozilla/5.0 (X11; Linux x86_64)"')
    event = parse(line, "auto")
    common_fields(event, line)
    assert event["@timestamp"] == "2026-11-22T04:15:51.000Z"
    assert event["source"] == {"ip": "198.51.100.23"}
    assert event["http"] == {
        "request": {"method": "GET", "referrer": "https://portal.example.gov.cn/"},
        "response": {"status_code": 200, "body": {"bytes": 5120}},
        "version": "1.1",
    }
    assert event["url"] == {"original": "/api/v1/items?id=42&x=1", "path": "/api/v1/items", "query": "id=42&x=1"}
    assert event["user_agent"] == {"original": "Mozilla/5.0 (X11; Linux x86_64)"}
    assert (event["event"]["dataset"], event["event"]["category"], event["event"]["outcome"]) == (
        "nginx.access", ["web"], "success")
    assert "user" not in event


def test_nginx_ipv6_client_user_and_escapes() -> None:
    line = ('2001:DB8::1 - bob [01/Jan/2026:00:00:01 -0500] "POST /login HTTP/2.0" 401 - "-" '
            '"curl/8.5 \\"quoted\\"" "198.18.9.9"')
    event = parse(line, "nginx", ParseContext(hostname="edge1"))
    common_fields(event, line)
    assert event["@timestamp"] == "2026-01-01T05:00:01.000Z"
    assert event["source"] == {"ip": "2001:db8::1"}
    assert event["user"] == {"name": "bob"}
    assert event["related"] == {"ip": ["2001:db8::1"], "user": ["bob"]}
    assert event["http"]["response"] == {"status_code": 401}
    assert "referrer" not in event["http"]["request"]
    assert event["user_agent"]["original"] == 'curl/8.5 \\"quoted\\"'
    assert event["event"]["outcome"] == "failure"
    assert event["host"] == {"name": "edge1"}
    assert detect(line) == "nginx"


def test_apache_common_log_format() -> None:
    line = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
    event = parse(line, "apache")
    common_fields(event, line)
    assert event["@timestamp"] == "2000-10-10T20:55:36.000Z"
    assert (event["event"]["dataset"], event["event"]["module"]) == ("apache.access", "apache")
    assert event["user"]["name"] == "frank"
    assert event["http"]["version"] == "1.0" and event["http"]["response"]["body"]["bytes"] == 2326
    assert "user_agent" not in event and "referrer" not in event["http"]["request"]
    assert event["url"] == {"original": "/apache_pb.gif", "path": "/apache_pb.gif"}
    odd = parse('203.0.113.5 - - [10/Oct/2000:13:55:36 +0530] "\\x16\\x03\\x01" 400 150 "-" "-"', "apache")
    assert odd["@timestamp"] == "2000-10-10T08:25:36.000Z"
    assert "method" not in odd["http"].get("request", {}) and "url" not in odd


def test_apache_24_error_log() -> None:
    line = ("[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:51234] "
            "AH00128: File does not exist: /usr/local/apache2/htdocs/favicon.ico")
    event = parse(line, "auto")
    common_fields(event, line)
    assert event["@timestamp"] == "2011-09-09T02:42:29.902Z"
    assert event["log"]["level"] == "error"
    assert event["apache"]["error"]["module"] == "core"
    assert event["process"] == {"pid": 35708, "thread": {"id": 4328636416}}
    assert event["source"] == {"ip": "72.15.99.187", "port": 51234}
    assert event["error"]["code"] == "AH00128"
    assert event["message"].startswith("AH00128: File does not exist")


def test_nginx_error_log() -> None:
    line = ('2026/11/22 12:00:00 [error] 1234#0: *99 open() "/srv/x" failed (2: No such file or directory), '
            'client: 198.51.100.4, server: portal, request: "GET /x HTTP/1.1"')
    event = parse(line, "auto")
    common_fields(event, line)
    assert event["@timestamp"] == "2026-11-22T04:00:00.000Z"
    assert (event["event"]["dataset"], event["log"]["level"]) == ("nginx.error", "error")
    assert event["source"]["ip"] == "198.51.100.4"


# ---------------------------------------------------------------------------------------------------- auditd


def test_auditd_syscall_enriched() -> None:
    line = ('type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=59 success=yes exit=0 a0=55d1 a1=55d2 '
            'items=2 ppid=1200 pid=1234 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 '
            'ses=3 comm="id" exe="/usr/bin/id" subj=unconfined key="exec"'
            '\x1dARCH=x86_64 SYSCALL=execve AUID="alice" UID="root" GID="root"')
    event = parse(line, "auto")
    common_fields(event, line)
    assert event["@timestamp"] == "2023-11-14T22:13:20.123Z"
    log = event["auditd"]["log"]
    assert (log["record_type"], log["sequence"], log["syscall"], log["SYSCALL"], log["key"]) == (
        "SYSCALL", 456, "59", "execve", "exec")
    assert event["event"]["action"] == "syscall" and event["event"]["outcome"] == "success"
    assert event["process"] == {"pid": 1234, "parent": {"pid": 1200}, "executable": "/usr/bin/id", "name": "id"}
    assert event["user"] == {"id": "0", "audit": {"id": "1000", "name": "alice"}, "name": "root"}
    assert (event["event"]["dataset"], event["event"]["module"]) == ("auditd.log", "auditd")


def test_auditd_user_login_failure_and_execve() -> None:
    line = ("node=web01 type=USER_LOGIN msg=audit(1700000001.000:457): pid=2001 uid=0 auid=4294967295 "
            "ses=4294967295 subj=system_u msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? "
            "addr=203.0.113.9 terminal=sshd res=failed'")
    event = parse(line, "auditd")
    common_fields(event, line)
    assert event["event"]["action"] == "user_login"
    assert event["event"]["category"] == ["authentication"] and event["event"]["outcome"] == "failure"
    assert event["source"] == {"ip": "203.0.113.9"} and event["related"]["ip"] == ["203.0.113.9"]
    assert event["user"] == {"id": "0", "name": "root"}
    assert event["host"] == {"name": "web01"}
    assert event["process"]["executable"] == "/usr/sbin/sshd"
    assert event["auditd"]["log"]["op"] == "login"

    execve = parse('type=EXECVE msg=audit(1700000000.123:456): argc=3 a0="curl" a1=2D6F a2="http://x/y z"', "auto")
    assert execve["process"]["args"] == ["curl", "-o", "http://x/y z"]
    assert execve["process"]["command_line"] == "curl -o http://x/y z"
    assert execve["event"]["type"] == ["start"]


def test_auditd_config_change_and_daemon() -> None:
    change = parse('type=CONFIG_CHANGE msg=audit(1700000002.5:9): auid=1000 ses=3 op=add_rule key="passwd" list=4 '
                   "res=1", "auto")
    assert change["event"]["category"] == ["configuration"] and change["event"]["type"] == ["change"]
    assert change["event"]["outcome"] == "success" and change["@timestamp"] == "2023-11-14T22:13:22.500Z"
    daemon = parse("type=DAEMON_START msg=audit(1700000003.000:1): op=start ver=3.1.2 format=enriched "
                   "kernel=6.1.0 auid=4294967295 pid=600 uid=0 ses=4294967295 res=success", "auto")
    assert daemon["event"]["action"] == "daemon_start" and daemon["event"]["type"] == ["start"]
    assert "audit" not in daemon["user"]
    auth = parse("type=USER_AUTH msg=audit(1700000004.000:2): pid=1 uid=0 auid=1000 ses=1 msg='op=PAM:"
                 "authentication grantors=pam_unix acct=\"alice\" exe=\"/usr/bin/sudo\" hostname=? addr=? "
                 "terminal=/dev/pts/0 res=success'", "auto")
    assert auth["event"]["outcome"] == "success" and auth["user"]["name"] == "alice" and "source" not in auth


# ---------------------------------------------------------------------------------------------------- JSON


def test_kubernetes_audit() -> None:
    obj = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": "5b1f6f6e-1b4c-4c5e-9f70-5b2a8e2c4b11", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/finance/secrets/db-password?timeout=30s", "verb": "get",
        "user": {"username": "system:serviceaccount:finance:app", "uid": "u-1", "groups": ["system:serviceaccounts"]},
        "sourceIPs": ["10.244.1.7", "198.18.0.1"], "userAgent": "kubectl/v1.30.0",
        "objectRef": {"resource": "secrets", "namespace": "finance", "name": "db-password", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 403},
        "requestReceivedTimestamp": "2026-11-22T04:15:50.100000Z", "stageTimestamp": "2026-11-22T04:15:50.123456Z",
    }
    line = json.dumps(obj)
    event = parse(line)
    common_fields(event, line)
    assert event["@timestamp"] == "2026-11-22T04:15:50.123Z"
    node = event["event"]
    assert (node["action"], node["outcome"], node["dataset"], node["category"], node["type"]) == (
        "get", "failure", "kubernetes.audit", ["api"], ["access"])
    assert node["id"] == obj["auditID"]
    assert event["user"]["name"] == "system:serviceaccount:finance:app"
    assert event["source"] == {"ip": "10.244.1.7"}
    assert event["related"]["ip"] == ["10.244.1.7", "198.18.0.1"]
    assert event["url"]["original"] == obj["requestURI"] and event["url"]["path"].endswith("/db-password")
    assert event["orchestrator"] == {"type": "kubernetes", "resource": {"type": "secrets", "name": "db-password"},
                                     "namespace": "finance", "api_version": "v1"}
    assert event["http"]["response"]["status_code"] == 403
    assert event["kubernetes"]["audit"]["objectRef"]["resource"] == "secrets"


@pytest.mark.parametrize(("code", "kept"), [(100, True), (599, True), (99, False), (600, False), (0, False),
                                             (2**63, False), (-1, False), (True, False), ("403", False)])
def test_kubernetes_status_is_an_http_status_code(code: object, kept: bool) -> None:
    """responseStatus.code becomes http.response.status_code (a long in the store) only when it is one (100–599)."""
    event = parse(json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get",
                              "responseStatus": {"code": code}}))
    assert ("http" in event) is kept
    assert event["event"]["outcome"] == ("success" if kept and code < 400 else "failure" if kept else "unknown")
    assert event["kubernetes"]["audit"]["responseStatus"]["code"] == code  # the document itself as it came


def test_json_ecs_document_kept() -> None:
    line = json.dumps({"@timestamp": "2026-11-22T12:00:00+08:00", "message": "hello", "source.ip": "198.18.0.9",
                       "event": {"dataset": "app.audit", "category": "iam"}, "log.level": "warn", "labels": {"a": 1}})
    event = parse(line, "json")
    common_fields(event, line)
    assert event["@timestamp"] == "2026-11-22T04:00:00.000Z"
    assert event["source"] == {"ip": "198.18.0.9"}
    assert event["log"] == {"level": "warn"}
    assert event["event"]["dataset"] == "app.audit" and event["event"]["category"] == ["iam"]
    assert event["labels"] == {"a": 1} and event["message"] == "hello"
    assert "json" not in event


def test_json_generic_objects() -> None:
    pino = json.dumps({"level": "ERROR", "time": 1700000000123, "msg": "db down", "hostname": "api-1", "pid": 7})
    event = parse(pino, "auto")
    common_fields(event, pino)
    assert event["@timestamp"] == "2023-11-14T22:13:20.123Z"
    assert event["message"] == "db down" and event["log"]["level"] == "error"
    assert event["json"]["pid"] == 7 and event["host"]["name"] == "api-1"
    assert event["event"]["dataset"] == "json"
    structlog = json.dumps({"event": "user logged in", "timestamp": "2026-11-22 12:00:00", "user": "bob"})
    event = parse(structlog, "json")
    assert event["@timestamp"] == "2026-11-22T04:00:00.000Z"  # no zone: ctx.tz
    assert event["json"]["event"] == "user logged in" and event["message"] == structlog
    bare = parse('{"a": [1, 2]}', "json", ParseContext(now=datetime(2026, 1, 1, tzinfo=UTC)))
    assert bare["@timestamp"] == "2026-01-01T00:00:00.000Z"
    assert bare["tags"] == ["timestamp_assumed"] and "tags" not in event
    k8s = parse('{"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get", "stage": "ResponseComplete"}',
                "json", ParseContext(now=datetime(2026, 1, 1, tzinfo=UTC)))
    assert k8s["event"]["dataset"] == "kubernetes.audit" and k8s["tags"] == ["timestamp_assumed"]
    with pytest.raises(ParseError, match="not an object"):
        parse("[1, 2, 3]", "json")
    with pytest.raises(ParseError, match="not valid JSON"):
        parse("{broken", "json")


# ---------------------------------------------------------------------------------------------------- OpenStack


def test_openstack_wsgi_request() -> None:
    line = ('2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server '
            '[req-38101a0b-2096-447d-96ea-a692162415ae 113d3a99c3da401fbd62cc2caa5b96d2 '
            '54fdadf8ea5d45d6b5b8ad4a3cb9ee1f - - -] 10.11.10.1 '
            '"GET /v2/54fdadf8ea5d45d6b5b8ad4a3cb9ee1f/servers/detail?all_tenants=1 HTTP/1.1" '
            'status: 200 len: 1893 time: 0.2477829')
    event = parse(line, "auto")
    common_fields(event, line)
    assert event["@timestamp"] == "2017-05-15T16:00:00.008Z"
    assert event["process"] == {"pid": 25746}
    assert event["log"] == {"level": "info", "logger": "nova.osapi_compute.wsgi.server"}
    assert event["openstack"]["request_id"] == "req-38101a0b-2096-447d-96ea-a692162415ae"
    assert event["user"] == {"id": "113d3a99c3da401fbd62cc2caa5b96d2"}
    assert event["cloud"]["project"]["id"] == "54fdadf8ea5d45d6b5b8ad4a3cb9ee1f"
    assert event["source"] == {"ip": "10.11.10.1"}
    assert event["http"]["request"]["method"] == "GET" and event["http"]["response"]["status_code"] == 200
    assert event["url"]["query"] == "all_tenants=1"
    assert event["event"]["duration"] == 247782900
    assert (event["event"]["dataset"], event["event"]["outcome"]) == ("openstack.api", "success")
    assert event["service"]["name"] == "nova"


def test_openstack_plain_lines() -> None:
    line = ("nova-compute.log.1.2017-05-16_13:55:31 2017-05-16 00:00:04.500 2931 INFO nova.compute.manager "
            "[req-3ea4052c-895d-4b64-9e2d-04d64c4d94ab - - - - -] [instance: b9000564-fe1a-409b-b8cc-1e88b294cd1d] "
            "VM Started (Lifecycle Event)")
    event = parse(line, "auto")
    common_fields(event, line)
    assert event["event"]["dataset"] == "openstack.log"
    assert event["cloud"] == {"instance": {"id": "b9000564-fe1a-409b-b8cc-1e88b294cd1d"}}
    assert event["message"] == "VM Started (Lifecycle Event)"
    assert "user" not in event and "http" not in event
    error = parse("2017-05-16 00:00:05.185 2931 ERROR nova.compute.manager [-] Boom", "openstack")
    assert error["event"]["type"] == ["error"] and "openstack" not in error


# ----------------------------------------------------------------------------------------------- errors and fuzzing


GARBAGE = [
    "", "   ", "\n", "hello world", "<>", "<13", "<13>", "<13>1", "<13>1 x", "{", "{}x", "[", "[Sun", "type=",
    "type=SYSCALL msg=audit(x)", "Jan", "Jan 99 99:99:99", "Jan  1 00:00:00", "1.2.3.4", "1.2.3.4 - - [x]",
    "2017-05-16", "\x00\x01\x02", "💥" * 10, "Foo 12 12:00:00 host prog: x",
]


@pytest.mark.parametrize("line", GARBAGE)
@pytest.mark.parametrize("fmt", FORMATS)
def test_garbage_raises_parse_error(fmt: str, line: str) -> None:
    try:
        event = parse(line, fmt, CTX_2026)
    except ParseError as exc:
        assert str(exc) and not str(exc).startswith("internal error")
    else:  # a few of these are valid enough (e.g. "{}" in JSON) — then they must be well-formed events
        common_fields(event, line)


def test_wrong_format_and_bad_arguments() -> None:
    syslog_line = "Nov 22 12:15:51 bastion sshd[1]: Accepted password for a from 1.2.3.4 port 1 ssh2"
    for fmt in ("nginx", "apache", "auditd", "json", "openstack"):
        with pytest.raises(ParseError):
            parse(syslog_line, fmt)
    with pytest.raises(ParseError, match="unknown format"):
        parse(syslog_line, "cef")
    with pytest.raises(ParseError):
        parse(None, "auto")  # type: ignore[arg-type]
    assert parse(syslog_line.encode(), "sshd", CTX_2026)["source"]["ip"] == "1.2.3.4"  # bytes are decoded
    assert parse(syslog_line + "\r\n", "sshd", CTX_2026)["event"]["original"] == syslog_line
    assert ParseError.__mro__[1] is ValueError


def _assert_parse_error_only(line: str, fmt: str) -> None:
    try:
        event = parse(line, fmt, CTX_2026)
    except ParseError as exc:
        assert not str(exc).startswith("internal error"), str(exc)
    else:
        assert isinstance(event, dict) and ISO_Z.match(event["@timestamp"])
        assert event["event"]["original"] == line.rstrip("\r\n")


SEEDS = [
    "Nov 22 12:15:51 bastion sshd[4242]: Failed password for invalid user admin from 198.51.100.7 port 40222 ssh2",
    "<38>1 2024-03-01T10:00:00.123+08:00 h sshd 1 - [a b=\"c\"] Accepted publickey for x from ::1 port 2 ssh2",
    "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    "Nov 22 12:00:01 fw01 kernel: [1.2] [UFW BLOCK] IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=60 PROTO=TCP SPT=1 DPT=2",
    "Nov 22 12:00:01 web01 sudo: alice : TTY=pts/0 ; PWD=/h ; USER=root ; COMMAND=/bin/id",
    '198.51.100.23 - u [22/Nov/2026:12:15:51 +0800] "GET /a?b HTTP/1.1" 200 5 "-" "ua"',
    "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 1:tid 2] [client 1.2.3.4:5] AH00128: x",
    "type=USER_LOGIN msg=audit(1700000001.000:457): pid=1 uid=0 msg='op=login acct=\"root\" addr=1.2.3.4 res=failed'",
    '{"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get", "sourceIPs": ["1.2.3.4"], "user": {}}',
    '{"@timestamp": 1700000000, "event.dataset": "x", "a.b": 1}',
    '2017-05-16 00:00:00.008 1 INFO n.w [req-1 u p - - -] 1.2.3.4 "GET /v2 HTTP/1.1" status: 200 len: 1 time: 0.1',
]


def test_fuzz_mutated_real_lines() -> None:
    """Random edits of valid lines in every format: ParseError or a well-formed event, nothing else."""
    rng = random.Random(20261122)
    alphabet = " :[]<>{}\"'=.-/\\\x00\x1d\u00e9\u4e2d0123456789aZ\n"
    for _ in range(6000):
        line = list(rng.choice(SEEDS))
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            pos = rng.randrange(len(line) + 1)
            if op < 0.4:
                line.insert(pos, rng.choice(alphabet))
            elif op < 0.7 and line:
                del line[min(pos, len(line) - 1)]
            elif line:
                line[min(pos, len(line) - 1)] = rng.choice(alphabet)
        text = "".join(line)
        for fmt in ("auto", rng.choice(FORMATS[1:])):
            _assert_parse_error_only(text, fmt)


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the test extras
    def test_fuzz_random_bytes() -> None:
        rng = random.Random(7)
        for _ in range(20000):
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
            _assert_parse_error_only(raw.decode("utf-8", "replace"), rng.choice(FORMATS))
else:
    _fmt = st.sampled_from(FORMATS)

    @settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(line=st.text(max_size=300), fmt=_fmt)
    def test_fuzz_hypothesis_text(line: str, fmt: str) -> None:
        _assert_parse_error_only(line, fmt)

    @settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 200), junk=st.text(max_size=40), fmt=_fmt)
    def test_fuzz_hypothesis_spliced(seed: str, cut: int, junk: str, fmt: str) -> None:
        _assert_parse_error_only(seed[:cut] + junk + seed[cut:], fmt)

    @settings(max_examples=500, deadline=None)
    @given(payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.sampled_from(["@timestamp", "message", "event", "event.kind", "source.ip", "time", "kind",
                             "apiVersion", "user", "sourceIPs", "objectRef", "responseStatus", "a.b", "a"]),
            inner, max_size=6),
        max_leaves=20))
    def test_fuzz_hypothesis_json(payload: object) -> None:
        _assert_parse_error_only(json.dumps(payload), "auto")
        if isinstance(payload, dict):
            _assert_parse_error_only(json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", **payload}), "json")


def test_formats_and_ecs_version() -> None:
    assert FORMATS == ("auto", "syslog", "sshd", "nginx", "apache", "auditd", "json", "openstack")
    event = parse("Nov 22 12:15:51 h p: x", "syslog", CTX_2026)
    assert event["ecs"]["version"] == ECS_VERSION
