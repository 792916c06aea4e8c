"""The network lab: hosts as Linux network namespaces on one bridge, each with its own sshd, plus a DNS server.

Layout (all inside namespaces this module creates; nothing is routed off the machine):

* ``ys-core`` holds the bridge ``br0`` and is the router: 198.18.200.1/24 (IPv6 comes with the migration);
* ``ys-dns`` runs dnsmasq on 198.18.200.2 for the zone ``lab.yunshu.example``;
* ``ys-hNN`` are the hosts, 198.18.200.(10+N), each with sshd in a private mount namespace (own tmpfs /run) and,
  on every other host, nginx as a 政务网站 listening on IPv4 only;
* the controller (this machine's root namespace) reaches the bridge through ``ys-ctl`` at 198.18.200.254.

Everything per host lives under ``$YUNSHU_HOME/lab/`` (configs, host keys, pid files, logs). ``up`` and ``down``
are idempotent. Needs root.
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

SUBNET = ipaddress.IPv4Network("198.18.200.0/24")
GATEWAY = SUBNET.network_address + 1
DNS = SUBNET.network_address + 2
CONTROLLER = SUBNET.network_address + 254
ZONE = "lab.yunshu.example"
CORE, DNS_NS = "ys-core", "ys-dns"
MAX_HOSTS = 200


class LabError(RuntimeError):
    """The lab cannot be built here (the message says what is missing)."""


@dataclass(frozen=True)
class LabHost:
    name: str
    namespace: str
    ipv4: str
    web: bool  # runs nginx (IPv4 only until the dual-stack migration)


def lab_hosts(count: int) -> list[LabHost]:
    """The hosts of a lab of ``count`` (names, namespaces and addresses are fixed by position)."""
    if not 1 <= count <= MAX_HOSTS:
        raise ValueError(f"hosts must be between 1 and {MAX_HOSTS}, not {count}")
    return [LabHost(f"lab-h{i:02d}", f"ys-h{i:02d}", str(SUBNET.network_address + 10 + i), web=i % 2 == 1)
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


def _attach(namespace: str, address: str, prefixlen: int, inside: str, outside: str) -> None:
    """A veth pair from ``namespace`` (``inside``) to the bridge in ys-core (``outside``)."""
    if not _link_exists(CORE, outside):
        if namespace:  # made inside the namespaces directly, so no name ever clashes with this machine's links
            temporary = f"{outside[:11]}-in"
            _run("ip", "link", "add", temporary, "netns", namespace, "type", "veth", "peer", "name", outside,
                 "netns", CORE)
            _ns(namespace, "ip", "link", "set", temporary, "name", inside)
        else:
            _run("ip", "link", "add", inside, "type", "veth", "peer", "name", outside, "netns", CORE)
    _ns(CORE, "ip", "link", "set", outside, "master", "br0", "up")
    run = (lambda *a: _ns(namespace, *a)) if namespace else (lambda *a: _run(*a))
    run("ip", "addr", "replace", f"{address}/{prefixlen}", "dev", inside)
    run("ip", "link", "set", inside, "up")
    if namespace:
        run("ip", "link", "set", "lo", "up")


def _pid_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


class Lab:
    """Builds and removes the lab under ``home/lab``."""

    def __init__(self, home: Path):
        self.dir = home.resolve() / "lab"
        self.key = self.dir / "id_ed25519"

    @property
    def state_file(self) -> Path:
        return self.dir / "lab.json"

    def hosts(self) -> list[LabHost]:
        if not self.state_file.exists():
            return []
        return [LabHost(**h) for h in json.loads(self.state_file.read_text())["hosts"]]

    def up(self, count: int) -> list[LabHost]:
        """Create (or complete) a lab of ``count`` hosts; running parts are left as they are."""
        _require_root_and_tools()
        hosts = lab_hosts(count)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        if not self.key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "yunshu-lab", "-f", str(self.key))
        existing = namespaces()
        for namespace in (CORE, DNS_NS, *(h.namespace for h in hosts)):
            if namespace not in existing:
                _run("ip", "netns", "add", namespace)
        if not _link_exists(CORE, "br0"):
            _ns(CORE, "ip", "link", "add", "br0", "type", "bridge")
        _ns(CORE, "ip", "addr", "replace", f"{GATEWAY}/{SUBNET.prefixlen}", "dev", "br0")
        _ns(CORE, "ip", "link", "set", "br0", "up")
        _ns(CORE, "ip", "link", "set", "lo", "up")
        _ns(CORE, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        _attach("", str(CONTROLLER), 32, "ys-ctl", "ys-ctl-br")
        _run("ip", "route", "replace", str(SUBNET), "dev", "ys-ctl")
        _attach(DNS_NS, str(DNS), SUBNET.prefixlen, "eth0", "ys-dns-br")
        for host in hosts:
            _attach(host.namespace, host.ipv4, SUBNET.prefixlen, "eth0", f"{host.namespace}-br")
            _ns(host.namespace, "ip", "route", "replace", "default", "via", str(GATEWAY))
            self._start_sshd(host)
            if host.web:
                self._start_nginx(host)
        self._start_dns(hosts)
        self.state_file.write_text(json.dumps({"hosts": [asdict(h) for h in hosts]}, indent=2))
        self._wait_for_ssh(hosts)
        return hosts

    def _start_sshd(self, host: LabHost) -> None:
        hdir = self.dir / host.name
        hdir.mkdir(exist_ok=True)
        if not (hdir / "ssh_host_ed25519_key").exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hdir / "ssh_host_ed25519_key"))
        (hdir / "authorized_keys").write_text((self.key.with_suffix(".pub")).read_text())
        config = hdir / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress {host.ipv4}", f"HostKey {hdir / 'ssh_host_ed25519_key'}", f"PidFile {hdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {hdir / 'authorized_keys'}", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "StrictModes no", "UsePAM no", "Subsystem sftp internal-sftp",
            "MaxStartups 100:30:200", "",
        ]))
        if _pid_alive(hdir / "sshd.pid"):
            return
        script = ("mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd && "
                  f"exec /usr/sbin/sshd -f {config} -E {hdir / 'sshd.log'}")
        _ns(host.namespace, "unshare", "-m", "--propagation", "private", "sh", "-c", script)

    def _start_nginx(self, host: LabHost) -> None:
        hdir = self.dir / host.name
        site = hdir / "www"
        site.mkdir(exist_ok=True)
        page = f"<!doctype html><title>{host.name}</title><h1>示例市政务网站 {host.name}</h1>\n"
        (site / "index.html").write_text(page, encoding="utf-8")
        conf = hdir / "nginx.conf"
        # workers run as root: the lab's files live under $YUNSHU_HOME, which is private (0700) to root
        conf.write_text(f"""user root;
