"""A deterministic corpus of mixed log lines for the ingest benchmark: sshd, kernel firewall and nginx access.

* ``sshd`` — RFC 3164 syslog (``<38>Nov 21 09:12:01 host sshd[pid]: …``): accepted / failed passwords,
  invalid users, disconnects.
* ``firewall`` — netfilter lines the kernel writes to syslog (iptables ``LOG``, nftables ``log``, ufw) with
  ``SRC= DST= PROTO= SPT= DPT=``, IPv4 and IPv6.
* ``nginx`` — the ``combined`` access-log format, IPv4 and IPv6 clients.

Syslog host names and addresses come from the sample register (``inventory/samples/city.yaml``), so register
enrichment hits. The same seed always gives the same lines, and the first *k* lines of a longer corpus are
the corpus of *k* lines.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, NamedTuple

import yaml

SAMPLE_REGISTER: Final = Path(__file__).resolve().parent.parent / "inventory" / "samples" / "city.yaml"
DEFAULT_SEED: Final = 20261121
KINDS: Final = ("sshd", "firewall", "nginx")
KIND_WEIGHTS: Final = (35, 35, 30)
DATASETS: Final = {"sshd": "system.auth", "firewall": "iptables.log", "nginx": "nginx.access"}
START: Final = datetime(2026, 11, 21, 0, 0, 0)  # local wall-clock time (Asia/Shanghai, +0800)

_TEST_NETS: Final = ("192.0.2", "198.51.100", "203.0.113")  # RFC 5737: the "outside world" of the corpus
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_USERS: Final = ("root", "admin", "ops", "deploy", "zhangwei", "liuyang", "wangfang", "ansible", "backup", "monitor")
_BAD_USERS: Final = ("test", "oracle", "ubuntu", "pi", "guest", "ftpuser", "git", "postgres", "user", "support",
                     "hadoop", "es", "minecraft", "admin1", "teamspeak")
_FW_PREFIXES: Final = ("[UFW BLOCK] ", "IPT-DROP-IN: ", "nft-drop: ", "[UFW ALLOW] ", "IPT-ACCEPT: ")
_DPORTS: Final = (22, 22, 22, 23, 80, 443, 443, 3306, 3389, 5432, 6379, 8080, 9200, 445, 1433)
_PATHS: Final = ("/", "/login", "/api/v1/permits", "/api/v1/permits?page={n}", "/zwfw/item/{n}",
                 "/static/js/app.{n}.js", "/static/css/main.css", "/favicon.ico",
                 "/api/v1/search?q=%E7%A4%BE%E4%BF%9D&page={n}",
                 "/wp-login.php", "/.env", "/api/v1/certs/{n}/download", "/robots.txt")
_METHODS: Final = ("GET", "GET", "GET", "GET", "POST", "HEAD")
_STATUSES: Final = (200, 200, 200, 200, 200, 200, 304, 302, 301, 404, 404, 401, 403, 500, 502)
_AGENTS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "curl/7.88.1",
    "python-requests/2.31.0",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
)
_REFERRERS: Final = ("-", "-", "https://www.example.gov.cn/", "https://zwfw.example.gov.cn/index.html")


class RegisterHost(NamedTuple):
    """One host of the register: its name and addresses (either address may be missing)."""

    name: str
    ipv4: str | None
    ipv6: str | None


def load_register_hosts(path: Path = SAMPLE_REGISTER) -> list[RegisterHost]:
    """The hosts of a register YAML file (the sample city by default), in file order; each has an address."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=loader)
    hosts = (RegisterHost(h["name"], h.get("ipv4"), h.get("ipv6")) for h in data["hosts"])
    return [h for h in hosts if h.ipv4 or h.ipv6]


