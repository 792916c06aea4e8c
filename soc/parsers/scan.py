"""Hand-written splitters for the commonest line shapes, compiled to C loops over the line's code points.

Each splitter stands for one regular expression of a parser and returns exactly the groups that expression's match
would, or None whenever the line strays from the common shape; the parser then asks its regex, which stays the
reference (``tests/soc/test_scan.py`` compares the two on generated lines). Written by hand, not generated: the
regex engine spends most of its time on the group bookkeeping, which a single forward pass does not need, and no
library on PyPI splits these formats into Python strings faster than ``re`` does.

Interpreted, the loops here are slower than the regexes, so the parsers call them only when compiled
(``cython.compiled``).
"""

from __future__ import annotations

import cython


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.bint)
@cython.locals(ch=cython.Py_UCS4)
def _space(ch):
    """Whether ``ch`` is whitespace to ``re.ASCII``'s ``\\s`` (space, \\t, \\n, \\v, \\f, \\r)."""
    return ch == " " or "\t" <= ch <= "\r"


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.bint)
@cython.locals(ch=cython.Py_UCS4)
def _digit(ch):
    """Whether ``ch`` is an ASCII digit (``re.ASCII``'s ``\\d``)."""
    return "0" <= ch <= "9"


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.Py_ssize_t)
@cython.locals(line=str, i=cython.Py_ssize_t, n=cython.Py_ssize_t)
def _token_end(line, i, n):
    """The end of the run of non-whitespace characters starting at ``i`` (``i`` itself when there is none)."""
    while i < n and not _space(line[i]):
        i += 1
    return i


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.Py_ssize_t)
@cython.locals(line=str, i=cython.Py_ssize_t, n=cython.Py_ssize_t, ch=cython.Py_UCS4)
def _quoted_end(line, i, n):
    """Where the quoted string whose content starts at ``i`` closes (``"`` not escaped by ``\\``), or -1."""
    while i < n:
        ch = line[i]
        if ch == '"':
            return i
        i += 2 if ch == "\\" else 1  # a backslash takes the next character with it
    return -1


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.Py_ssize_t)
@cython.locals(line=str, i=cython.Py_ssize_t, n=cython.Py_ssize_t, most=cython.Py_ssize_t, end=cython.Py_ssize_t)
def _digit_run(line, i, n, most):
    """The end of the run of at most ``most`` ASCII digits starting at ``i`` (``i`` itself when there is none)."""
    end = n if n - i < most else i + most
    while i < end and _digit(line[i]):
        i += 1
    return i


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.Py_ssize_t)
@cython.locals(line=str, i=cython.Py_ssize_t, n=cython.Py_ssize_t, count=cython.Py_ssize_t)
def _digits(line, i, n, count):
    """``i + count`` when ``count`` ASCII digits start at ``i``, else -1."""
    return i + count if _digit_run(line, i, n, count) == i + count else -1


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.bint)
@cython.locals(line=str, i=cython.Py_ssize_t, n=cython.Py_ssize_t, ch=cython.Py_UCS4)
def _at(line, i, n, ch):
    """Whether ``line[i]`` is ``ch``."""
    return i < n and line[i] == ch


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.Py_ssize_t)
@cython.locals(line=str, i=cython.Py_ssize_t, n=cython.Py_ssize_t, j=cython.Py_ssize_t)
def _value_end(line, i, n):
    """The end of the non-empty run of non-whitespace characters starting at ``i``, or -1 (also when ``i`` is -1)."""
    if i < 0:
        return -1
    j = _token_end(line, i, n)
    return j if j > i else -1


@cython.locals(line=str, n=cython.Py_ssize_t, i=cython.Py_ssize_t, j=cython.Py_ssize_t, k=cython.Py_ssize_t,
               hour_start=cython.Py_ssize_t)
