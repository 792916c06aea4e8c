#!/usr/bin/python
"""Kernel-side IPv6 state of one interface for the dual-stack migration: read it, apply the plan, restore it.

One module call per phase keeps a 50-host run fast (one Python start per host instead of one per command) and
gives exact ``changed`` results: every write is preceded by a read of the live state.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: ipv6_dualstack_host
short_description: Read, apply or restore an interface's IPv6 address, default route and sysctls
description:
  - C(query) returns the interface's addresses and default routes, its IPv6 sysctls, nftables tables, nginx listen
    directives and whether the nftables configuration includes a directory; with O(record) the first query's
    result is saved there (never overwritten) and returned as RV(preflight).
  - C(present) sets the sysctls, adds the address (waiting for duplicate address detection) and the default route,
    writes the persistent configuration files that differ, loads the nftables table when its file changed or it is
    missing, adds the include line to the boot-time nftables configuration and an IPv6 twin after every IPv4
    listen line of the nginx sites (reloading nginx when a site changed).
  - With O(record), C(present) first records the live state there as the preflight record (unless one exists), so
    the record is taken in the same call, before anything changes.
  - C(absent) restores a preflight record (O(preflight), or the one saved at O(record)): planned address and
    route removed, sysctls back to their old values, the table deleted, the files removed (and O(network_config)
    when the record says the migration created it), the include line and the nginx twins taken out again (unless
    the record had them). Without a record nothing is changed (configure failed before changing anything).
options:
  state: {type: str, choices: [query, present, absent], default: query, description: What to do.}
  interface: {type: str, required: true, description: The interface.}
  address: {type: str, description: Planned IPv6 address.}
  prefixlen: {type: int, default: 64, description: Its prefix length.}
  gateway: {type: str, description: Planned IPv6 default gateway.}
  sysctls: {type: dict, default: {}, description: "Interface sysctl names (net.ipv6.conf.IFACE.NAME) and values."}
  record: {type: path, description: "Where the preflight record lives (query, present; read by absent)."}
  preflight: {type: dict, description: "The preflight record to restore (absent); default: the one at O(record)."}
  nginx_sites_dir: {type: path, description: Directory of nginx site files whose listen directives are read.}
  network_config: {type: path, description: The persistent network configuration file (its existence is recorded).}
  nft_conf: {type: path, description: The nftables configuration file that should include O(nft_include).}
  nft_include: {type: str, description: The include line looked for in O(nft_conf).}
  dad_timeout: {type: float, default: 10, description: Seconds to wait for duplicate address detection.}
  files:
    type: list
    elements: dict
    default: []
    description: "Files to write (present): path, content, mode, only_if_missing, validate (command with %s)."
  remove_files: {type: list, elements: path, default: [], description: Files to remove (absent).}
  nft_file: {type: path, description: "nftables file to load (present) when written or its table is missing."}
  nft_table: {type: str, description: "The inet table nft_file defines; deleted on absent unless in preflight."}
  nginx_reload: {type: str, description: "Shell command line that reloads nginx after its site files changed."}
  checks:
    type: list
    elements: dict
    default: []
    description: "Commands (name, argv) that must succeed: after the query, or after present/absent."
  require_ipv6: {type: bool, default: true, description: "query fails when the kernel has no IPv6."}
  ipv4_gateway_check: {type: bool, default: false, description: "Ping the IPv4 default gateway (if any) first."}
author: Yunshu platform team
"""

RETURN = r"""
current: {description: The live state (query), type: dict, returned: always}
preflight: {description: "The preflight record (query, present with record)", type: dict, returned: always}
actions: {description: What was changed, type: list, returned: always}
"""

LISTEN = re.compile(r"^\s*listen\s+([^;]+);", re.MULTILINE)


def _ip_json(module: AnsibleModule, *args: str) -> list:
    rc, out, err = module.run_command(["ip", "-j", *args])
    if rc != 0:
        module.fail_json(msg=f"ip {' '.join(args)} failed: {err.strip()}")
    return json.loads(out or "[]")


