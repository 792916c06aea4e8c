#!/usr/bin/python
"""Read-only host facts for the 等保 (GB/T 22239-2019) evidence collectors, in one stable JSON shape.

Reads files and runs read-only commands (``sshd -T``, ``ss``, ``auditctl -l``); never writes anything, so it is
safe in check mode. The shape is documented in ``infra/evidence_facts.py`` (``HostEvidence``)."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: yunshu_host_evidence
short_description: Collect read-only 等保 evidence facts from a host
description:
  - Password policy, faillock, session timeout, sshd effective settings, audit rules, rsyslog forwarding,
    listening sockets, mandatory access control, UID 0 and empty-password accounts, time synchronisation and
    insecure packages. Changes nothing.
options:
  sshd_config:
    description: Main sshd configuration file passed to C(sshd -T -f).
    type: path
    default: /etc/ssh/sshd_config
  insecure_packages:
    description: Package names whose presence is reported.
    type: list
    elements: str
    default: []
author: Yunshu platform team
"""

SCHEMA_VERSION = 1
WEAK_CIPHER = re.compile(r"(cbc|3des|arcfour|blowfish|cast128|rijndael)", re.I)
WEAK_MAC = re.compile(r"(md5|sha1|umac-64|ripemd)", re.I)
WEAK_KEX = re.compile(r"(sha1$|sha1@|group1-|group14-sha1|gss-)", re.I)
PAM_DIRS = ("/usr/lib/{arch}-linux-gnu/security", "/lib/{arch}-linux-gnu/security", "/usr/lib64/security",
            "/lib64/security", "/usr/lib/security", "/lib/security")