def split_access(line: str) -> tuple[str | None, ...] | None:
    """The groups of ``soc.parsers.web._ACCESS.match(line)`` (client, user, ``dd/Mmm/yyyy:hh``, minute, second,
    zone, request, status, size, referrer, user agent) for a combined or common log line, or None."""
    n = len(line)
    j = _token_end(line, 0, n)  # client
    if j == 0 or not _at(line, j, n, " "):
        return None
    client = line[:j]
    k = _token_end(line, j + 1, n)  # ident
    if k == j + 1 or not _at(line, k, n, " "):
        return None
    i = k + 1
    j = _token_end(line, i, n)  # authuser
    if j == i or not _at(line, j, n, " ") or not _at(line, j + 1, n, "["):
        return None
    user = line[i:j]
    hour_start = j + 2
    i = _digit_run(line, hour_start, n, 2)  # dd/Mmm/yyyy:hh
    if i == hour_start or not _at(line, i, n, "/") or i + 4 >= n:
        return None
    if not ("A" <= line[i + 1] <= "Z" and "a" <= line[i + 2] <= "z" and "a" <= line[i + 3] <= "z"):
        return None
    if not _at(line, i + 4, n, "/"):
        return None
    i = _digits(line, i + 5, n, 4)
    if i < 0 or not _at(line, i, n, ":"):
        return None
    i = _digits(line, i + 1, n, 2)
    if i < 0:
        return None
    hour_text = line[hour_start:i]
    if not _at(line, i, n, ":") or _digits(line, i + 1, n, 2) < 0:
        return None
    minute = line[i + 1:i + 3]
    if not _at(line, i + 3, n, ":") or _digits(line, i + 4, n, 2) < 0:
        return None
    second = line[i + 4:i + 6]
    i += 6
    if not _at(line, i, n, " ") or not (_at(line, i + 1, n, "+") or _at(line, i + 1, n, "-")):
        return None
    j = _digits(line, i + 2, n, 2)  # zone: [+-]hh:?mm
    if j < 0:
        return None
    if _at(line, j, n, ":"):
        j += 1
    j = _digits(line, j, n, 2)
    if j < 0 or not _at(line, j, n, "]") or not _at(line, j + 1, n, " ") or not _at(line, j + 2, n, '"'):
        return None
    zone = line[i + 1:j]
    i = j + 3
    j = _quoted_end(line, i, n)  # "request"
    if j < 0:
        return None
    request = line[i:j]
    if not _at(line, j + 1, n, " ") or _digits(line, j + 2, n, 3) < 0 or not _at(line, j + 5, n, " "):
        return None
    status = line[j + 2:j + 5]
    i = j + 6
    if _at(line, i, n, "-"):
        j = i + 1
    else:
        j = _digit_run(line, i, n, n)
        if j == i:
            return None
    size = line[i:j]
    referrer = agent = None
    if _at(line, j, n, " ") and _at(line, j + 1, n, '"'):  # (?: "referrer" "user agent")?
        i = j + 2
        j = _quoted_end(line, i, n)
        if j >= 0 and _at(line, j + 1, n, " ") and _at(line, j + 2, n, '"'):
            k = _quoted_end(line, j + 3, n)
            if k >= 0:
                referrer = line[i:j]
                agent = line[j + 3:k]
    return client, user, hour_text, minute, second, zone, request, status, size, referrer, agent


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.Py_ssize_t)
@cython.locals(line=str, i=cython.Py_ssize_t, n=cython.Py_ssize_t, ch=cython.Py_UCS4)
def _tag_word_end(line, i, n):
    """The end of a run of characters other than whitespace, ``:`` and ``[`` starting at ``i``."""
    while i < n:
        ch = line[i]
        if _space(ch) or ch == ":" or ch == "[":
            break
        i += 1
    return i


@cython.locals(line=str, n=cython.Py_ssize_t, i=cython.Py_ssize_t, j=cython.Py_ssize_t, k=cython.Py_ssize_t,
               start=cython.Py_ssize_t, hour_start=cython.Py_ssize_t)