def _sysctl_path(interface: str, name: str) -> str:
    return f"/proc/sys/net/ipv6/conf/{interface}/{name}"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _nginx_listens(sites_dir: str | None) -> dict[str, list[str]]:
    if not sites_dir or not os.path.isdir(sites_dir):
        return {}
    out: dict[str, list[str]] = {}
    for name in sorted(os.listdir(sites_dir)):
        path = os.path.join(sites_dir, name)
        if name.endswith(".conf") and os.path.isfile(path):
            out[path] = [m.group(1).strip() for m in LISTEN.finditer(_read(path) or "")]
    return out


def _nginx_mirror(listens: dict[str, list[str]], ipv4: list[str], address: str | None) -> list[dict]:
    """For every IPv4 listen directive (``ADDR:PORT``, ``*:PORT``, ``PORT``) the IPv6 twin it needs."""
    if not address:
        return []
    mine = {str(ipaddress.ip_interface(a).ip) for a in ipv4} | {"*", "0.0.0.0"}
    out = []
    for path, directives in listens.items():
        for directive in directives:
            head, _, rest = directive.partition(" ")
            host, sep, port = head.rpartition(":")
            if not sep:
                host, port = "*", head
            if host in mine and port.isdigit():
                twin = " ".join(filter(None, [f"[{address}]:{port}", rest]))
                out.append({"path": path, "ipv4": directive, "ipv6": twin, "port": int(port),
                            "present": twin in directives})
    return out


def query(module: AnsibleModule) -> dict:
    """The live state of the interface and of the services the migration touches."""
    iface = module.params["interface"]
    links = _ip_json(module, "addr", "show", "dev", iface)
    addr_info = links[0].get("addr_info", []) if links else []
    ipv6 = [f"{a['local']}/{a['prefixlen']}" for a in addr_info if a.get("family") == "inet6"
            and a.get("scope") == "global"]
    ipv4 = [f"{a['local']}/{a['prefixlen']}" for a in addr_info if a.get("family") == "inet"]
    route6 = _ip_json(module, "-6", "route", "show", "default")
    route4 = _ip_json(module, "-4", "route", "show", "default")
    sysctls = {name: _read(_sysctl_path(iface, name)) for name in ("disable_ipv6", "accept_ra", "autoconf")}
    sysctls["all.disable_ipv6"] = _read("/proc/sys/net/ipv6/conf/all/disable_ipv6")
    rc, out, _ = module.run_command(["nft", "-j", "list", "tables"])
    tables = [f"{t['table']['family']} {t['table']['name']}" for t in json.loads(out or "{}").get("nftables", [])
              if "table" in t] if rc == 0 else []
    nft_conf, include = module.params["nft_conf"], module.params["nft_include"]
    conf_text = _read(nft_conf) if nft_conf else None
    listens = _nginx_listens(module.params["nginx_sites_dir"])
    network_config = module.params["network_config"]
    return {
        "interface": iface,
        "ipv6_kernel": os.path.isdir("/proc/sys/net/ipv6"),
        "ipv6_addresses": ipv6,
        "ipv4_addresses": ipv4,
        "ipv6_gateway": route6[0].get("gateway") if route6 else None,
        "ipv4_gateway": route4[0].get("gateway") if route4 else None,
        "sysctls": sysctls,
        "nft_tables": tables,
        "nft_conf_exists": conf_text is not None,
        "nft_include_present": bool(conf_text and include and include in conf_text.splitlines()),
        "ipv4_networks": sorted({str(ipaddress.ip_interface(a).network) for a in ipv4}),
        "network_config_exists": bool(network_config and os.path.exists(network_config)),
        "nginx_listens": listens,
        "nginx_mirror": _nginx_mirror(listens, ipv4, module.params["address"]),
    }


