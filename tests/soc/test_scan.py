"""The hand-written splitters (soc.parsers.scan) against the regexes they stand for.

Whenever a splitter returns groups they must be exactly the regex's; it may return None (the parser then asks the
regex) but must not for the common shapes. Lines are real (Loghub), typical, and mutated at the characters the
grammars turn on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from soc.parsers import ParseContext, ParseError, auth, firewall, parse, scan, syslog, web

LOGHUB = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub"

ACCESS = [
    '192.0.2.212 - - [21/Nov/2026:00:00:00 +0800] "GET /zwfw/item/51156 HTTP/1.1" 304 0 "-" "Mozilla/5.0 (X11)"',
    '2001:db8::7 - alice [1/Jan/2026:23:59:59 -07:00] "POST /a?b=1 HTTP/2.0" 500 - "http://x/\\"q" "curl/8"',
    'host.example - - [09/Mar/2026:08:00:01 +0000] "GET / HTTP/1.0" 200 1234',
    '10.0.0.1 - - [09/Mar/2026:08:00:01 +0000] "\\x16\\x03\\x01" 400 166 "-" "-" "extra nginx field"',
    '10.0.0.1 - - [09/Mar/2026:08:00:01 +0000] "GET / HTTP/1.1" 200 5 "only-referrer"',
]
SYSLOG = [
    "<38>Nov 21 00:00:00 jyj-xyaqjk-app01 sshd[26991]: Failed password for admin from 198.51.100.231 port 27905 ssh2",
    "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0",
    "Jun  9 06:06:20 combo syslogd 1.4.1: restart.",
    "<4>Nov 21 00:00:00 fw kernel: [86400.161399] IPT-DROP-IN: IN= OUT=eth0 SRC=198.19.16.68 DST=198.51.100.155 "
    "LEN=874 TOS=0x00 PREC=0x00 TTL=95 ID=46519 DF PROTO=UDP SPT=62785 DPT=123 LEN=48",
    "Dec  1 08:00:00.123456 host su: (to root) alice on pts/0",
    "<13>Dec 31 23:59:60 h prog:msg without space",
]
NETFILTER = [
    "[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.9 DST=10.0.0.5 LEN=60 "
    "TOS=0x00 PREC=0x00 TTL=52 ID=0 DF PROTO=TCP SPT=44321 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0",
    "IN=br0 OUT=eth1 PHYSIN=veth1 PHYSOUT=veth2 SRC=2001:db8::1 DST=2001:db8::2 LEN=80 TC=0 HOPLIMIT=64 "
    "FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0",
    "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 PROTO= PROTO=UDP SPT=123456 DPT=1",
    "IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 PROTO=TCP SPT=1 DPT=1234567",
]
SSH_LOGIN = [
    "Failed password for admin from 198.51.100.231 port 27905 ssh2",
    "Accepted publickey for deploy from 2001:db8::5 port 50022 ssh2: ED25519 SHA256:abc",
    "Failed password for invalid user oracle from 203.0.113.4 port 4242 ssh2",
    "Failed password for invalid user from 203.0.113.4 port 4242 ssh2",  # no name: the regex takes "invalid user"
    "Failed none for a from b from 10.0.0.1 port 22 ssh2",  # the shortest user the rest can follow
    "Accepted password for x from host port 123456",  # five digits of the port, no boundary
    "Failed password for  from 1.2.3.4 port 1",
]
# the characters each grammar turns on, for mutations
SIGNIFICANT = ' \t"\\[]<>:.-+/=0123456789AZaz\x0b'


def regex_access(line: str) -> tuple[str | None, ...] | None:
    m = web._ACCESS.match(line)
    return None if m is None else m.groups()


def regex_rfc3164(line: str) -> tuple[str | None, ...] | None:
    m = syslog._RFC3164.match(line)
    return None if m is None else m.groups()


def regex_netfilter(msg: str, at: int) -> tuple[str | None, ...] | None:
    m = firewall._PACKET.match(msg, at)
    if m is None:
        return None
    pm = firewall._PROTO.search(msg, m.end())
    return None if pm is None else m.groups() + pm.groups()


def agree(fast: tuple[str | None, ...] | None, reference: tuple[str | None, ...] | None) -> None:
    """The splitter either defers (None) or gives exactly the regex's groups."""
    if fast is not None:
        assert fast == reference