def split_rfc3164(line: str) -> tuple[str | None, ...] | None:
    """The groups of ``soc.parsers.syslog._RFC3164.match(line)`` (PRI, ``Mmm dd hh``, month, day, hour, minute,
    second, fraction, host, tag, pid, message) for ``[<PRI>]Mmm dd hh:mm:ss[.frac] host tag[pid]: msg``, or None
    (also for a line without a tag, and for a host ending in ``:``, which the parser reads as a tag)."""
    n = len(line)
    pri = None
    i = 0
    if _at(line, 0, n, "<"):
        j = _digit_run(line, 1, n, 3)
        if j == 1 or not _at(line, j, n, ">"):
            return None
        pri = line[1:j]
        i = j + 1
    hour_start = i
    if i + 3 > n or not ("A" <= line[i] <= "Z" and "a" <= line[i + 1] <= "z" and "a" <= line[i + 2] <= "z"):
        return None
    month = line[i:i + 3]
    j = i + 3
    if not _at(line, j, n, " "):
        return None
    while j < n and line[j] == " ":
        j += 1
    k = _digit_run(line, j, n, 2)
    if k == j:
        return None
    day = line[j:k]
    if not _at(line, k, n, " ") or _digits(line, k + 1, n, 2) < 0:
        return None
    hour = line[k + 1:k + 3]
    i = k + 3
    hour_text = line[hour_start:i]
    if not _at(line, i, n, ":") or _digits(line, i + 1, n, 2) < 0:
        return None
    minute = line[i + 1:i + 3]
    if not _at(line, i + 3, n, ":") or _digits(line, i + 4, n, 2) < 0:
        return None
    second = line[i + 4:i + 6]
    i += 6
    frac = None
    if _at(line, i, n, "."):
        j = _digit_run(line, i + 1, n, 6)
        if j == i + 1:
            return None
        frac = line[i + 1:j]
        i = j
    if not _at(line, i, n, " "):
        return None
    while i < n and line[i] == " ":
        i += 1
    j = _token_end(line, i, n)  # host
    if j == i or not _at(line, j, n, " ") or line[j - 1] == ":":
        return None
    host = line[i:j]
    while j < n and line[j] == " ":
        j += 1
    start = j  # the tag: word[ word][[pid]]: then one optional space
    k = _tag_word_end(line, j, n)
    if k == j:
        return None
    if _at(line, k, n, " ") and k + 1 < n and _tag_word_end(line, k + 1, n) > k + 1:
        k = _tag_word_end(line, k + 1, n)
    tag = line[start:k]
    pid = None
    if _at(line, k, n, "["):
        j = _digit_run(line, k + 1, n, 10)
        if j == k + 1 or not _at(line, j, n, "]"):
            return None
        pid = line[k + 1:j]
        k = j + 1
    if not _at(line, k, n, ":"):
        return None
    k += 1
    if _at(line, k, n, " "):
        k += 1
    return pri, hour_text, month, day, hour, minute, second, frac, host, tag, pid, line[k:]


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
@cython.returns(cython.Py_ssize_t)
@cython.locals(line=str, i=cython.Py_ssize_t, n=cython.Py_ssize_t, key=str, m=cython.Py_ssize_t)
def _key(line, i, n, key):
    """The position after ``key`` when the line holds it at ``i``, else -1."""
    m = len(key)
    if i + m > n or not line.startswith(key, i):
        return -1
    return i + m


@cython.locals(msg=str, at=cython.Py_ssize_t, n=cython.Py_ssize_t, i=cython.Py_ssize_t, j=cython.Py_ssize_t,
               k=cython.Py_ssize_t, end=cython.Py_ssize_t)
def split_netfilter(msg: str, at: int) -> tuple[str | None, ...] | None:
    """For a netfilter message whose ``IN=`` is at ``at``: the groups of ``soc.parsers.firewall._PACKET.match``
    (in, out, MAC, source, destination, length) followed by those of ``_PROTO.search`` from its end (protocol,
    source port, destination port), or None."""
    n = len(msg)
    i = _key(msg, at, n, "IN=")
    if i < 0:
        return None
    j = _token_end(msg, i, n)
    in_if = msg[i:j]
    i = _key(msg, j, n, " OUT=")
    if i < 0:
        return None
    j = _token_end(msg, i, n)
    out_if = msg[i:j]
    if not _at(msg, j, n, " "):
        return None
    i = j + 1
    for prefix in ("PHYSIN=", "PHYSOUT="):
        j = _key(msg, i, n, prefix)
        if j >= 0:
            j = _token_end(msg, j, n)
            if not _at(msg, j, n, " "):
                return None
            i = j + 1
    mac = None
    j = _key(msg, i, n, "MAC=")
    if j >= 0:
        k = _token_end(msg, j, n)
        if not _at(msg, k, n, " "):
            return None
        mac = msg[j:k]
        i = k + 1
    i = _key(msg, i, n, "SRC=")
    j = _value_end(msg, i, n)
    if j < 0:
        return None
    src = msg[i:j]
    i = _key(msg, j, n, " DST=")
    j = _value_end(msg, i, n)
    if j < 0:
        return None
    dst = msg[i:j]
    i = _key(msg, j, n, " LEN=")
    if i < 0:
        return None
    j = _digit_run(msg, i, n, n)
    if j == i or not _at(msg, j, n, " "):
        return None
    length = msg[i:j]
    end = j + 1  # _PROTO.search starts here: the first "PROTO=" followed by a non-space
    while True:
        i = msg.find("PROTO=", end)
        if i < 0:
            return None
        i += 6
        j = _token_end(msg, i, n)
        if j > i:
            break
        end = i
    proto = msg[i:j]
    sport = dport = None
    i = _key(msg, j, n, " SPT=")
    if i >= 0:
        k = _digit_run(msg, i, n, 5)
        end = _key(msg, k, n, " DPT=")
        if k > i and end >= 0:
            j = _digit_run(msg, end, n, 5)
            if j > end:
                sport = msg[i:k]
                dport = msg[end:j]
    return in_if, out_if, mac, src, dst, length, proto, sport, dport