class CorpusGenerator:
    """Seeded generator of ``(kind, line)`` pairs; every call to :meth:`lines` starts again from the seed."""

    def __init__(self, hosts: list[RegisterHost], seed: int = DEFAULT_SEED):
        if not hosts:
            raise ValueError("the corpus needs at least one register host")
        self.hosts = hosts
        self.seed = seed
        gateways = [f"fa:16:3e:00:00:{i:02x}" for i in range(1, 9)]
        self._macs = {h.name: (f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}", gateways[i % 8])
                      for i, h in enumerate(hosts)}

    def lines(self, count: int) -> Iterator[tuple[str, str]]:
        """``count`` pairs of (kind, line), kind one of ``KINDS``; timestamps rise through about a day."""
        rng = random.Random(self.seed)
        ext4 = [f"{net}.{octet}" for net in _TEST_NETS for octet in range(1, 255)]
        ext6 = [f"2001:db8:ff{rng.randrange(256):02x}::{rng.randrange(1, 65536):x}" for _ in range(1000)]
        internal4 = [h.ipv4 for h in self.hosts if h.ipv4]
        clock = 0.0
        second = -1
        stamps = ("", "")
        for _ in range(count):
            clock += rng.random() * 0.17
            if int(clock) != second:
                second = int(clock)
                stamps = _stamps(START + timedelta(seconds=second))
            kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
            if kind == "sshd":
                line = self._sshd(rng, stamps[0], ext4, ext6, internal4)
            elif kind == "firewall":
                line = self._firewall(rng, stamps[0], clock, ext4, ext6)
            else:
                line = self._nginx(rng, stamps[1], ext4, ext6, internal4)
            yield kind, line

    # --- one line of each kind ---------------------------------------------------------------------------
    def _syslog_host(self, rng: random.Random, host: RegisterHost) -> str:
        """How the sender names itself: mostly its register name, sometimes an FQDN or its IPv4 address."""
        pick = rng.random()
        if pick < 0.08 and host.ipv4:
            return host.ipv4
        if pick < 0.13:
            return f"{host.name}.gov.example"
        return host.name

    def _sshd(self, rng: random.Random, stamp: str, ext4: list[str], ext6: list[str], internal4: list[str]) -> str:
        host = rng.choice(self.hosts)
        peer = rng.choice(ext6) if rng.random() < 0.1 else rng.choice(ext4)
        port = rng.randrange(1024, 65536)
        pick = rng.random()
        if pick < 0.30:
            msg = f"Failed password for {rng.choice(_USERS)} from {peer} port {port} ssh2"
        elif pick < 0.45:
            msg = f"Failed password for invalid user {rng.choice(_BAD_USERS)} from {peer} port {port} ssh2"
        elif pick < 0.60:
            msg = f"Invalid user {rng.choice(_BAD_USERS)} from {peer} port {port}"
        elif pick < 0.75:
            method = "publickey" if rng.random() < 0.6 else "password"
            tail = f": RSA SHA256:{rng.getrandbits(128):032x}" if method == "publickey" else ""
            msg = f"Accepted {method} for {rng.choice(_USERS)} from {rng.choice(internal4)} port {port} ssh2{tail}"
        elif pick < 0.85:
            msg = f"Received disconnect from {peer} port {port}:11: Bye Bye [preauth]"
        elif pick < 0.93:
            msg = f"Disconnected from authenticating user {rng.choice(_USERS)} {peer} port {port} [preauth]"
        else:
            msg = f"Connection closed by invalid user {rng.choice(_BAD_USERS)} {peer} port {port} [preauth]"
        return f"<38>{stamp} {self._syslog_host(rng, host)} sshd[{rng.randrange(800, 65000)}]: {msg}"

    def _firewall(self, rng: random.Random, stamp: str, clock: float, ext4: list[str], ext6: list[str]) -> str:
        host = rng.choice(self.hosts)
        v6 = host.ipv4 is None or (host.ipv6 is not None and rng.random() < 0.3)
        local = host.ipv6 if v6 else host.ipv4
        remote = rng.choice(ext6) if v6 else rng.choice(ext4)
        inbound = rng.random() < 0.85
        src, dst = (remote, local) if inbound else (local, remote)
        if inbound:  # destination: the host's own NIC, source: its gateway; outbound packets carry no MAC
            nic, gateway = self._macs[host.name]
            ifaces = f"IN=eth0 OUT= MAC={nic}:{gateway}:{'86:dd' if v6 else '08:00'}"
        else:
            ifaces = "IN= OUT=eth0"
        if v6:
            header = (f"LEN={rng.randrange(40, 1500)} TC=0 HOPLIMIT={rng.randrange(40, 65)} "
                      f"FLOWLBL={rng.randrange(1 << 20)}")
        else:
            header = (f"LEN={rng.randrange(40, 1500)} TOS=0x00 PREC=0x00 TTL={rng.randrange(40, 129)} "
                      f"ID={rng.randrange(65536)} DF")
        pick = rng.random()
        if pick < 0.70:
            proto = (f"PROTO=TCP SPT={rng.randrange(1024, 65536)} DPT={rng.choice(_DPORTS)} "
                     f"WINDOW={rng.randrange(1024, 65536)} RES=0x00 SYN URGP=0")
        elif pick < 0.95:
            proto = f"PROTO=UDP SPT={rng.randrange(1024, 65536)} DPT={rng.choice((53, 123, 161, 500, 1900))} LEN=48"
        else:
            proto = (f"PROTO=ICMPv6 TYPE=128 CODE=0 ID={rng.randrange(65536)} SEQ=1" if v6 else
                     f"PROTO=ICMP TYPE=8 CODE=0 ID={rng.randrange(65536)} SEQ={rng.randrange(1, 100)}")
        uptime = 86400.0 + clock
        msg = (f"[{uptime:12.6f}] {rng.choice(_FW_PREFIXES)}{ifaces} SRC={src} DST={dst} "
               f"{header} {proto}")
        return f"<4>{stamp} {self._syslog_host(rng, host)} kernel: {msg}"

    def _nginx(self, rng: random.Random, stamp: str, ext4: list[str], ext6: list[str], internal4: list[str]) -> str:
        pick = rng.random()
        client = rng.choice(ext6) if pick < 0.12 else rng.choice(internal4) if pick < 0.2 else rng.choice(ext4)
        user = rng.choice(_USERS) if rng.random() < 0.05 else "-"
        path = rng.choice(_PATHS).replace("{n}", str(rng.randrange(1, 100000)))
        if rng.random() < 0.01:  # a citizen's mobile number in a query string: PII the enricher masks
            path = f"/api/v1/appointments?phone=1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        status = rng.choice(_STATUSES)
        size = 0 if status in (301, 302, 304) else rng.randrange(120, 250000)
        return (f'{client} - {user} [{stamp}] "{rng.choice(_METHODS)} {path} HTTP/1.1" {status} {size} '
                f'"{rng.choice(_REFERRERS)}" "{rng.choice(_AGENTS)}"')


