"""IPv6 text through the C library (inet_pton/inet_ntop) against the ``ipaddress`` module it stands in for.

``as_ip`` must give exactly what ``ipaddress`` gives (canonical RFC 5952 text, IPv4-mapped → IPv4, a zone left
out, None for anything not an address) whichever path a text takes.
"""

from __future__ import annotations

import ipaddress

from hypothesis import example, given, settings
from hypothesis import strategies as st

from soc.parsers.common import _ipv6_text, as_ip


def reference(text: str) -> str | None:
    """What ``ipaddress`` makes of a text: the canonical address, or None."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Address(addr.packed))  # without a zone
    return str(addr)


def spellings(addr: ipaddress.IPv6Address, upper: bool, dotted: bool) -> list[str]:
    """Ways to write one address: compressed, exploded, hextets without leading zeros, a dotted IPv4 tail."""
    hextets = [f"{int(h, 16):x}" for h in addr.exploded.split(":")]
    texts = [addr.compressed, addr.exploded, ":".join(hextets)]
    if dotted:
        tail = ipaddress.IPv4Address(addr.packed[12:])
        texts += [":".join(hextets[:6]) + f":{tail}", addr.compressed.rsplit(":", 2)[0] + f":{tail}"
                  if addr.compressed.count(":") >= 2 else addr.compressed]
    return [t.upper() for t in texts] if upper else texts


@settings(max_examples=3000, deadline=None)
@given(st.ip_addresses(v=6), st.booleans(), st.booleans())
@example(ipaddress.IPv6Address("::ffff:1.2.3.4"), False, True)
@example(ipaddress.IPv6Address("::1.2.3.4"), False, True)
@example(ipaddress.IPv6Address("::1"), True, False)
@example(ipaddress.IPv6Address("::"), False, False)
@example(ipaddress.IPv6Address("1:0:0:2:0:0:0:3"), False, False)
@example(ipaddress.IPv6Address("2001:db8:0:1:1:1:1:1"), False, False)
def test_every_spelling_of_an_address_gives_the_ipaddress_text(addr: ipaddress.IPv6Address, upper: bool,
                                                               dotted: bool) -> None:
    for text in spellings(addr, upper, dotted):
        assert _ipv6_text(text) == reference(text), text
        assert as_ip(text) == reference(text), text


@settings(max_examples=5000, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF:.%xg ", max_size=45))
@example("::ffff:01.2.3.4")
@example("12345::1")
@example("1:2:3:4:5:6:7:8:9")
@example(":1::2")
@example("1:::2")
@example("1:2:3:4:5:6:7::")
@example("::2:3:4:5:6:7:8")
@example("fe80::1%eth0")
@example("fe80::1%")
@example("::1.2.3.4.5")
@example("::1.2.3")
@example("1:2:3:4:5:6:1.2.3.4")
def test_any_text_is_judged_as_ipaddress_does(text: str) -> None:
    assert as_ip(text) == reference(text)
    if ":" in text:
        assert _ipv6_text(text) == reference(text)


def test_text_the_c_library_refuses_is_none_not_an_exception() -> None:
    for text in ("a\x00::1", "::1\udc80", "Ｆ::1", "", ":"):
        assert as_ip(text) is None