@cython.locals(text=str, n=cython.Py_ssize_t, i=cython.Py_ssize_t, start=cython.Py_ssize_t, octets=cython.int,
               value=cython.longlong, width=cython.Py_ssize_t, ch=cython.Py_UCS4)
def is_ipv4(text: str) -> bool:
    """Whether ``text`` is a dotted quad of decimal octets 0-255 without leading zeros: what
    ``soc.parsers.common._IPV4.fullmatch`` accepts."""
    n = len(text)
    if n < 7 or n > 15:
        return False
    i = 0
    octets = 0
    while True:
        start = i
        value = 0
        while i < n:
            ch = text[i]
            if not _digit(ch):
                break
            value = value * 10 + (ord(ch) - 48)
            i += 1
        width = i - start
        if width == 0 or width > 3 or value > 255 or (width > 1 and text[start] == "0"):
            return False
        octets += 1
        if octets == 4:
            return i == n
        if i >= n or text[i] != ".":
            return False
        i += 1


@cython.locals(msg=str, n=cython.Py_ssize_t, i=cython.Py_ssize_t, p=cython.Py_ssize_t, h=cython.Py_ssize_t,
               e=cython.Py_ssize_t, d=cython.Py_ssize_t)
def _user_from_port(msg: str, i: int) -> tuple[str, str, str] | None:
    """``(.*?) from (\\S+) port (\\d{1,5})`` matched at ``i``: the shortest user the rest can follow."""
    n = len(msg)
    p = msg.find(" from ", i)
    while p >= 0:
        h = p + 6
        e = _token_end(msg, h, n)
        if e > h and msg.startswith(" port ", e):
            d = _digit_run(msg, e + 6, n, 5)
            if d > e + 6:
                return msg[i:p], msg[h:e], msg[e + 6:d]
        p = msg.find(" from ", p + 1)
    return None


@cython.locals(msg=str, n=cython.Py_ssize_t, i=cython.Py_ssize_t, j=cython.Py_ssize_t)
def split_ssh_login(msg: str) -> tuple[str | None, ...] | None:
    """The groups of ``soc.parsers.auth._LOGIN.match(msg)`` (verdict, method, ``invalid user ``, user, host, port)
    for ``Accepted|Failed <method> for [invalid user ]<user> from <host> port <port>``, or None."""
    if msg.startswith("Failed "):
        verdict, i = "Failed", 7
    elif msg.startswith("Accepted "):
        verdict, i = "Accepted", 9
    else:
        return None
    n = len(msg)
    j = _token_end(msg, i, n)
    if j == i or not msg.startswith(" for ", j):
        return None
    method = msg[i:j]
    i = j + 5
    if msg.startswith("invalid user ", i):
        rest = _user_from_port(msg, i + 13)
        if rest is not None:
            return verdict, method, "invalid user ", rest[0], rest[1], rest[2]
    rest = _user_from_port(msg, i)
    if rest is None:
        return None
    return verdict, method, None, rest[0], rest[1], rest[2]


@cython.locals(text=str, n=cython.Py_ssize_t, i=cython.Py_ssize_t, j=cython.Py_ssize_t)
def uptime_end(text: str) -> int:
    """Where ``soc.parsers.firewall._UPTIME.match(text)`` (the kernel's ``[  1234.567890] ``) ends, or -1."""
    n = len(text)
    if not _at(text, 0, n, "["):
        return -1
    i = 1
    while i < n and _space(text[i]):
        i += 1
    j = _digit_run(text, i, n, n)
    if j == i or not _at(text, j, n, "."):
        return -1
    i = j + 1
    j = _digit_run(text, i, n, n)
    if j == i or not _at(text, j, n, "]"):
        return -1
    j += 1
    while j < n and _space(text[j]):
        j += 1
    return j
