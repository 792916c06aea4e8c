"""The network lab: hosts as Linux network namespaces on one bridge, each with its own sshd, plus a DNS server.

Layout of lab ``N`` (prefix ``ys`` for lab 0, ``ysN`` otherwise; nothing is routed off the machine):

* ``<prefix>-core`` holds the bridge ``br0`` and is the router: 198.18.(200+N).1/24, and ``::1`` of the lab's IPv6
  /64 when one is given (the IPv6 plan comes from IPAM; hosts get theirs from the dual-stack migration);
* ``<prefix>-dns`` is the DNS server ``lab-dns`` (198.18.(200+N).2, ``::2``): dnsmasq for ``lab.yunshu.example``,
  reading every file in its ``/etc/dnsmasq.hosts.d`` (re-read on SIGHUP), with its own sshd so playbooks can add
  AAAA records;
* ``<prefix>-hNN`` are the hosts ``lab-hNN``, 198.18.(200+N).(10+NN), on every other host nginx as a 政务网站
  listening on IPv4 only;
* the controller (this machine's root namespace) reaches the bridge through ``<prefix>-ctl`` at .254 (IPv4 only:
  Ansible connects over IPv4, IPv6 is verified from inside the lab).

Every lab machine (hosts and DNS) runs in a private mount and UTS namespace of its own (its own host name): a tmpfs
``/run``, copy-on-write
overlays of ``/etc`` and ``/var/log`` whose upper layers live under ``$YUNSHU_HOME/lab/<name>/``, and an empty
``/root`` of its own (so this machine's shell start-up files never run in lab sessions). Playbooks can
therefore harden sshd, PAM, sysctl, nftables or rsyslog on a lab host without touching this machine's files;
sshd reads ``/etc/ssh/sshd_config`` (with ``Include /etc/ssh/sshd_config.d/*.conf``), nginx
``/etc/nginx/yunshu-lab.conf`` (sites in ``/etc/nginx/yunshu-lab.d/``); pid files are in ``/run``. ``up`` and
``down`` are idempotent; ``down`` discards the hosts' state. Needs root.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ZONE = "lab.yunshu.example"
MAX_HOSTS = 200
MAX_LAB_ID = 9
DNS_NAME = "lab-dns"
SUBNET = ipaddress.IPv4Network("198.18.200.0/24")  # lab 0
GATEWAY = SUBNET.network_address + 1
DNS = SUBNET.network_address + 2
CONTROLLER = SUBNET.network_address + 254
CORE, DNS_NS = "ys-core", "ys-dns"
IPV6_GATEWAY_OFFSET, IPV6_DNS_OFFSET = 1, 2


class LabError(RuntimeError):
    """The lab cannot be built here (the message says what is missing)."""


@dataclass(frozen=True)
class LabHost:
    name: str
    namespace: str
    ipv4: str
    web: bool  # runs nginx (IPv4 only until the dual-stack migration)


def lab_subnet(lab_id: int = 0) -> ipaddress.IPv4Network:
    """The IPv4 /24 of lab ``lab_id`` (198.18.200.0/24 for lab 0)."""
    if not 0 <= lab_id <= MAX_LAB_ID:
        raise ValueError(f"lab id must be between 0 and {MAX_LAB_ID}, not {lab_id}")
    return ipaddress.IPv4Network(f"198.18.{200 + lab_id}.0/24")


def lab_prefix(lab_id: int = 0) -> str:
    """Namespace and link name prefix of lab ``lab_id``."""
    lab_subnet(lab_id)
    return "ys" if lab_id == 0 else f"ys{lab_id}"


def lab_hosts(count: int, lab_id: int = 0) -> list[LabHost]:
    """The hosts of a lab of ``count`` (names, namespaces and addresses are fixed by position)."""
    if not 1 <= count <= MAX_HOSTS:
        raise ValueError(f"hosts must be between 1 and {MAX_HOSTS}, not {count}")
    subnet, prefix = lab_subnet(lab_id), lab_prefix(lab_id)
    return [LabHost(f"lab-h{i:02d}", f"{prefix}-h{i:02d}", str(subnet.network_address + 10 + i), web=i % 2 == 1)
            for i in range(1, count + 1)]


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done


def _ns(namespace: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run("ip", "netns", "exec", namespace, *args, check=check)


def namespaces() -> set[str]:
    out = _run("ip", "netns", "list", check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _require_root_and_tools() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, bridges)")
    missing = [tool for tool in ("ip", "/usr/sbin/sshd", "/usr/sbin/dnsmasq", "/usr/sbin/nginx", "ssh-keygen")
               if not (shutil.which(tool) or os.access(tool, os.X_OK))]
    if missing:
        raise LabError(f"missing {', '.join(missing)}: "
                       "apt-get install iproute2 openssh-server dnsmasq-base nginx-light")


def _link_exists(namespace: str | None, name: str) -> bool:
    cmd = ("ip", "link", "show", name)
    done = _ns(namespace, *cmd, check=False) if namespace else _run(*cmd, check=False)
    return done.returncode == 0


def _pid_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _sshd_config() -> str:
    return "\n".join([
        "Include /etc/ssh/sshd_config.d/*.conf", "AddressFamily any",
        "HostKey /etc/ssh/ssh_host_ed25519_key", "PidFile /run/sshd.pid",
        "AuthorizedKeysFile /etc/ssh/lab_authorized_keys", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "StrictModes no", "UsePAM no", "Subsystem sftp internal-sftp",
        "MaxStartups 100:30:200", "",
    ])


class Lab:
    """Builds and removes lab ``lab_id`` under ``home/lab`` (``home/lab<N>`` for N > 0)."""

    def __init__(self, home: Path, lab_id: int = 0):
        self.lab_id = lab_id
        self.prefix = lab_prefix(lab_id)
        self.subnet = lab_subnet(lab_id)
        self.gateway = self.subnet.network_address + 1
        self.dns = self.subnet.network_address + 2
        self.controller = self.subnet.network_address + 254
        self.core, self.dns_ns, self.ctl = f"{self.prefix}-core", f"{self.prefix}-dns", f"{self.prefix}-ctl"
        self.dir = home.resolve() / ("lab" if lab_id == 0 else f"lab{lab_id}")
        self.key = self.dir / "id_ed25519"

    @property
    def state_file(self) -> Path:
        return self.dir / "lab.json"

    def hosts(self) -> list[LabHost]:
        return [LabHost(**h) for h in self.state().get("hosts", [])]

    def state(self) -> dict:
        """What ``up`` recorded: hosts, the IPv6 /64 if any, the DNS server."""
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def ipv6_addresses(self, ipv6_lan: ipaddress.IPv6Network) -> tuple[str, str]:
        """Router and DNS server addresses in the lab's IPv6 /64."""
        base = ipv6_lan.network_address
        return str(base + IPV6_GATEWAY_OFFSET), str(base + IPV6_DNS_OFFSET)

    def up(self, count: int, ipv6_lan: ipaddress.IPv6Network | str | None = None,
           dns_ipv6: str | None = None) -> list[LabHost]:
        """Create (or complete) a lab of ``count`` hosts; running parts are left as they are.

        ``ipv6_lan``: the lab's IPv6 /64 from IPAM; the router gets ``::1`` in it and the DNS server ``dns_ipv6``
        (its IPAM address; ``::2`` when not given)."""
        _require_root_and_tools()
        hosts = lab_hosts(count, self.lab_id)
        lan = ipaddress.IPv6Network(ipv6_lan) if ipv6_lan is not None else None
        if lan is not None and lan.prefixlen != 64:
            raise ValueError(f"the lab's IPv6 network must be a /64, not {lan}")
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        if not self.key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "yunshu-lab", "-f", str(self.key))
        existing = namespaces()
        for namespace in (self.core, self.dns_ns, *(h.namespace for h in hosts)):
            if namespace not in existing:
                _run("ip", "netns", "add", namespace)
        if not _link_exists(self.core, "br0"):
            _ns(self.core, "ip", "link", "add", "br0", "type", "bridge")
        _ns(self.core, "ip", "addr", "replace", f"{self.gateway}/{self.subnet.prefixlen}", "dev", "br0")
        _ns(self.core, "ip", "link", "set", "br0", "up")
        _ns(self.core, "ip", "link", "set", "lo", "up")
        _ns(self.core, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self._attach("", str(self.controller), 32, self.ctl, f"{self.ctl}-br")
        _run("ip", "route", "replace", str(self.subnet), "dev", self.ctl)
        self._attach(self.dns_ns, str(self.dns), self.subnet.prefixlen, "eth0", f"{self.dns_ns}-br")
        dns6 = None
        if lan is not None:
            router6, dns6 = self.ipv6_addresses(lan)
            dns6 = dns_ipv6 or dns6
            if ipaddress.IPv6Address(dns6) not in lan:
                raise ValueError(f"the DNS server's IPv6 address {dns6} is outside the lab network {lan}")
            _ns(self.core, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1")
            _ns(self.core, "ip", "-6", "addr", "replace", f"{router6}/64", "dev", "br0", "nodad")
            _ns(self.dns_ns, "ip", "-6", "addr", "replace", f"{dns6}/64", "dev", "eth0", "nodad")
            _ns(self.dns_ns, "ip", "-6", "route", "replace", "default", "via", router6)
        for host in hosts:
            self._attach(host.namespace, host.ipv4, self.subnet.prefixlen, "eth0", f"{host.namespace}-br")
            _ns(host.namespace, "ip", "route", "replace", "default", "via", str(self.gateway))
            self._start_machine(host.name, host.namespace, str(host.ipv4), web=host.web)
        self._start_machine(DNS_NAME, self.dns_ns, str(self.dns), dns_hosts=hosts, dns_ipv6=dns6)
        self.state_file.write_text(json.dumps({
            "lab_id": self.lab_id, "hosts": [asdict(h) for h in hosts], "ipv6_lan": str(lan) if lan else None,
            "dns": {"name": DNS_NAME, "namespace": self.dns_ns, "ipv4": str(self.dns),
                    "ipv6": dns6},
            "gateway": {"ipv4": str(self.gateway), "ipv6": self.ipv6_addresses(lan)[0] if lan else None},
        }, indent=2))
        self._wait_for_ssh([str(self.dns), *(h.ipv4 for h in hosts)])
        return hosts

    def _attach(self, namespace: str, address: str, prefixlen: int, inside: str, outside: str) -> None:
        """A veth pair from ``namespace`` (``inside``) to the bridge in the core namespace (``outside``)."""
        if not _link_exists(self.core, outside):
            if namespace:  # made inside the namespaces directly, so no name ever clashes with this machine's links
                temporary = f"{outside[:11]}-in"
                _run("ip", "link", "add", temporary, "netns", namespace, "type", "veth", "peer", "name", outside,
                     "netns", self.core)
                _ns(namespace, "ip", "link", "set", temporary, "name", inside)
            else:
                _run("ip", "link", "add", inside, "type", "veth", "peer", "name", outside, "netns", self.core)
        _ns(self.core, "ip", "link", "set", outside, "master", "br0", "up")
        run = (lambda *a: _ns(namespace, *a)) if namespace else (lambda *a: _run(*a))
        run("ip", "addr", "replace", f"{address}/{prefixlen}", "dev", inside)
        run("ip", "link", "set", inside, "up")
        if namespace:
            run("ip", "link", "set", "lo", "up")

    def _seed_etc(self, name: str, ipv4: str, web: bool, dns_hosts: list[LabHost] | None) -> Path:
        """The machine's own files in the upper layer of its /etc (written once, before the first mount)."""
        hdir = self.dir / name
        etc = hdir / "etc.upper"
        if etc.exists():
            return hdir
        for sub in ("etc.work", "log.upper", "log.work", "www", "root"):
            (hdir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(hdir / "root", 0o700)  # the machine's own root home: this machine's dotfiles never run there
        (etc / "ssh" / "sshd_config.d").mkdir(parents=True)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(etc / "ssh" / "ssh_host_ed25519_key"))
        (etc / "ssh" / "lab_authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        (etc / "ssh" / "sshd_config").write_text(_sshd_config())
        (etc / "hostname").write_text(f"{name}\n")
        (etc / "yunshu-lab.json").write_text(json.dumps({"name": name, "lab_id": self.lab_id, "ipv4": ipv4}))
        if web:
            (hdir / "www" / "index.html").write_text(
                f"<!doctype html><title>{name}</title><h1>示例市政务网站 {name}</h1>\n", encoding="utf-8")
            sites = etc / "nginx" / "yunshu-lab.d"
            sites.mkdir(parents=True)
            # workers run as root: the lab's files live under $YUNSHU_HOME, which is private (0700) to root
            (etc / "nginx" / "yunshu-lab.conf").write_text("""user root;
worker_processes 1;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
events { worker_connections 64; }
http {
  access_log /var/log/nginx/access.log;
  client_body_temp_path /run/nginx-body; proxy_temp_path /run/nginx-proxy; fastcgi_temp_path /run/nginx-fcgi;
  uwsgi_temp_path /run/nginx-uwsgi; scgi_temp_path /run/nginx-scgi;
  include /etc/nginx/yunshu-lab.d/*.conf;
}
""")
            (sites / "site.conf").write_text(
                f"server {{\n  listen {ipv4}:80;\n  root {hdir / 'www'};\n  charset utf-8;\n}}\n")
        if dns_hosts is not None:
            records = etc / "dnsmasq.hosts.d"
            records.mkdir(parents=True)
            (records / "lab-ipv4").write_text(
                f"{self.dns} {DNS_NAME}.{ZONE} {DNS_NAME}\n"
                + "".join(f"{h.ipv4} {h.name}.{ZONE} {h.name}\n" for h in dns_hosts))
        return hdir

    def _start_machine(self, name: str, namespace: str, ipv4: str, web: bool = False,
                       dns_hosts: list[LabHost] | None = None, dns_ipv6: str | None = None) -> None:
        """sshd (and nginx or dnsmasq) in the machine's private mount namespace with its own /run, /etc, /var/log."""
        hdir = self._seed_etc(name, ipv4, web, dns_hosts)
        if dns_hosts is not None:  # hosts added by a larger `up`: their A records
            records = hdir / "etc.upper" / "dnsmasq.hosts.d" / "lab-ipv4"
            wanted = (f"{self.dns} {DNS_NAME}.{ZONE} {DNS_NAME}\n"
                      + "".join(f"{h.ipv4} {h.name}.{ZONE} {h.name}\n" for h in dns_hosts))
            if records.read_text() != wanted:
                records.write_text(wanted)
                if (hdir / "dnsmasq.pid").exists() and _pid_alive(hdir / "dnsmasq.pid"):
                    os.kill(int((hdir / "dnsmasq.pid").read_text()), 1)
        pidfile = hdir / "init.pid"  # the machine's sshd, seen from the root namespace
        if _pid_alive(pidfile):
            return
        steps = [
            "mount -t tmpfs -o mode=755 tmpfs /run", "mkdir -m 755 /run/sshd",
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={hdir}/etc.upper,workdir={hdir}/etc.work /etc",
            f"mount -t overlay overlay -o lowerdir=/var/log,upperdir={hdir}/log.upper,workdir={hdir}/log.work "
            "/var/log",
            f"mount --bind {hdir}/root /root",
            f"hostname {name}",
        ]
        if web:
            steps += ["mkdir -p /var/log/nginx", "/usr/sbin/nginx -c /etc/nginx/yunshu-lab.conf"]
        if dns_hosts is not None:
            listen = [f"--listen-address={self.dns}"]
            if dns_ipv6 is not None:
                listen.append(f"--listen-address={dns_ipv6}")
            steps.append(" ".join([
                "/usr/sbin/dnsmasq", "--user=root", "--pid-file=/run/dnsmasq.pid", *listen, "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--addn-hosts=/etc/dnsmasq.hosts.d", f"--local=/{ZONE}/",
                "--domain-needed", "--log-facility=/var/log/dnsmasq.log"]))
            steps.append(f"cp /run/dnsmasq.pid {hdir}/dnsmasq.pid")
        steps += [f"echo $$ > {pidfile}", "exec /usr/sbin/sshd -D -f /etc/ssh/sshd_config -E /var/log/sshd.log"]
        log = open(hdir / "init.log", "ab")  # noqa: SIM115 — handed to the daemon, closed below
        try:
            subprocess.Popen(["ip", "netns", "exec", namespace, "unshare", "-m", "-u", "--propagation", "private",
                              "sh", "-ec", " && ".join(steps)], stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while not _pid_alive(pidfile):
            if time.monotonic() > deadline:
                raise LabError(f"{name} did not start: {(hdir / 'init.log').read_text(errors='replace')[-500:]}")
            time.sleep(0.05)

    def _wait_for_ssh(self, addresses: list[str], timeout: float = 20.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        for address in addresses:
            while True:
                try:
                    with socket.create_connection((address, 22), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise LabError(f"sshd on {address} did not answer") from None
                    time.sleep(0.1)

    def run_in(self, namespace: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command in a lab namespace (network only: the machine's mount namespace is its sshd's)."""
        return _ns(namespace, *args, check=check)

    def down(self) -> None:
        """Stop every lab process, delete the namespaces (and with them the links) and the machines' state."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, bridges)")
        ours = {self.core, self.dns_ns}
        for namespace in sorted(namespaces()):
            suffix = namespace.removeprefix(f"{self.prefix}-h")
            if namespace in ours or (suffix != namespace and suffix.isdigit()):
                for pid in _run("ip", "netns", "pids", namespace, check=False).stdout.split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), 9)
                _run("ip", "netns", "del", namespace, check=False)
        if _link_exists(None, self.ctl):
            _run("ip", "link", "del", self.ctl, check=False)
        if self.dir.exists():
            for machine in self.dir.iterdir():
                if machine.is_dir():
                    shutil.rmtree(machine, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