@st.composite
def mutated(draw: st.DrawFn, samples: list[str]) -> str:
    line = draw(st.sampled_from(samples))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(line)))
        action = draw(st.sampled_from(("insert", "delete", "replace")))
        char = draw(st.sampled_from(SIGNIFICANT) | st.characters())
        if action == "insert":
            line = line[:at] + char + line[at:]
        elif action == "delete":
            line = line[:at] + line[at + 1:]
        else:
            line = line[:at] + char + line[at + 1:]
    return line


@pytest.mark.parametrize("line", ACCESS)
def test_access_lines_split_as_the_regex_does(line: str) -> None:
    fast = scan.split_access(line)
    assert fast is not None
    assert fast == regex_access(line)


@pytest.mark.parametrize("line", SYSLOG)
def test_syslog_headers_split_as_the_regex_does(line: str) -> None:
    fast = scan.split_rfc3164(line)
    assert fast is not None
    assert fast == regex_rfc3164(line)


@pytest.mark.parametrize("msg", NETFILTER)
def test_netfilter_fields_split_as_the_regexes_do(msg: str) -> None:
    fast = scan.split_netfilter(msg, msg.find("IN="))
    assert fast is not None
    assert fast == regex_netfilter(msg, msg.find("IN="))


def regex_ssh_login(msg: str) -> tuple[str | None, ...] | None:
    m = auth._LOGIN.match(msg)
    return None if m is None else m.groups()


@pytest.mark.parametrize("msg", SSH_LOGIN)
def test_ssh_logins_split_as_the_regex_does(msg: str) -> None:
    fast = scan.split_ssh_login(msg)
    assert fast is not None
    assert fast == regex_ssh_login(msg)


@settings(max_examples=1500, deadline=None)
@given(mutated(SSH_LOGIN))
@example("Failed password for invalid user x from y port")
@example("Failed password for invalid user a from b port x from c port 9")
@example("Accepted\tpassword for a from b port 1")
def test_ssh_login_splitter_never_disagrees_with_the_regex(msg: str) -> None:
    agree(scan.split_ssh_login(msg), regex_ssh_login(msg))


def test_ports_follow_the_regex_at_their_limits() -> None:
    """SPT of six digits leaves both ports out; a DPT of seven digits keeps its first five (no boundary)."""
    assert scan.split_netfilter(NETFILTER[2], 0)[6:] == ("UDP", None, None)  # type: ignore[index]
    assert scan.split_netfilter(NETFILTER[3], 0)[6:] == ("TCP", "1", "12345")  # type: ignore[index]


@pytest.mark.parametrize("line", [
    "Nov 21 00:00:00 sshd[1]: no host",  # the host ends in ":": the parser reads it as the tag
    "Nov 21 00:00:00 host no tag here",  # no "tag:": the regex's optional group decides
    "Nov 21 00:00:00 host prog[12345678901]: eleven-digit pid",
    "<1234>Nov 21 00:00:00 host prog: four-digit PRI",
])
def test_syslog_splitter_defers_the_unusual_to_the_regex(line: str) -> None:
    assert scan.split_rfc3164(line) is None


def test_every_loghub_linux_line_splits_as_the_regex_does() -> None:
    lines = (LOGHUB / "Linux_2k.log").read_text(encoding="utf-8", errors="replace").splitlines()
    split = 0
    for line in lines:
        fast = scan.split_rfc3164(line)
        agree(fast, regex_rfc3164(line))
        split += fast is not None
    assert split >= 0.95 * len(lines)  # the common shape is taken by the splitter, not handed back


