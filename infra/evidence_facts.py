"""Host evidence from ``playbooks/evidence.yml`` for the 等保 collectors: the documented shape and how to read it.

``evidence.yml`` runs the read-only module ``yunshu_host_evidence`` (role ``evidence_host``) on every host and
returns the facts through ``set_stats`` as ``yunshu_evidence: {host: facts}``; ansible-runner puts that mapping in
the ``artifact_data`` of the ``playbook_on_stats`` event. :func:`evidence_from_events` reads it from
``PlaybookResult.events`` (falling back to the module's own ``runner_on_ok`` results, e.g. when the run stopped
before the stats), and :class:`HostEvidence` is the shape, one model per section:

* ``password`` — pwquality.conf values, whether PAM enforces them, history, hashing, login.defs expiry (8.1.4.1 a)
* ``faillock`` — faillock.conf values and whether PAM counts failures; ``pam_nullok`` (8.1.4.1 a, b)
* ``session`` — shell TMOUT and whether it is readonly (8.1.4.1 b)
* ``sshd`` — the effective configuration from ``sshd -T`` with the weak algorithms still allowed (8.1.4.1 a–c)
* ``auditd`` — rule files and rule families present, whether rules are loaded (8.1.4.3 a–c)
* ``rsyslog`` — forwarding targets (8.1.4.3 c, 8.1.5.4 d)
* ``listening`` — listening sockets from ``ss -Htlnup`` (8.1.4.4 b)
* ``mac`` — AppArmor / SELinux (8.1.4.2 g)
* ``accounts`` — UID 0 and empty-password accounts (8.1.4.1 a, 8.1.4.2 b/c)
* ``time_sync`` — time daemons running and configured (8.1.4.3 b: trustworthy timestamps)
* ``sudo_nopasswd_all`` — who may run anything through sudo without a password (8.1.4.2 d)
* ``baseline`` — the marker onboard.yml leaves (playbook, level, when it last changed)
* ``insecure_packages`` — installed packages from the insecure list (8.1.4.4 a)

Unknown values are ``None`` (e.g. a key missing from a file); ``errors`` names the parts that could not be read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

STATS_KEY = "yunshu_evidence"
MODULE = "yunshu_host_evidence"
SCHEMA_VERSION = 1


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PasswordPolicy(_Section):
    pwquality_conf: bool
    minlen: int | None
    minclass: int | None
    dcredit: int | None
    ucredit: int | None
    lcredit: int | None
    ocredit: int | None
    maxrepeat: int | None
    difok: int | None
    dictcheck: int | None
    enforce_for_root: bool
    pam_pwquality_configured: bool  # pam_pwquality.so on the common-password stack
    pam_pwquality_module: bool  # the module is installed
    complexity_enforced: bool  # both of the above
    pam_unix_minlen: int | None
    remember: int | None  # pam_pwhistory (or pam_unix) remember=
    hashing: str | None
    max_days: int | None  # login.defs PASS_MAX_DAYS
    min_days: int | None
    warn_age: int | None


class Faillock(_Section):
    faillock_conf: bool
    deny: int | None
    unlock_time: int | None
    fail_interval: int | None
    even_deny_root: bool
    audit: bool
    pam_preauth: bool
    pam_authfail: bool
    pam_account: bool
    pam_module: bool
    enforced: bool  # preauth + authfail on the stack, module installed, deny > 0
    pam_nullok: bool  # pam_unix nullok on common-auth: empty passwords authenticate


class Session(_Section):
    tmout: int | None
    tmout_readonly: bool
    tmout_files: list[str]


class Sshd(_Section):
    installed: bool
    effective: bool  # sshd -T succeeded; the other fields are empty otherwise
    error: str | None
    permit_root_login: str | None = None  # yes | prohibit-password | forced-commands-only | no
    root_password_login: bool | None = None
    password_authentication: bool | None = None
    kbd_interactive_authentication: bool | None = None
    permit_empty_passwords: bool | None = None
    pubkey_authentication: bool | None = None
    max_auth_tries: int | None = None
    log_level: str | None = None
    client_alive_interval: int | None = None
    client_alive_count_max: int | None = None
    login_grace_time: int | None = None
    x11_forwarding: bool | None = None
    use_pam: bool | None = None
    authentication_methods: str | None = None  # "any" unless AuthenticationMethods is set
    allow_users: list[str] = []
    allow_groups: list[str] = []
    ciphers: list[str] = []
    macs: list[str] = []
    kex_algorithms: list[str] = []
    weak_ciphers: list[str] = []
    weak_macs: list[str] = []
    weak_kex: list[str] = []


class AuditRulesPresent(_Section):
    identity: bool
    sudoers: bool
    sshd_config: bool
    time_change: bool
    logins: bool


class Auditd(_Section):
    installed: bool  # auditctl present
    daemon_running: bool
    rules_files: list[str]
    rules_count: int
    rules_present: AuditRulesPresent
    immutable: bool = False  # the rule files end with -e 2
    loaded: bool | None  # None: cannot tell (auditctl missing)
    loaded_rules: int | None
    error: str | None


class ForwardTarget(_Section):
    file: str
    target: str | None
    port: int | None
    protocol: str
    framing: str | None
    queue_type: str | None
    queue_file: str | None


class Rsyslog(_Section):
    installed: bool
    running: bool
    forwarding: list[ForwardTarget]


class ListeningSocket(_Section):
    proto: str  # tcp | udp
    address: str
    port: int | None
    process: str | None


class AppArmor(_Section):
    enabled: bool
    profiles: int
    enforce: int


class SELinux(_Section):
    enabled: bool
    mode: str | None


class Mac(_Section):
    apparmor: AppArmor
    selinux: SELinux
    active: bool  # AppArmor enforcing profiles, or SELinux enforcing


class Accounts(_Section):
    uid0: list[str]
    empty_password: list[str]
    shadow_readable: bool


class TimeSync(_Section):
    running: list[str]
    configured: list[str]
    servers: list[str]
    synchronised: bool  # a time daemon is running (not a measurement of the offset)


class BaselineMarker(_Section):
    applied: bool  # /etc/yunshu/baseline.json exists (written by onboard.yml)
    playbook: str | None
    level: int | None  # 等保 level the baseline was applied for
    version: int | None
    changed_at: str | None  # the marker's mtime, UTC


class HostEvidence(_Section):
    """Everything ``evidence.yml`` returns for one host (schema_version 1)."""

    schema_version: int
    collected_at: str  # UTC, ISO 8601 with Z
    hostname: str
    password: PasswordPolicy
    faillock: Faillock
    session: Session
    sshd: Sshd
    auditd: Auditd
    rsyslog: Rsyslog
    listening: list[ListeningSocket]
    mac: Mac
    accounts: Accounts
    time_sync: TimeSync
    # added after the first collections: defaults keep earlier stored facts readable
    sudo_nopasswd_all: list[str] | None = None  # users / %groups with NOPASSWD: ALL; None when sudoers is unreadable
    baseline: BaselineMarker = BaselineMarker(applied=False, playbook=None, level=None, version=None,
                                              changed_at=None)
    insecure_packages: list[str]
    errors: dict[str, str]


def _from_module_results(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("event") != "runner_on_ok":
            continue
        data = event.get("event_data") or {}
        if str(data.get("task_action", "")).rsplit(".", 1)[-1] != MODULE:
            continue
        evidence = (data.get("res") or {}).get("evidence")
        if isinstance(evidence, dict):
            out[data["host"]] = evidence
    return out


def evidence_from_events(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per host the evidence facts of an ``evidence.yml`` run (validated against :class:`HostEvidence`)."""
    events = list(events)
    found: dict[str, dict[str, Any]] = _from_module_results(events)
    for event in events:
        if event.get("event") == "playbook_on_stats":
            stats = ((event.get("event_data") or {}).get("artifact_data") or {}).get(STATS_KEY) or {}
            found.update({host: facts for host, facts in stats.items() if isinstance(facts, dict)})
    return {host: HostEvidence.model_validate(facts).model_dump() for host, facts in sorted(found.items())}