def _stamps(ts: datetime) -> tuple[str, str]:
    """(RFC 3164 ``Nov 21 09:12:01``, nginx ``21/Nov/2026:09:12:01 +0800``) for a local time."""
    mon = _MONTHS[ts.month - 1]
    clock = f"{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
    return f"{mon} {ts.day:2d} {clock}", f"{ts.day:02d}/{mon}/{ts.year}:{clock} +0800"


def generate(count: int, seed: int = DEFAULT_SEED,
             hosts: list[RegisterHost] | None = None) -> Iterator[tuple[str, str]]:
    """``count`` (kind, line) pairs from the sample register (or ``hosts``) and ``seed``."""
    return CorpusGenerator(hosts if hosts is not None else load_register_hosts(), seed).lines(count)


def write_corpus(path: Path, count: int, seed: int = DEFAULT_SEED,
                 hosts: list[RegisterHost] | None = None) -> Counter[str]:
    """Write ``count`` lines (LF-terminated UTF-8) to ``path``; returns how many of each kind."""
    kinds: Counter[str] = Counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        buffer: list[str] = []
        for kind, line in generate(count, seed, hosts):
            kinds[kind] += 1
            buffer.append(line)
            if len(buffer) >= 10000:
                fh.write("\n".join(buffer) + "\n")
                buffer.clear()
        if buffer:
            fh.write("\n".join(buffer) + "\n")
    return kinds
