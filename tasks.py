"""invoke tasks: up, test, lint, bench. ``./dev.sh`` bootstraps the venv and system packages, then calls these."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from invoke import Collection, Context, task

ROOT = Path(__file__).resolve().parent


@task(help={"demo": "load the sample city even if the register is not empty", "port": "listen port"})
def up(c: Context, demo: bool = False, port: int = 0) -> None:
    """Migrate var/, create the admin user and start the control plane on its embedded defaults."""
    args = ["up"]
    if demo:
        args.append("--demo")
    if port:
        args += ["--port", str(port)]
    c.run("yunshu " + " ".join(args), pty=False)


@task
def lint(c: Context) -> None:
    """ruff over the whole tree."""
    c.run("ruff check .")


@task(pre=[lint], help={"k": "only tests matching this expression", "workers": "pytest-xdist workers"})
def test(c: Context, k: str = "", workers: int = 2) -> None:
    """The whole test suite: SQLite and a throwaway PostgreSQL, the API, the console in a real browser."""
    select = f" -k '{k}'" if k else ""
    c.run(f"{sys.executable} -m soc.native_build", pty=False)  # the compiled hot path, rebuilt where a source changed
    c.run(f"pytest -n {workers} --dist loadfile{select}", pty=False)


def _installed(program: str) -> bool:
    return bool(shutil.which(program)) or os.access(f"/usr/sbin/{program}", os.X_OK)


def _ensure_package(c: Context, program: str, package: str, without: str) -> bool:
    """Install Debian's ``package`` when ``program`` is missing and we are root, else say what is lost; returns
    whether ``program`` is there now."""
    if _installed(program):
        return True
    if os.geteuid() != 0:
        print(f"{package} is not installed and this is not root: {without} (apt-get install {package})",
              file=sys.stderr)
        return False
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if c.run(f"apt-get install -y -q {package}", env=env, warn=True, pty=False).failed:
        c.run("apt-get update -q", env=env, warn=True, pty=False)
        c.run(f"apt-get install -y -q {package}", env=env, warn=True, pty=False)
    if not _installed(program):
        print(f"{package} could not be installed: {without}", file=sys.stderr)
        return False
    return True


@task(help={"lines": "corpus size", "repeat": "stage 1 and rsyslog: best of this many runs",
            "rsyslog": "compare with rsyslog (installed with apt-get when missing and root)",
            "only": "run only these suites, comma-separated: soc, mlps, dualstack, instructions (default: all)"})
def bench(c: Context, lines: int = 1_000_000, repeat: int = 3, rsyslog: bool = True, only: str = "") -> None:
    """Benchmarks → bench/results/: SOC ingest and detection (issues 3, 4), 等保 evaluation of 1,000 systems
    (issue 7), dual-stack migration of 50 lab hosts (issue 5, needs root), instructions per event of parsing and
    detection under callgrind (needs valgrind); never run by tests."""
    known = {"soc", "mlps", "dualstack", "instructions"}
    suites = {s.strip() for s in only.split(",") if s.strip()} or known
    unknown = suites - known
    if unknown:
        raise SystemExit(f"unknown benchmark suite(s): {', '.join(sorted(unknown))}; choose {', '.join(sorted(known))}")
    with c.cd(str(ROOT)):
        if "soc" in suites:
            if rsyslog:
                _ensure_package(c, "rsyslogd", "rsyslog", "the comparison will be reported as not run")
            skip = "" if rsyslog else " --skip-rsyslog"
            c.run(f"{sys.executable} -m bench.ingest_bench --lines {lines} --repeat {repeat}{skip}", pty=False)
            # issue 4: the same corpus through the rules, and receipt → alert latency at 20k events/s
            c.run(f"{sys.executable} -m bench.detect_bench --lines {lines} --repeat {repeat}", pty=False)
        if "instructions" in suites and _ensure_package(c, "valgrind", "valgrind", "the instruction counts are not "
                                                                                  "taken"):
            c.run(f"{sys.executable} -m bench.instructions", pty=False)
        if "mlps" in suites:
            c.run(f"{sys.executable} -m bench.mlps_bench", pty=False)
        if "dualstack" in suites:
            if os.geteuid() != 0:
                print("dual-stack benchmark skipped: the lab needs root", file=sys.stderr)
            else:
                c.run(f"{sys.executable} -m bench.dualstack_bench --hosts 50", pty=False)


def _lab_home() -> Path:
    from core.settings import load_settings

    return load_settings(create_home=True).home


@task(help={"hosts": "how many lab hosts (network namespaces with sshd)"})
def lab_up(c: Context, hosts: int = 5) -> None:
    """Network lab (issue 5, needs root): hosts in namespaces on a bridge, sshd each, dnsmasq, nginx; written into
    the register as department LAB (its IPv6 /64 from IPAM on the router and the DNS server)."""
    from core.runtime import open_runtime
    from infra.lab_register import start_registered_lab

    rt = open_runtime()
    lab = start_registered_lab(rt, hosts)
    for host in lab.hosts():
        print(f"{host.name:10} {host.ipv4:15} {host.namespace}{'  nginx' if host.web else ''}")
    state = lab.state()
    print(f"IPv6 /64 (IPAM, department LAB): {state['ipv6_lan']}; router {state['gateway']['ipv6']}, "
          f"DNS {state['dns']['ipv6']}")


@task
def lab_down(c: Context) -> None:
    """Remove the network lab (idempotent)."""
    from infra.lab import Lab

    Lab(_lab_home()).down()


ns = Collection(up, lint, test, bench)
ns.add_collection(Collection("lab", up=lab_up, down=lab_down))
