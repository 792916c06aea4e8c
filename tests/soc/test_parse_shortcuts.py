"""Shortcuts on the parse path: compiled digit fields and the memo of the last RFC 3164 time.

Each must give exactly what the plain code gives: the compiled digit loop what ``isdigit`` + ``int`` give from the
module's source, and the memo what a fresh conversion gives, whatever zone, reference time or fraction comes next.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cython
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from soc.parsers import ParseContext, common, parse
from tests.soc.source_modules import from_source

SOURCE = from_source(common)
DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=22)
NEAR_DIGITS = st.text(alphabet="0123456789 +-_.x\u00b2\u0663\uff11", min_size=0, max_size=8)


def test_the_imported_module_is_the_compiled_one() -> None:
    """Otherwise the comparisons below would compare the source with itself."""
    assert not cython.compiled  # (this test module itself runs interpreted)
    assert Path(common.__file__).suffix == ".so"
    assert Path(SOURCE.__file__).suffix == ".py"


@settings(max_examples=400, deadline=None)
@given(st.one_of(DIGITS, NEAR_DIGITS))
@example("65535")
@example("65536")
@example("00080")
@example("999999999999999999")  # 18 digits: the compiled loop
@example("9223372036854775807")  # 19 digits: INT64_MAX, the plain path
@example("9223372036854775808")
@example("\u0663")  # ARABIC-INDIC DIGIT THREE: isdigit() but not ASCII
@example("1_000")  # int() reads it; not a port nor a count
def test_digit_fields_compiled_as_from_source(text: str) -> None:
    assert common.as_port(text) == SOURCE.as_port(text)
    assert common.as_count(text) == SOURCE.as_count(text)


@pytest.mark.parametrize("text", ["0", "7", "0042", "123456789012345678", "2147483648", "\u0663", "1_000"])
def test_digits_value_is_int(text: str) -> None:
    assert common.digits_value(text) == int(text) == SOURCE.digits_value(text)


def test_as_port_and_count_take_none_and_other_types() -> None:
    for module in (common, SOURCE):
        assert module.as_port(None) is None
        assert module.as_port("") is None
        assert module.as_count("") is None


LINE = "<38>Nov 21 00:00:00 web01 sshd[1]: Failed password for root from 203.0.113.9 port 2222 ssh2"


def test_the_same_time_in_another_zone_is_converted_again() -> None:
    """The memo of the last RFC 3164 time must not hand a line the conversion made for another zone."""
    now = datetime(2026, 11, 22, tzinfo=UTC)
    shanghai = parse(LINE, "syslog", ParseContext(tz=ZoneInfo("Asia/Shanghai"), now=now))
    utc = parse(LINE, "syslog", ParseContext(tz=ZoneInfo("UTC"), now=now))
    again = parse(LINE, "syslog", ParseContext(tz=ZoneInfo("Asia/Shanghai"), now=now))
    assert shanghai["@timestamp"] == again["@timestamp"] == "2026-11-20T16:00:00.000Z"
    assert utc["@timestamp"] == "2026-11-21T00:00:00.000Z"


def test_the_same_time_read_in_another_year_is_converted_again() -> None:
    """RFC 3164 has no year: the reference time decides it, so it is part of what the memo compares."""
    tz = ZoneInfo("UTC")
    this_year = parse(LINE, "syslog", ParseContext(tz=tz, now=datetime(2026, 11, 22, tzinfo=UTC)))
    years_ago = parse(LINE, "syslog", ParseContext(tz=tz, now=datetime(2005, 11, 22, tzinfo=UTC)))
    assert this_year["@timestamp"].startswith("2026-11-21T00:00:00")
    assert years_ago["@timestamp"].startswith("2005-11-21T00:00:00")


@pytest.mark.parametrize("stamps", [
    ("Nov 21 00:00:00", "Nov 21 00:00:00.5", "Nov 21 00:00:00.25", "Nov 21 00:00:00"),
    ("Nov 21 00:00:00", "Nov 21 00:00:01", "Nov 21 00:01:00", "Nov 21 01:00:00", "Nov 22 00:00:00"),
    ("Mar 29 02:30:00", "Mar 29 02:30:00"),  # a DST change day in Europe: the conversion takes the long way
])
def test_consecutive_times_each_convert_as_alone(stamps: tuple[str, ...]) -> None:
    """Lines in a row, each equal to the same line parsed after an unrelated one (no memo to reuse)."""
    ctx = ParseContext(tz=ZoneInfo("Europe/Berlin"), now=datetime(2026, 11, 22, tzinfo=UTC))
    in_a_row = [parse(f"<13>{stamp} host prog: hello", "syslog", ctx)["@timestamp"] for stamp in stamps]
    alone = []
    for stamp in stamps:
        parse("<13>Jan  1 12:34:56 other prog: reset", "syslog", ctx)
        alone.append(parse(f"<13>{stamp} host prog: hello", "syslog", ctx)["@timestamp"])
    assert in_a_row == alone
    assert in_a_row[0] != in_a_row[1] or stamps[0] == stamps[1]


@pytest.mark.parametrize("stamps", [
    ("21/Nov/2026:00:00:00 +0800", "21/Nov/2026:00:00:00 +0000", "21/Nov/2026:00:00:00 +0800"),
    ("21/Nov/2026:00:00:00 +0800", "21/Nov/2026:00:00:01 +0800", "21/Nov/2026:00:01:00 +0800",
     "21/Nov/2026:01:00:00 +0800", "22/Nov/2026:00:00:00 +0800"),
    ("21/Nov/2026:00:00:00 +0530", "21/Nov/2026:00:00:00 +05:30", "21/Nov/2026:00:00:00 -0930"),
])
def test_consecutive_access_times_each_convert_as_alone(stamps: tuple[str, ...]) -> None:
    """The memo of the last access-log time: lines in a row convert as each would after an unrelated line."""
    def line(stamp: str) -> str:
        return f'203.0.113.9 - - [{stamp}] "GET /a?b=1 HTTP/1.1" 200 5 "-" "curl/8"'

    in_a_row = [parse(line(stamp), "nginx")["@timestamp"] for stamp in stamps]
    alone = []
    for stamp in stamps:
        parse(line("01/Jan/2020:12:34:56 +0000"), "nginx")
        alone.append(parse(line(stamp), "nginx")["@timestamp"])
    assert in_a_row == alone
    assert len(set(in_a_row)) == len(set(stamps)) - (stamps[1] == "21/Nov/2026:00:00:00 +05:30")


@pytest.mark.parametrize(("request_text", "method", "version", "path"), [
    ("GET /a HTTP/1.1", "GET", "1.1", "/a"),
    ("POST /login", "POST", None, "/login"),
    ("GET /a FTP/1.0", None, None, None),  # a third word that is no HTTP version: no request fields
    ("\\x16\\x03\\x01", None, None, None),
    ("G3T /a", None, None, None),  # a method of letters only
])
def test_request_line_fields(request_text: str, method: str | None, version: str | None, path: str | None) -> None:
    event = parse(f'203.0.113.9 - - [21/Nov/2026:00:00:00 +0800] "{request_text}" 200 5', "nginx")
    assert event["http"].get("request", {}).get("method") == method
    assert event["http"].get("version") == version
    assert event.get("url", {}).get("path") == path