def _set_sysctl(module: AnsibleModule, path: str, value: str, actions: list[str]) -> None:
    if _read(path) == value:
        return
    actions.append(f"{path}={value}")
    if not module.check_mode:
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(value)
        except OSError as exc:
            module.fail_json(msg=f"cannot set {path}: {exc}")


def _run(module: AnsibleModule, args: list[str], actions: list[str]) -> None:
    actions.append(" ".join(args))
    if module.check_mode:
        return
    rc, _, err = module.run_command(args)
    if rc != 0:
        module.fail_json(msg=f"{' '.join(args)} failed: {err.strip()}", actions=actions)


def _wait_for_dad(module: AnsibleModule, iface: str, address: str) -> None:
    """Duplicate address detection must finish before services can bind the address."""
    deadline = time.monotonic() + module.params["dad_timeout"]
    while True:
        links = _ip_json(module, "-6", "addr", "show", "dev", iface)
        info = next((a for a in (links[0].get("addr_info", []) if links else [])
                     if a.get("local") and ipaddress.ip_address(a["local"]) == ipaddress.ip_address(address)), None)
        if info is None:
            module.fail_json(msg=f"{address} disappeared from {iface}")
        if info.get("dadfailed"):
            module.fail_json(msg=f"duplicate address detection failed for {address} on {iface}: address in use")
        if not info.get("tentative"):
            return
        if time.monotonic() > deadline:
            module.fail_json(msg=f"{address} still tentative on {iface} after {module.params['dad_timeout']} s")
        time.sleep(0.1)


def _edit_nginx(module: AnsibleModule, mirror: list[dict], add: bool, keep: dict[str, list[str]],
                actions: list[str]) -> bool:
    """Add each missing IPv6 twin after its IPv4 listen line (``add``), or remove the twins ``keep`` (the preflight
    listen directives per file) does not list; then reload nginx. True when a site file changed."""
    by_file: dict[str, list[dict]] = {}
    for item in mirror:
        by_file.setdefault(item["path"], []).append(item)
    changed = False
    for path, items in by_file.items():
        lines = (_read_raw(path) or "").splitlines(keepends=True)
        out = []
        for line in lines:
            match = LISTEN.match(line)
            directive = match.group(1).strip() if match else None
            if not add and any(directive == i["ipv6"] and i["ipv6"] not in keep.get(path, []) for i in items):
                continue
            out.append(line)
            if add and directive is not None:
                for item in items:
                    if item["ipv4"] == directive and not item["present"]:
                        indent = line[:len(line) - len(line.lstrip())]
                        out.append(f"{indent}listen {item['ipv6']};\n")
        if out != lines:
            changed = True
            _write_file(module, {"path": path, "content": "".join(out), "mode": "0644"}, actions)
    if changed and module.params["nginx_reload"]:
        _run(module, ["/bin/sh", "-c", module.params["nginx_reload"]], actions)
    return changed


def _run_checks(module: AnsibleModule, current: dict, actions: list[str]) -> list[dict]:
    """Ping the IPv4 default gateway (with ``ipv4_gateway_check``, where there is one), then run each check
    (``name``, ``argv``); the first that fails fails the module with its output."""
    done, checks = [], list(module.params["checks"])
    if module.params["ipv4_gateway_check"] and current["ipv4_gateway"]:
        gateway = current["ipv4_gateway"]
        checks.insert(0, {"name": f"IPv4 gateway {gateway} answers ping",
                          "argv": ["ping", "-4", "-c", "1", "-W", "2", gateway]})
    for check in checks:
        rc, out, err = module.run_command(check["argv"])
        done.append({"name": check["name"], "rc": rc, "stdout": out.strip()})
        if rc != 0:
            module.fail_json(msg=f"{check['name']}: {(err or out).strip() or f'exit {rc}'}", checks=done,
                             actions=actions)
    return done


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and ipaddress.ip_address(a) == ipaddress.ip_address(b)