AUDIT_KEYS = {  # rule family -> paths/syscalls whose watch proves it
    "identity": ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"),
    "sudoers": ("/etc/sudoers",),
    "sshd_config": ("/etc/ssh/sshd_config",),
    "time_change": ("adjtimex", "settimeofday", "clock_settime", "/etc/localtime"),
    "logins": ("/var/log/lastlog", "/var/log/wtmp", "/var/log/btmp", "/var/run/faillock", "/run/faillock"),
}


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def key_values(text: str | None, sep: str = "=") -> dict[str, str]:
    """``key = value`` lines (``key value`` when ``sep`` is whitespace) without comments; a bare key maps to
    ``""``."""
    out: dict[str, str] = {}
    for raw in (text or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if sep == "=":
            key, _, value = line.partition("=")
        else:
            key, value = ([*line.split(None, 1), ""])[:2]
        out[key.strip()] = value.strip()
    return out


def as_int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def pam_lines(path: str, kind: str) -> list[list[str]]:
    """Active lines of a PAM file for ``kind`` (auth/account/password/session) as token lists."""
    out = []
    for raw in (read(path) or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        # [a=b c=d] control fields contain spaces
        tokens = re.findall(r"\[[^\]]*\]|\S+", line)
        if tokens and tokens[0].lstrip("-") == kind:
            out.append(tokens)
    return out


def pam_module_present(name: str, arch: str) -> bool:
    return any(os.path.exists(os.path.join(d.format(arch=arch), name)) for d in PAM_DIRS)


def module_args(lines: list[list[str]], module: str) -> list[list[str]]:
    return [t[3:] for t in lines if len(t) > 2 and os.path.basename(t[2]) == module]


def option(args: list[str], name: str) -> str | None:
    for arg in args:
        if arg == name:
            return ""
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def password_facts(arch: str) -> dict:
    pwq_text = read("/etc/security/pwquality.conf")
    pwq_dropins = sorted(glob.glob("/etc/security/pwquality.conf.d/*.conf"))
    conf = key_values(pwq_text)
    for path in pwq_dropins:
        conf.update(key_values(read(path)))
    lines = pam_lines("/etc/pam.d/common-password", "password")
    pwq = module_args(lines, "pam_pwquality.so")
    hist = module_args(lines, "pam_pwhistory.so")
    unix = module_args(lines, "pam_unix.so")
    module = pam_module_present("pam_pwquality.so", arch)
    defs = key_values(read("/etc/login.defs"), sep=" ")
    hashing = next((h for h in ("yescrypt", "sha512", "sha256", "md5", "bigcrypt", "blowfish")
                    if unix and option(unix[0], h) is not None), None)
    return {
        "pwquality_conf": pwq_text is not None,
        "minlen": as_int(conf.get("minlen")), "minclass": as_int(conf.get("minclass")),
        "dcredit": as_int(conf.get("dcredit")), "ucredit": as_int(conf.get("ucredit")),
        "lcredit": as_int(conf.get("lcredit")), "ocredit": as_int(conf.get("ocredit")),
        "maxrepeat": as_int(conf.get("maxrepeat")), "difok": as_int(conf.get("difok")),
        "dictcheck": as_int(conf.get("dictcheck")), "enforce_for_root": "enforce_for_root" in conf,
        "pam_pwquality_configured": bool(pwq), "pam_pwquality_module": module,
        "complexity_enforced": bool(pwq) and module,
        "pam_unix_minlen": as_int(option(unix[0], "minlen")) if unix else None,
        "remember": as_int(option(hist[0], "remember")) if hist else (
            as_int(option(unix[0], "remember")) if unix else None),
        "hashing": hashing,
        "max_days": as_int(defs.get("PASS_MAX_DAYS")), "min_days": as_int(defs.get("PASS_MIN_DAYS")),
        "warn_age": as_int(defs.get("PASS_WARN_AGE")),
    }


def faillock_facts(arch: str) -> dict:
    text = read("/etc/security/faillock.conf")
    conf = key_values(text)
    auth = pam_lines("/etc/pam.d/common-auth", "auth")
    account = pam_lines("/etc/pam.d/common-account", "account")
    fl_auth = module_args(auth, "pam_faillock.so")
    preauth = any(option(a, "preauth") is not None for a in fl_auth)
    authfail = any(option(a, "authfail") is not None for a in fl_auth)
    # options given on the PAM lines override faillock.conf
    for args in fl_auth:
        for key in ("deny", "unlock_time", "fail_interval"):
            if option(args, key):
                conf[key] = option(args, key) or ""
    module = pam_module_present("pam_faillock.so", arch)
    unix_auth = module_args(auth, "pam_unix.so")
    return {
        "faillock_conf": text is not None,
        "deny": as_int(conf.get("deny")), "unlock_time": as_int(conf.get("unlock_time")),
        "fail_interval": as_int(conf.get("fail_interval")), "even_deny_root": "even_deny_root" in conf,
        "audit": "audit" in conf,
        "pam_preauth": preauth, "pam_authfail": authfail,
        "pam_account": bool(module_args(account, "pam_faillock.so")), "pam_module": module,
        "enforced": preauth and authfail and module and (as_int(conf.get("deny")) or 0) > 0,
        "pam_nullok": any(option(a, "nullok") is not None for a in unix_auth),
    }


def session_facts() -> dict:
    files = ["/etc/profile", "/etc/bash.bashrc", *sorted(glob.glob("/etc/profile.d/*.sh"))]
    tmout, readonly, where = None, False, []
    for path in files:
        for raw in (read(path) or "").splitlines():
            line = raw.split("#", 1)[0].strip()
            match = re.match(r"^(?:export\s+|readonly\s+|declare\s+-[a-zA-Z]*\s+)*TMOUT=(\d+)", line)
            if match:
                tmout = int(match.group(1))
                where.append(path)
            if re.match(r"^(readonly|declare\s+-[a-zA-Z]*r[a-zA-Z]*)\s+.*\bTMOUT\b", line) or \
                    re.match(r"^typeset\s+-r\s+TMOUT", line):
                readonly = True
    return {"tmout": tmout, "tmout_readonly": readonly, "tmout_files": sorted(set(where))}


def sshd_facts(module: AnsibleModule, config: str) -> dict:
    sshd = module.get_bin_path("sshd", opt_dirs=["/usr/sbin", "/sbin"])
    if not sshd:
        return {"installed": False, "effective": False, "error": "sshd not found"}
    rc, out, err = module.run_command([sshd, "-T", "-f", config])
    if rc != 0:
        return {"installed": True, "effective": False, "error": (err or out).strip()[-500:]}
    eff: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        eff.setdefault(key.lower(), value.strip())
        repeated.setdefault(key.lower(), []).extend(value.split())

    def listed(key: str) -> list[str]:
        return [v for v in eff.get(key, "").split(",") if v]

    ciphers, macs, kex = listed("ciphers"), listed("macs"), listed("kexalgorithms")
    root = eff.get("permitrootlogin")
    return {
        "installed": True, "effective": True, "error": None,
        "permit_root_login": "prohibit-password" if root == "without-password" else root,
        "root_password_login": root == "yes",
        "password_authentication": eff.get("passwordauthentication") == "yes",
        "kbd_interactive_authentication": eff.get("kbdinteractiveauthentication") == "yes",
        "permit_empty_passwords": eff.get("permitemptypasswords") == "yes",
        "pubkey_authentication": eff.get("pubkeyauthentication") == "yes",
        "max_auth_tries": as_int(eff.get("maxauthtries")), "log_level": eff.get("loglevel"),
        "client_alive_interval": as_int(eff.get("clientaliveinterval")),
        "client_alive_count_max": as_int(eff.get("clientalivecountmax")),
        "login_grace_time": as_int(eff.get("logingracetime")),
        "x11_forwarding": eff.get("x11forwarding") == "yes", "use_pam": eff.get("usepam") == "yes",
        "authentication_methods": eff.get("authenticationmethods"),
        "allow_users": repeated.get("allowusers", []), "allow_groups": repeated.get("allowgroups", []),
        "ciphers": ciphers, "macs": macs, "kex_algorithms": kex,
        "weak_ciphers": [c for c in ciphers if WEAK_CIPHER.search(c)],
        "weak_macs": [m for m in macs if WEAK_MAC.search(m)],
        "weak_kex": [k for k in kex if WEAK_KEX.search(k)],
    }


def pid_running(pidfile: str, names: tuple[str, ...]) -> bool:
    pid = as_int(read(pidfile))
    if pid:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    return process_running(names)


def process_running(names: tuple[str, ...]) -> bool:
    """A process of that name in this host's network namespace (network-namespace hosts share the PID
    namespace with their neighbours, so processes elsewhere are not counted)."""
    try:
        own = os.readlink("/proc/self/ns/net")
    except OSError:
        own = None
    for comm in glob.glob("/proc/[0-9]*/comm"):
        if (read(comm) or "").strip() not in names:
            continue
        try:
            if own is None or os.readlink(comm[: -len("comm")] + "ns/net") == own:
                return True
        except OSError:
            continue
    return False


def audit_facts(module: AnsibleModule) -> dict:
    files = sorted(glob.glob("/etc/audit/rules.d/*.rules"))
    rules = [line.strip() for path in files for line in (read(path) or "").splitlines()
             if line.strip() and not line.strip().startswith("#")]
    present = {family: any(any(marker in rule for marker in markers) for rule in rules)
               for family, markers in AUDIT_KEYS.items()}
    auditctl = module.get_bin_path("auditctl", opt_dirs=["/usr/sbin", "/sbin"])
    loaded, loaded_rules, error = None, None, None
    if auditctl:
        rc, out, err = module.run_command([auditctl, "-l"])
        if rc == 0:
            active = [line for line in out.splitlines() if line.strip() and line.strip() != "No rules"]
            loaded, loaded_rules = bool(active), len(active)
        else:
            loaded, error = False, (err or out).strip()[-300:]
    else:
        error = "auditctl not installed"
    return {"installed": bool(auditctl), "daemon_running": pid_running("/run/auditd.pid", ("auditd",)),
            "rules_files": files, "rules_count": len(rules), "rules_present": present,
            "immutable": any(re.match(r"^-e\s+2\b", rule) for rule in rules),
            "loaded": loaded, "loaded_rules": loaded_rules, "error": error}


def rsyslog_targets(text: str, path: str) -> list[dict]:
    out = []
    for match in re.finditer(r"action\s*\((.*?)\)", text, re.S):
        params = dict(re.findall(r'([\w.]+)\s*=\s*"([^"]*)"', match.group(1)))
        if params.get("type") != "omfwd":
            continue
        out.append({"file": path, "target": params.get("target"), "port": as_int(params.get("port", "514")),
                    "protocol": params.get("protocol", "udp").lower(), "framing": params.get("TCP_Framing"),
                    "queue_type": params.get("queue.type"), "queue_file": params.get("queue.filename")})
    for line in text.splitlines():  # legacy  *.* @@host:port  (TCP)  /  @host:port  (UDP)
        match = re.match(r"^[^#\s$]\S*\s+(@@?)(?:\([^)]*\))?(\[[^\]]+\]|[^:;\s]+)(?::(\d+))?\s*(;\S*)?$",
                         line.strip())
        if match:
            out.append({"file": path, "target": match.group(2).strip("[]"), "port": as_int(match.group(3) or "514"),
                        "protocol": "tcp" if match.group(1) == "@@" else "udp", "framing": None,
                        "queue_type": None, "queue_file": None})
    return out


def rsyslog_facts(module: AnsibleModule) -> dict:
    files = ["/etc/rsyslog.conf", *sorted(glob.glob("/etc/rsyslog.d/*.conf"))]
    targets = [t for path in files for t in rsyslog_targets(read(path) or "", path)]
    return {"installed": bool(module.get_bin_path("rsyslogd", opt_dirs=["/usr/sbin", "/sbin"])),
            "running": pid_running("/run/rsyslogd.pid", ("rsyslogd",)), "forwarding": targets}


def listening(module: AnsibleModule) -> tuple[list[dict], str | None]:
    ss = module.get_bin_path("ss", opt_dirs=["/usr/bin", "/usr/sbin", "/bin", "/sbin"])
    if not ss:
        return [], "ss not found"
    rc, out, err = module.run_command([ss, "-Htlnup"])
    if rc != 0:
        return [], (err or out).strip()[-300:]
    sockets = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        local = fields[4]
        address, _, port = local.rpartition(":")
        address = address.strip("[]")
        if "%" in address:
            address = address.split("%", 1)[0]
        process = re.search(r'\(\("([^"]+)"', line)
        sockets.append({"proto": fields[0], "address": address, "port": as_int(port),
                        "process": process.group(1) if process else None})
    unique = {(s["proto"], s["address"], s["port"]): s for s in sockets}
    return [unique[k] for k in sorted(unique, key=lambda k: (k[0], k[2] or 0, k[1]))], None


def mac_facts() -> dict:
    aa_enabled = (read("/sys/module/apparmor/parameters/enabled") or "").strip() == "Y"
    profiles = (read("/sys/kernel/security/apparmor/profiles") or "").splitlines()
    enforce = sum(1 for p in profiles if p.endswith("(enforce)"))
    se_enforce = read("/sys/fs/selinux/enforce")
    se_mode = None if se_enforce is None else ("enforcing" if se_enforce.strip() == "1" else "permissive")
    return {"apparmor": {"enabled": aa_enabled, "profiles": len(profiles), "enforce": enforce},
            "selinux": {"enabled": se_enforce is not None, "mode": se_mode},
            "active": (aa_enabled and enforce > 0) or se_mode == "enforcing"}


def account_facts() -> dict:
    uid0 = [f.split(":")[0] for f in (read("/etc/passwd") or "").splitlines() if len(f.split(":")) > 2
            and f.split(":")[2] == "0"]
    shadow = read("/etc/shadow")
    empty = [f.split(":")[0] for f in (shadow or "").splitlines() if len(f.split(":")) > 1 and f.split(":")[1] == ""]
    return {"uid0": sorted(uid0), "empty_password": sorted(empty), "shadow_readable": shadow is not None}


def sudo_nopasswd_all() -> list[str] | None:
    """Users or %groups granted ``NOPASSWD: ALL`` in sudoers (None when sudoers cannot be read)."""
    files = ["/etc/sudoers", *sorted(glob.glob("/etc/sudoers.d/*"))]
    texts = [read(path) for path in files]
    if texts[0] is None and not os.path.exists("/etc/sudoers"):
        return []
    if texts[0] is None:
        return None
    found = set()
    for text in texts:
        for raw in (text or "").splitlines():
            line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#include") else ""
            match = re.match(r"^(\S+)\s+\S+\s*=\s*(\([^)]*\))?\s*NOPASSWD\s*:\s*ALL\s*$", line)
            if match:
                found.add(match.group(1))
    return sorted(found)


def baseline_marker() -> dict:
    """What onboard.yml recorded in /etc/yunshu/baseline.json (the file's mtime is when it last changed)."""
    path = "/etc/yunshu/baseline.json"
    text = read(path)
    if text is None:
        return {"applied": False, "playbook": None, "level": None, "version": None, "changed_at": None}
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    changed = datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017
    return {"applied": True, "playbook": data.get("playbook"), "level": as_int(data.get("level")),
            "version": as_int(data.get("version")), "changed_at": changed}


def time_facts() -> dict:
    daemons = {"chronyd": "/etc/chrony/chrony.conf", "ntpd": "/etc/ntpsec/ntp.conf",
               "systemd-timesyncd": "/etc/systemd/timesyncd.conf"}
    running = sorted(name for name in daemons if process_running((name[:15],)))
    configured = sorted(name for name, conf in daemons.items() if os.path.exists(conf))
    servers: list[str] = []
    for conf in ("/etc/chrony/chrony.conf", "/etc/ntpsec/ntp.conf", "/etc/ntp.conf"):
        for raw in (read(conf) or "").splitlines():
            parts = raw.split("#", 1)[0].split()
            if len(parts) > 1 and parts[0] in ("server", "pool"):
                servers.append(parts[1])
    timesyncd = key_values(read("/etc/systemd/timesyncd.conf"))
    servers += [s for s in (timesyncd.get("NTP") or "").split() if s]
    return {"running": running, "configured": configured, "servers": servers, "synchronised": bool(running)}


def installed_packages(module: AnsibleModule, names: list[str]) -> tuple[list[str], str | None]:
    if not names:
        return [], None
    dpkg = module.get_bin_path("dpkg-query")
    if dpkg:
        _, out, _ = module.run_command([dpkg, "-W", "-f=${Package} ${db:Status-Abbrev}\\n", *names])
        return sorted(line.split()[0] for line in out.splitlines() if len(line.split()) > 1
                      and line.split()[1].startswith("i")), None
    rpm = module.get_bin_path("rpm")
    if rpm:
        found = []
        for name in names:
            if module.run_command([rpm, "-q", name])[0] == 0:
                found.append(name)
        return sorted(found), None
    return [], "no dpkg-query or rpm"


def main() -> None:
    module = AnsibleModule(argument_spec={"sshd_config": {"type": "path", "default": "/etc/ssh/sshd_config"},
                                          "insecure_packages": {"type": "list", "elements": "str", "default": []}},
                           supports_check_mode=True)
    arch = os.uname().machine
    ports, ports_error = listening(module)
    packages, packages_error = installed_packages(module, module.params["insecure_packages"])
    errors = {k: v for k, v in (("listening", ports_error), ("packages", packages_error)) if v}
    evidence = {
        "schema_version": SCHEMA_VERSION,
        "collected_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),  # noqa: UP017 (remote Python < 3.11)
        "hostname": (read("/etc/hostname") or os.uname().nodename).strip(),
        "password": password_facts(arch),
        "faillock": faillock_facts(arch),
        "session": session_facts(),
        "sshd": sshd_facts(module, module.params["sshd_config"]),
        "auditd": audit_facts(module),
        "rsyslog": rsyslog_facts(module),
        "listening": ports,
        "mac": mac_facts(),
        "accounts": account_facts(),
        "time_sync": time_facts(),
        "sudo_nopasswd_all": sudo_nopasswd_all(),
        "baseline": baseline_marker(),
        "insecure_packages": packages,
        "errors": errors,
    }
    module.exit_json(changed=False, evidence=evidence, cmd=shlex.join(["sshd", "-T", "-f",
                                                                         module.params["sshd_config"]]))


if __name__ == "__main__":
    main()