@settings(max_examples=1500, deadline=None)
@given(mutated(ACCESS))
@example('1.2.3.4 - - [1/Jan/2026:00:00:00 +0800] "GET /\\" 200 1')  # the escaped quote runs to the end
@example('1.2.3.4 - - [123/Jan/2026:00:00:00 +0800] "GET /" 200 1')
@example('1.2.3.4\t- - [1/Jan/2026:00:00:00 +0800] "GET /" 200 1')
def test_access_splitter_never_disagrees_with_the_regex(line: str) -> None:
    agree(scan.split_access(line), regex_access(line))


@settings(max_examples=1500, deadline=None)
@given(mutated(SYSLOG))
@example("Nov 21 00:00:00.1234567 host prog: seven fraction digits")
@example("Nov 21 00:00:00 host a b c: three words")
@example("Nov 21 00:00:00 host a b[1]x: after the pid")
@example("Nov 21 00:00:00 host\x0bx prog: vertical tab")
def test_syslog_splitter_never_disagrees_with_the_regex(line: str) -> None:
    agree(scan.split_rfc3164(line), regex_rfc3164(line))


@settings(max_examples=1500, deadline=None)
@given(mutated(NETFILTER))
@example("IN=eth0 OUT= MAC=aa SRC=1.2.3.4 DST=5.6.7.8 LEN=40 PROTO=TCP")
@example("IN=eth0 OUT= PHYSIN=x SRC=1.2.3.4 DST=5.6.7.8 LEN=40 PROTO=TCP SPT=1 DPT=")
def test_netfilter_splitter_never_disagrees_with_the_regexes(msg: str) -> None:
    at = msg.find("IN=")
    if at >= 0:
        agree(scan.split_netfilter(msg, at), regex_netfilter(msg, at))


def _events(lines: list[str], ctx: ParseContext) -> list[object]:
    out: list[object] = []
    for line in lines:
        try:
            out.append(parse(line, "auto", ctx))
        except ParseError as exc:
            out.append(str(exc))
    return out


def test_parsers_give_the_same_events_with_and_without_the_splitters(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = ParseContext(hostname="web01")
    lines = ACCESS + SYSLOG + (LOGHUB / "Linux_2k.log").read_text(encoding="utf-8").splitlines()[:500]
    lines += [f"<38>Nov 21 00:00:00 h sshd[1]: {msg}" for msg in SSH_LOGIN]
    with_splitters = _events(lines, ctx)
    for module, name in ((syslog, "split_rfc3164"), (web, "split_access"), (firewall, "split_netfilter"),
                         (auth, "split_ssh_login")):
        monkeypatch.setattr(module, name, lambda *args: None)
    assert _events(lines, ctx) == with_splitters


def test_every_octet_text_is_judged_as_the_regex_does() -> None:
    from soc.parsers.common import _IPV4

    for octet in [str(v) for v in range(1000)] + [f"{v:02d}" for v in range(100)] + [f"{v:03d}" for v in range(1000)]:
        for text in (f"{octet}.1.2.3", f"1.{octet}.2.3", f"1.2.{octet}.3", f"1.2.3.{octet}"):
            assert scan.is_ipv4(text) == (_IPV4.fullmatch(text) is not None), text


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789.:a ", max_size=18))
@example("1.2.3.4.")
@example("1.2.3")
@example("1..2.3")
@example("1.2.3.4 ")
@example("9999999999999.1")
def test_ipv4_check_never_disagrees_with_the_regex(text: str) -> None:
    from soc.parsers.common import _IPV4

    assert scan.is_ipv4(text) == (_IPV4.fullmatch(text) is not None)


@settings(max_examples=1500, deadline=None)
@given(mutated(["[86400.161399] IPT-DROP-IN: ", "[    5.1] x", "[12.5]", "[ 1.2]\t\x0b [UFW BLOCK] "]))
@example("[1.]")
@example("[.1]")
@example("[ \t1.2]  ")
def test_uptime_prefix_ends_where_the_regex_does(text: str) -> None:
    m = firewall._UPTIME.match(text)
    assert scan.uptime_end(text) == (-1 if m is None else m.end())