def present(module: AnsibleModule) -> list[str]:
    """Sysctls, address and default route as planned; only what differs is written."""
    p, actions = module.params, []
    iface, address = p["interface"], p["address"]
    if not address or not p["gateway"]:
        module.fail_json(msg="state=present needs address and gateway")
    _set_sysctl(module, "/proc/sys/net/ipv6/conf/all/disable_ipv6", "0", actions)
    for name, value in sorted(p["sysctls"].items()):
        _set_sysctl(module, _sysctl_path(iface, name), str(value), actions)
    state = query(module)
    wanted = ipaddress.ip_interface(f"{address}/{p['prefixlen']}")
    have = [ipaddress.ip_interface(a) for a in state["ipv6_addresses"]]
    if wanted not in have:
        _run(module, ["ip", "-6", "addr", "add", str(wanted), "dev", iface], actions)
    if not module.check_mode:
        _wait_for_dad(module, iface, address)
    if not _same(state["ipv6_gateway"], p["gateway"]):
        _run(module, ["ip", "-6", "route", "replace", "default", "via", p["gateway"], "dev", iface], actions)
    written = {f["path"] for f in p["files"] if _write_file(module, f, actions)}
    nft_file, table = p["nft_file"], p["nft_table"]
    if nft_file and table:
        if nft_file in written or f"inet {table}" not in state["nft_tables"]:
            _run(module, ["nft", "-f", nft_file], actions)
        conf, include = p["nft_conf"], p["nft_include"]
        if conf and include and state["nft_conf_exists"] and not state["nft_include_present"]:
            _write_file(module, {"path": conf, "content": (_read_raw(conf) or "").rstrip("\n") + f"\n{include}\n",
                                 "mode": "0644"}, actions)
    _edit_nginx(module, state["nginx_mirror"], True, {}, actions)
    return actions


