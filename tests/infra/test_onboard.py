"""On-boarding then evidence on lab hosts (issue 5): weak defaults before, the 等保 baseline after, an idempotent
rerun, evidence that changes nothing even in check mode, sshd still reachable with the lab key, decommission only
with confirmation; the playbooks pass ansible-lint's production profile. Lab id 7; CI runs as root."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infra.ansible_run import PLAYBOOKS, PlaybookResult, run_playbook, write_inventory
from infra.evidence_facts import HostEvidence, evidence_from_events, host_facts_for_checks, parse_evidence
from policies.mlps.evidence import HostFacts
from tests.infra.lab_env import LabEnv, lab_env

LAB_ID = 7
HOSTS = ("lab-h01", "lab-h02")  # lab-h01 stays at 等保 level 2 (register), lab-h02 is set to level 3
LIMIT = ",".join(HOSTS)
OWN_ETC = ("pam.d/common-auth", "pam.d/common-account", "pam.d/common-password", "security/faillock.conf",
           "security/pwquality.conf", "login.defs", "ssh/sshd_config", "ssh/sshd_config.d", "profile.d",
           "rsyslog.d", "audit")
# lab hosts share this machine's /usr: what is installed here is what they have
PWQUALITY = Path(f"/usr/lib/{os.uname().machine}-linux-gnu/security/pam_pwquality.so")
AUDITCTL = Path("/usr/sbin/auditctl")
MODULE_PATH = PLAYBOOKS / "roles" / "evidence_host" / "library" / "yunshu_host_evidence.py"


def tree_digest(root: Path) -> str:
    """Digest of every path, type, mode and content under ``root`` (a machine's /etc upper layer, or files)."""
    digest = hashlib.sha256()
    paths = sorted(root.rglob("*")) if root.is_dir() else [root]
    for path in paths:
        st = path.lstat()
        digest.update(f"{path.relative_to(root.parent)}|{st.st_mode:o}|".encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def own_etc_digest() -> dict[str, str | None]:
    return {rel: tree_digest(Path("/etc", rel)) if Path("/etc", rel).exists() else None for rel in OWN_ETC}


class SyslogReceiver:
    """A TCP listener on the lab's controller address standing in for Yunshu's receiver (keeps what arrives)."""

    def __init__(self, address: str):
        self.sock = socket.create_server((address, 0))
        self.sock.settimeout(0.5)
        self.address, self.port = self.sock.getsockname()[:2]
        self.data = bytearray()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        with conn:
            while not self.stopped.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                self.data.extend(chunk)

    def wait_for(self, marker: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.data:
                return True
            time.sleep(0.2)
        return marker in self.data

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


@dataclass
class Onboarded:
    env: LabEnv
    inventory: Path
    work: Path
    receiver: SyslogReceiver
    before: dict[str, dict[str, Any]] = field(default_factory=dict)
    weak_mac_login_before: int = -1
    own_etc_before: dict[str, str | None] = field(default_factory=dict)
    dry_run: PlaybookResult | None = None
    dry_run_untouched: bool = False
    first: PlaybookResult | None = None
    second: PlaybookResult | None = None

    def run(self, playbook: str, name: str, **kwargs: Any) -> PlaybookResult:
        kwargs.setdefault("limit", LIMIT)
        return run_playbook(playbook, self.inventory, self.work / name, timeout=1800, **kwargs)

    def ssh(self, host: str, *command: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        address = str(self.env.lab.dns) if host == "lab-dns" else next(
            h.ipv4 for h in self.env.lab.hosts() if h.name == host)
        return subprocess.run(
            ["ssh", "-i", str(self.env.lab.key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", *options, f"root@{address}",
             shlex.join(command)],  # ssh hands the remote shell one string
            capture_output=True, text=True, timeout=60)

    def upper(self, host: str) -> Path:
        return self.env.lab.dir / host / "etc.upper"


WEAK_MAC = ("-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha1")


@pytest.fixture(scope="module")
def onboarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Onboarded]:
    home = tmp_path_factory.mktemp("onboard")
    with lab_env(home, hosts=len(HOSTS), lab_id=LAB_ID) as env:
        with env.rt.transaction() as session:
            inventory = write_inventory(session, home / "inventory.yml", lab=env.lab,
                                        hostvars={"lab-h02": {"gov_mlps_level": 3}})
        receiver = SyslogReceiver(str(env.lab.controller))
        state = Onboarded(env, inventory, home / "runs", receiver)
        target = f"{receiver.address}:{receiver.port}"
        before = state.run("evidence.yml", "evidence-before")
        assert before.status == "successful", before.stats
        state.before = evidence_from_events(before.events)
        state.weak_mac_login_before = state.ssh("lab-h01", "true", options=WEAK_MAC).returncode
        state.own_etc_before = own_etc_digest()
        uppers = {h: tree_digest(state.upper(h)) for h in HOSTS}
        state.dry_run = state.run("onboard.yml", "onboard-check", check=True,
                                  extravars={"yunshu_syslog_target": target})
        state.dry_run_untouched = {h: tree_digest(state.upper(h)) for h in HOSTS} == uppers
        state.first = state.run("onboard.yml", "onboard-1", extravars={"yunshu_syslog_target": target})
        state.second = state.run("onboard.yml", "onboard-2", extravars={"yunshu_syslog_target": target})
        try:
            yield state
        finally:
            receiver.close()


def test_evidence_before_onboarding_shows_weak_defaults(onboarded: Onboarded) -> None:
    assert set(onboarded.before) == set(HOSTS)
    for host, facts in onboarded.before.items():
        ev = HostEvidence.model_validate(facts)
        assert ev.faillock.deny is None and not ev.faillock.enforced, host
        assert ev.faillock.pam_nullok  # Debian's default common-auth lets empty passwords through
        assert ev.session.tmout is None and not ev.session.tmout_readonly
        assert ev.password.max_days == 99999 and ev.password.minlen is None
        assert ev.sshd.effective and ev.sshd.log_level == "INFO" and ev.sshd.client_alive_interval == 0
        assert "hmac-sha1" in ev.sshd.weak_macs and ev.sshd.x11_forwarding is not None
        assert not any(ev.auditd.rules_present.model_dump().values()) and ev.auditd.rules_files == []
        assert ev.rsyslog.forwarding == []
        assert {(s.port, s.process) for s in ev.listening} >= {(22, "sshd")}
        assert ev.accounts.uid0 == ["root"]
    assert onboarded.weak_mac_login_before == 0  # SHA-1 MACs accepted before hardening
    facts = HostFacts.model_validate(host_facts_for_checks("lab-h01", onboarded.before["lab-h01"]))
    assert facts.faillock is not None and not facts.faillock.enabled and facts.tmout is None


def test_onboard_in_check_mode_reports_changes_and_writes_nothing(onboarded: Onboarded) -> None:
    dry = onboarded.dry_run
    assert dry is not None and dry.status == "successful", dry.stats
    assert all(dry.stats[h]["changed"] >= 8 for h in HOSTS) and onboarded.dry_run_untouched


def test_onboard_changes_then_rerun_reports_nothing_changed(onboarded: Onboarded) -> None:
    first, second = onboarded.first, onboarded.second
    assert first is not None and second is not None
    assert first.status == "successful" and first.rc == 0, first.stats
    assert set(first.stats) == set(HOSTS) and all(first.stats[h]["changed"] >= 8 for h in HOSTS)
    assert second.status == "successful" and second.changed == 0, second.stats
    # honest reports for what the lab cannot activate (lab hosts share this machine's /usr)
    messages = " ".join(str(e["event_data"].get("res", {}).get("msg", "")) for e in first.events
                        if e.get("event") == "runner_on_ok")
    assert ("pam_pwquality.so is not installed" in messages) == (not PWQUALITY.exists())
    assert ("not loaded (auditd is not installed)" if not AUDITCTL.exists()
            else "kernel audit loading disabled") in messages


def test_evidence_after_onboarding_shows_every_item_hardened(onboarded: Onboarded) -> None:
    result = onboarded.run("evidence.yml", "evidence-after")
    assert result.status == "successful" and result.changed == 0
    evidence = parse_evidence(result.events)
    assert set(evidence) == set(HOSTS)
    for host, ev in evidence.items():
        level3 = host == "lab-h02"
        pw = ev.password
        assert pw.pwquality_conf and pw.minlen == (12 if level3 else 8) and pw.minclass == 3, host
        assert pw.enforce_for_root and pw.difok == 5 and pw.maxrepeat == 3
        assert (pw.max_days, pw.min_days, pw.warn_age) == (90, 1, 14)
        assert pw.remember == (5 if level3 else 3) and pw.hashing == "yescrypt"
        assert pw.pam_unix_minlen == pw.minlen
        assert pw.pam_pwquality_module == pw.complexity_enforced == PWQUALITY.exists()  # enforced once installed
        fl = ev.faillock
        assert fl.enforced and fl.deny == 5 and fl.unlock_time == (1800 if level3 else 600)
        assert fl.pam_preauth and fl.pam_authfail and fl.pam_account and not fl.pam_nullok
        assert ev.session.tmout == (600 if level3 else 900) and ev.session.tmout_readonly
        assert ev.session.tmout_files == ["/etc/profile.d/yunshu-tmout.sh"]
        ssh = ev.sshd
        assert ssh.effective and ssh.permit_root_login == "prohibit-password" and not ssh.root_password_login
        assert ssh.password_authentication is False and ssh.permit_empty_passwords is False
        assert ssh.weak_ciphers == [] and ssh.weak_macs == [] and ssh.weak_kex == []
        assert ssh.macs == ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
                            "umac-128-etm@openssh.com"]
        assert ssh.max_auth_tries == (3 if level3 else 4) and ssh.log_level == "VERBOSE"
        assert ssh.client_alive_interval == 300 and ssh.client_alive_count_max == (1 if level3 else 2)
        assert ssh.x11_forwarding is False
        audit = ev.auditd
        assert audit.rules_files == ["/etc/audit/rules.d/yunshu.rules"]
        assert all(audit.rules_present.model_dump().values())
        assert audit.installed == AUDITCTL.exists() and not audit.daemon_running  # written, not loaded in the lab
        assert [(t.target, t.port, t.protocol, t.framing, t.queue_type) for t in ev.rsyslog.forwarding] == [
            (str(onboarded.env.lab.controller), onboarded.receiver.port, "tcp", "octet-counted", "LinkedList")]
        assert ev.insecure_packages == [] and ev.accounts.empty_password == [] and ev.sudo_nopasswd_all == []
        assert ev.baseline.applied and ev.baseline.playbook == "onboard.yml"
        assert ev.baseline.level == (3 if level3 else 2)
        assert ev.errors == {}
        # the same facts in the vocabulary of the 等保 host checks (issue 7)
        facts = HostFacts.model_validate(host_facts_for_checks(host, ev))
        assert facts.faillock is not None and facts.faillock.enabled and facts.tmout == ev.session.tmout
        assert facts.password is not None
        assert facts.password.minclass == (3 if PWQUALITY.exists() else None)  # counted only when PAM enforces it
        assert facts.sshd is not None and facts.sshd.permit_root_login == "prohibit-password"
        assert facts.rsyslog is not None and not facts.rsyslog.forwarding  # configured, but no rsyslogd runs yet


def test_evidence_in_check_mode_changes_nothing(onboarded: Onboarded) -> None:
    before = {h: tree_digest(onboarded.upper(h)) for h in HOSTS}
    result = onboarded.run("evidence.yml", "evidence-check", check=True)
    assert result.status == "successful" and result.changed == 0
    assert {h: tree_digest(onboarded.upper(h)) for h in HOSTS} == before
    evidence = evidence_from_events(result.events)
    assert set(evidence) == set(HOSTS) and evidence["lab-h01"]["sshd"]["log_level"] == "VERBOSE"


def test_sshd_still_accepts_the_lab_key_and_refuses_weak_macs(onboarded: Onboarded) -> None:
    for host in HOSTS:
        done = onboarded.ssh(host, "cat", "/etc/hostname")
        assert done.returncode == 0 and done.stdout.strip() == host, done.stderr
    refused = onboarded.ssh("lab-h01", "true", options=WEAK_MAC)
    assert refused.returncode != 0 and "no matching MAC" in refused.stderr


LAB_RSYSLOG = """# lab only: this host's own socket and state (/dev and the kernel log are the controller's)
global(workDirectory="/run")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="/run/yunshu-log.sock" CreatePath="on")
include(file="/etc/rsyslog.d/*.conf" mode="optional")
"""


def test_logs_are_forwarded_to_the_receiver(onboarded: Onboarded) -> None:
    host = "lab-h01"
    write = onboarded.ssh(host, "sh", "-c", f"cat > /etc/rsyslog-lab.conf <<'EOF'\n{LAB_RSYSLOG}EOF")
    assert write.returncode == 0, write.stderr
    started = onboarded.ssh(host, "/usr/sbin/rsyslogd", "-f", "/etc/rsyslog-lab.conf", "-i", "/run/rsyslogd.pid")
    assert started.returncode == 0, started.stderr
    marker = f"yunshu-forwarding-{time.time_ns()}"
    for _ in range(50):  # the socket appears once rsyslogd is up
        if onboarded.ssh(host, "test", "-S", "/run/yunshu-log.sock").returncode == 0:
            break
        time.sleep(0.2)
    sent = onboarded.ssh(host, "logger", "-u", "/run/yunshu-log.sock", "-t", "yunshu-test", marker)
    assert sent.returncode == 0, sent.stderr
    assert onboarded.receiver.wait_for(marker.encode(), timeout=60), bytes(onboarded.receiver.data[-500:])
    frame = bytes(onboarded.receiver.data)
    assert frame.split(b" ", 1)[0].isdigit() and b"yunshu-test" in frame  # octet-counted RFC 5424 frame
    result = onboarded.run("evidence.yml", "evidence-forwarding", limit=host)
    ev = parse_evidence(result.events)[host]
    assert ev.rsyslog.running
    facts = HostFacts.model_validate(host_facts_for_checks(host, ev))
    assert facts.rsyslog is not None and facts.rsyslog.forwarding
    assert facts.rsyslog.targets == [f"{onboarded.receiver.address}:{onboarded.receiver.port}"]


def test_the_machines_own_etc_is_untouched(onboarded: Onboarded) -> None:
    assert own_etc_digest() == onboarded.own_etc_before
    assert not Path("/etc/profile.d/yunshu-tmout.sh").exists()
    assert not Path("/etc/rsyslog.d/90-yunshu.conf").exists()
    assert (onboarded.upper("lab-h01") / "rsyslog.d" / "90-yunshu.conf").is_file()


def test_decommission_needs_confirmation_then_archives_and_cleans_up(onboarded: Onboarded, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    refused = onboarded.run("decommission.yml", "decommission-refused", limit="lab-h02",
                            extravars={"yunshu_artifacts_dir": str(artifacts)})
    assert refused.status == "failed" and refused.failed_hosts() == ["lab-h02"]
    messages = [e["event_data"]["res"].get("msg", "") for e in refused.events if e.get("event") == "runner_on_failed"]
    assert any("yunshu_confirm_decommission=true" in m for m in messages), messages
    assert onboarded.ssh("lab-h02", "test", "-f", "/etc/rsyslog.d/90-yunshu.conf").returncode == 0
    assert not artifacts.exists()

    # an AAAA record as the dual-stack migration writes it (one file per host on the DNS server)
    aaaa = "/etc/dnsmasq.hosts.d/lab-h02"
    written = onboarded.ssh("lab-dns", "sh", "-c", "printf '# Managed by Yunshu (dns_records) for lab-h02\\n"
                            f"fd00:7::12 lab-h02.lab.yunshu.example lab-h02\\n' > {aaaa}")
    assert written.returncode == 0, written.stderr
    done = onboarded.run("decommission.yml", "decommission", limit="lab-h02",
                         extravars={"yunshu_artifacts_dir": str(artifacts), "yunshu_confirm_decommission": True})
    assert done.status == "successful", done.stats
    archive = artifacts / "decommission" / "lab-h02.tar.gz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        evidence = tar.extractfile("evidence.json")
        assert evidence is not None
        assert HostEvidence.model_validate_json(evidence.read()).hostname == "lab-h02"
    assert {"etc/audit/rules.d/yunshu.rules", "etc/rsyslog.d/90-yunshu.conf",
            "etc/ssh/sshd_config.d/10-yunshu-baseline.conf"} <= names
    gone = onboarded.ssh("lab-h02", "sh", "-c", "test -e /etc/rsyslog.d/90-yunshu.conf || "
                         "test -e /etc/audit/rules.d/yunshu.rules || echo gone")
    assert gone.stdout.strip() == "gone"
    records = (onboarded.env.lab.dir / "lab-dns" / "etc.upper" / "dnsmasq.hosts.d" / "lab-ipv4").read_text()
    assert "lab-h02" not in records and "lab-h01" in records
    stats = next(e for e in done.events if e.get("event") == "playbook_on_stats")["event_data"]["artifact_data"]
    report = stats["yunshu_decommission"]["lab-h02"]
    assert report["done"] is True and "/etc/rsyslog.d/90-yunshu.conf" in report["removed"]
    assert onboarded.ssh("lab-dns", "test", "-e", aaaa).returncode == 1
    assert report["dns_files_changed"] == [aaaa, "/etc/dnsmasq.hosts.d/lab-ipv4"]
    assert onboarded.ssh("lab-h01", "test", "-f", "/etc/rsyslog.d/90-yunshu.conf").returncode == 0  # others stay


def test_playbooks_pass_ansible_lint_production_profile(tmp_path: Path) -> None:
    mine = ["onboard.yml", "evidence.yml", "decommission.yml",
            *sorted(str(p.relative_to(PLAYBOOKS)) for p in (PLAYBOOKS / "roles").iterdir()
                    if p.name.startswith(("baseline_", "evidence_", "decommission_")))]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "ANSIBLE_HOME": str(tmp_path / "ansible"), "NO_COLOR": "1"}
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-lint"), "--profile", "production", *mine],
                          cwd=PLAYBOOKS, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


# --- without a lab: the evidence shape and the module's parsers -------------------------------------------------


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("yunshu_host_evidence", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rsyslog_targets_read_action_and_legacy_forms() -> None:
    parse = _module().rsyslog_targets
    action = ('*.* action(type="omfwd" target="198.18.207.254" port="5514" protocol="tcp"\n'
              '  TCP_Framing="octet-counted" queue.type="LinkedList" queue.filename="q")\n'
              'mail.* action(type="omfile" file="/var/log/mail.log")\n')
    assert parse(action, "/etc/rsyslog.d/a.conf") == [{
        "file": "/etc/rsyslog.d/a.conf", "target": "198.18.207.254", "port": 5514, "protocol": "tcp",
        "framing": "octet-counted", "queue_type": "LinkedList", "queue_file": "q"}]
    legacy = parse("*.* @@logs.example:6514\nauth.* @10.0.0.1\n# *.* @@ignored:1\n", "f")
    assert [(t["target"], t["port"], t["protocol"]) for t in legacy] == [("logs.example", 6514, "tcp"),
                                                                          ("10.0.0.1", 514, "udp")]


def test_key_values_read_both_file_styles() -> None:
    kv = _module().key_values
    assert kv("minlen = 12\n# minclass = 9\nenforce_for_root\n") == {"minlen": "12", "enforce_for_root": ""}
    assert kv("PASS_MAX_DAYS\t90\n#PASS_MIN_DAYS 0\nUMASK  022\n", sep=" ") == {"PASS_MAX_DAYS": "90",
                                                                               "UMASK": "022"}


def test_evidence_from_events_prefers_stats_and_falls_back_to_module_results() -> None:
    facts = _module_facts()
    module_event = {"event": "runner_on_ok", "event_data": {
        "host": "h1", "task_action": "yunshu_host_evidence", "res": {"evidence": facts}}}
    assert evidence_from_events([module_event])["h1"]["hostname"] == "h1"
    newer = {**facts, "hostname": "h1-from-stats"}
    stats_event = {"event": "playbook_on_stats", "event_data": {"artifact_data": {"yunshu_evidence": {"h1": newer}}}}
    assert evidence_from_events([module_event, stats_event])["h1"]["hostname"] == "h1-from-stats"
    assert evidence_from_events([{"event": "playbook_on_stats", "event_data": {}}]) == {}
    with pytest.raises(ValueError, match="password"):
        evidence_from_events([{"event": "playbook_on_stats", "event_data": {"artifact_data": {
            "yunshu_evidence": {"h1": {k: v for k, v in facts.items() if k != "password"}}}}}])


def _module_facts() -> dict[str, Any]:
    """The module run on this machine (read only), as one host's facts."""
    done = subprocess.run([sys.executable, str(MODULE_PATH)], input='{"ANSIBLE_MODULE_ARGS": {}}',
                          capture_output=True, text=True, timeout=120)
    facts = json.loads(done.stdout)["evidence"]
    return {**facts, "hostname": "h1"}