worker_processes 1;
pid {hdir / 'nginx.pid'};
error_log {hdir / 'nginx-error.log'};
events {{ worker_connections 64; }}
http {{
  access_log {hdir / 'nginx-access.log'};
  client_body_temp_path {hdir}/tmp-body; proxy_temp_path {hdir}/tmp-proxy; fastcgi_temp_path {hdir}/tmp-fcgi;
  uwsgi_temp_path {hdir}/tmp-uwsgi; scgi_temp_path {hdir}/tmp-scgi;
  server {{ listen {host.ipv4}:80; root {site}; charset utf-8; }}
}}
""")
        if not _pid_alive(hdir / "nginx.pid"):
            _ns(host.namespace, "/usr/sbin/nginx", "-c", str(conf))

    def _start_dns(self, hosts: list[LabHost]) -> None:
        hosts_file = self.dir / "dns-hosts"
        hosts_file.write_text("".join(f"{h.ipv4} {h.name}.{ZONE} {h.name}\n" for h in hosts))
        pidfile = self.dir / "dnsmasq.pid"
        if _pid_alive(pidfile):  # reread the hosts file
            os.kill(int(pidfile.read_text()), 1)
            return
        _ns(DNS_NS, "/usr/sbin/dnsmasq", "--user=root", f"--pid-file={pidfile}", f"--listen-address={DNS}",
            "--bind-interfaces",
            "--no-resolv", "--no-hosts", f"--addn-hosts={hosts_file}", f"--local=/{ZONE}/", "--domain-needed",
            f"--log-facility={self.dir / 'dnsmasq.log'}")

    def _wait_for_ssh(self, hosts: list[LabHost], timeout: float = 20.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        for host in hosts:
            while True:
                try:
                    with socket.create_connection((host.ipv4, 22), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise LabError(f"sshd on {host.name} ({host.ipv4}) did not answer") from None
                    time.sleep(0.1)

    def down(self) -> None:
        """Stop every lab process and delete the namespaces (and with them the links)."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, bridges)")
        for pidfile in [*self.dir.glob("*/sshd.pid"), *self.dir.glob("*/nginx.pid"), self.dir / "dnsmasq.pid"]:
            if _pid_alive(pidfile):
                os.kill(int(pidfile.read_text()), 15)
            pidfile.unlink(missing_ok=True)
        for namespace in sorted(namespaces()):
            if namespace in (CORE, DNS_NS) or (namespace.startswith("ys-h") and namespace[4:].isdigit()):
                for pid in _run("ip", "netns", "pids", namespace, check=False).stdout.split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), 9)
                _run("ip", "netns", "del", namespace, check=False)
        if _link_exists(None, "ys-ctl"):
            _run("ip", "link", "del", "ys-ctl", check=False)
        self.state_file.unlink(missing_ok=True)