def _read_raw(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _write_file(module: AnsibleModule, spec: dict, actions: list[str]) -> bool:
    """Write ``spec['content']`` to ``spec['path']`` atomically when it differs (or only when missing);
    ``validate`` (a command with %s) must accept the new content first. True when written."""
    path, content = spec["path"], spec["content"]
    old = _read_raw(path)
    if old == content or (old is not None and spec.get("only_if_missing")):
        return False
    actions.append(f"write {path}")
    if module.check_mode:
        return True
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.yunshu-tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(tmp, int(str(spec.get("mode") or "0644"), 8))
    if spec.get("validate"):
        rc, out, err = module.run_command(spec["validate"].replace("%s", tmp), use_unsafe_shell=False)
        if rc != 0:
            os.unlink(tmp)
            module.fail_json(msg=f"{path}: validation failed: {(err or out).strip()}", actions=actions)
    os.replace(tmp, path)
    return True


def absent(module: AnsibleModule) -> list[str]:
    """Back to the preflight record: addresses and route it did not have removed, sysctls restored."""
    p, actions = module.params, []
    before = p["preflight"] or _load_record(p["record"])
    if not before:
        return actions  # no record: configure failed before it changed anything, nothing to restore
    iface = p["interface"]
    state = query(module)
    keep = {ipaddress.ip_interface(a) for a in before.get("ipv6_addresses", [])}
    if p["address"]:
        planned = ipaddress.ip_interface(f"{p['address']}/{p['prefixlen']}")
        if planned in {ipaddress.ip_interface(a) for a in state["ipv6_addresses"]} and planned not in keep:
            _run(module, ["ip", "-6", "addr", "del", str(planned), "dev", iface], actions)
    old_gateway = before.get("ipv6_gateway")
    if old_gateway and not _same(state["ipv6_gateway"], old_gateway):
        _run(module, ["ip", "-6", "route", "replace", "default", "via", old_gateway, "dev", iface], actions)
    elif not old_gateway and state["ipv6_gateway"]:
        _run(module, ["ip", "-6", "route", "del", "default"], actions)
    for name, value in sorted((before.get("sysctls") or {}).items()):
        if value is None:
            continue
        path = ("/proc/sys/net/ipv6/conf/all/disable_ipv6" if name == "all.disable_ipv6"
                else _sysctl_path(iface, name))
        _set_sysctl(module, path, str(value), actions)
    table = p["nft_table"]
    if table and f"inet {table}" in state["nft_tables"] and f"inet {table}" not in before.get("nft_tables", []):
        _run(module, ["nft", "delete", "table", "inet", table], actions)
    remove = list(p["remove_files"])
    if p["network_config"] and before.get("network_config_exists") is False:
        remove.append(p["network_config"])  # the migration created it
    for path in remove:
        if os.path.lexists(path):
            actions.append(f"remove {path}")
            if not module.check_mode:
                os.unlink(path)
    conf, include = p["nft_conf"], p["nft_include"]
    if conf and include and state["nft_include_present"] and not before.get("nft_include_present"):
        text = _read_raw(conf) or ""
        kept = [line for line in text.splitlines() if line != include]
        _write_file(module, {"path": conf, "content": "\n".join(kept) + "\n", "mode": "0644"}, actions)
    _edit_nginx(module, state["nginx_mirror"], False, before.get("nginx_listens") or {}, actions)
    return actions


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["query", "present", "absent"], "default": "query"},
            "interface": {"type": "str", "required": True},
            "address": {"type": "str"},
            "prefixlen": {"type": "int", "default": 64},
            "gateway": {"type": "str"},
            "sysctls": {"type": "dict", "default": {}},
            "record": {"type": "path"},
            "preflight": {"type": "dict"},
            "nginx_sites_dir": {"type": "path"},
            "network_config": {"type": "path"},
            "nft_conf": {"type": "path"},
            "nft_include": {"type": "str"},
            "dad_timeout": {"type": "float", "default": 10.0},
            "files": {"type": "list", "elements": "dict", "default": []},
            "remove_files": {"type": "list", "elements": "path", "default": []},
            "nft_file": {"type": "path"},
            "nft_table": {"type": "str"},
            "nginx_reload": {"type": "str"},
            "checks": {"type": "list", "elements": "dict", "default": []},
            "require_ipv6": {"type": "bool", "default": True},
            "ipv4_gateway_check": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] in ("present", "absent"):
        preflight, actions = {}, []
        if p["state"] == "present" and p["record"]:
            preflight, actions = _record_preflight(module, query(module))
        actions += present(module) if p["state"] == "present" else absent(module)
        current = query(module)
        checks = _run_checks(module, current, actions) if not module.check_mode else []
        module.exit_json(changed=bool(actions), actions=actions, current=current, checks=checks,
                         preflight=preflight, address=p["address"], prefixlen=p["prefixlen"], gateway=p["gateway"],
                         nginx_ports=sorted({m["port"] for m in current["nginx_mirror"]}))
    current = query(module)
    if p["require_ipv6"] and not current["ipv6_kernel"]:
        module.fail_json(msg="IPv6 is disabled in the kernel (no /proc/sys/net/ipv6): boot without ipv6.disable=1")
    result: dict = {"changed": False, "actions": [], "current": current}
    if p["record"]:
        result["preflight"], result["actions"] = _record_preflight(module, current)
        result["changed"] = bool(result["actions"])
    result["checks"] = _run_checks(module, current, result["actions"])  # read-only: also in check mode
    module.exit_json(**result)


def _load_record(path: str | None) -> dict:
    """The preflight record saved at ``path`` ({} when there is none)."""
    saved = _read(path) if path else None
    return json.loads(saved) if saved else {}


def _record_preflight(module: AnsibleModule, current: dict) -> tuple[dict, list[str]]:
    """The preflight record at ``record``: the saved one, or ``current`` saved now (never overwritten, not in
    check mode); with the action taken."""
    path = module.params["record"]
    saved = _load_record(path)
    if saved:
        return saved, []
    record = dict(current, recorded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if not module.check_mode:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return record, [f"record {path}"]

if __name__ == "__main__":
    main()