def parse_evidence(events: Iterable[dict[str, Any]]) -> dict[str, HostEvidence]:
    """Like :func:`evidence_from_events`, as models."""
    return {host: HostEvidence.model_validate(facts) for host, facts in evidence_from_events(events).items()}


def host_facts_for_checks(host: str, evidence: HostEvidence | dict[str, Any]) -> dict[str, Any]:
    """The evidence in the flat vocabulary of the 等保 host checks (``policies.mlps.evidence.HostFacts``), as plain
    data. Only what the host really enforces counts: complexity not enforced by PAM reports pam_unix's length and
    no classes; forwarding counts only while rsyslog runs; audit rules only once loaded."""
    ev = evidence if isinstance(evidence, HostEvidence) else HostEvidence.model_validate(evidence)
    pw, ssh = ev.password, ev.sshd
    mac_kind, mac_mode = "none", "disabled"
    if ev.mac.selinux.enabled:
        mac_kind, mac_mode = "selinux", ev.mac.selinux.mode or "disabled"
    elif ev.mac.apparmor.enabled:
        mac_kind, mac_mode = "apparmor", "enabled" if ev.mac.apparmor.enforce else "disabled"
    targets = [f"{t.target}:{t.port}" if t.target and ":" not in t.target else f"[{t.target}]:{t.port}"
               for t in ev.rsyslog.forwarding]
    return {
        "name": host,
        "collected_at": ev.collected_at,
        "password": {"minlen": pw.minlen if pw.complexity_enforced else pw.pam_unix_minlen,
                     "minclass": pw.minclass if pw.complexity_enforced else None, "max_days": pw.max_days},
        "empty_password_accounts": ev.accounts.empty_password if ev.accounts.shadow_readable else None,
        "faillock": {"enabled": ev.faillock.enforced, "deny": ev.faillock.deny,
                     "unlock_time": ev.faillock.unlock_time},
        "tmout": ev.session.tmout,
        "sshd": None if not ssh.effective else {
            "permit_root_login": ssh.permit_root_login, "permit_empty_passwords": ssh.permit_empty_passwords,
            "password_authentication": ssh.password_authentication,
            "authentication_methods": None if ssh.authentication_methods in (None, "any")
            else ssh.authentication_methods,
            "client_alive_interval": ssh.client_alive_interval,
            "client_alive_count_max": ssh.client_alive_count_max,
            "allow_users": list(ssh.allow_users), "allow_groups": list(ssh.allow_groups)},
        "uid0_accounts": list(ev.accounts.uid0),
        "sudo_nopasswd_all": ev.sudo_nopasswd_all,
        "mac": {"kind": mac_kind, "mode": mac_mode},
        "auditd": {"running": ev.auditd.daemon_running, "rules": ev.auditd.loaded_rules or 0,
                   "immutable": ev.auditd.immutable and bool(ev.auditd.loaded)},
        "rsyslog": {"forwarding": bool(targets) and ev.rsyslog.running, "targets": targets},
        "listening": [{"proto": s.proto, "port": s.port, "address": s.address, "process": s.process}
                      for s in ev.listening if s.proto in ("tcp", "udp") and s.port is not None],
        "baseline": {"playbook": ev.baseline.playbook, "applied_at": ev.baseline.changed_at}
        if ev.baseline.applied else None,
    }


__all__ = ["HostEvidence", "evidence_from_events", "host_facts_for_checks", "parse_evidence"]
