"""Dual-stack migration benchmark (issue 5): ipv6_dualstack.yml on 50 lab hosts (lab 6), wall time of the first run
(target under 60 s) and of a second run, which must report changed=0.

Tuning: one fork per host (a single batch), SSH pipelining and ControlPersist (set by ``infra.ansible_run``), no fact
gathering, and the kernel-side work of each phase done by one module call per host. The lab and the register live
in a throwaway home; the lab is taken down afterwards. Needs root (network namespaces). Run:
``python -m bench.dualstack_bench [--hosts 50] [--forks 50]`` → bench/results/dualstack.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.report import machine_info, write_json
from core.runtime import open_runtime
from core.settings import Settings
from infra.ansible_run import PlaybookResult, run_playbook, write_inventory
from infra.lab import Lab
from infra.lab_register import start_registered_lab

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 60.0
LAB_ID = 6


def _outcome(result: PlaybookResult) -> dict[str, dict[str, Any]]:
    stats = [e for e in result.events if e.get("event") == "playbook_on_stats"]
    return stats[-1]["event_data"].get("artifact_data", {}).get("ipv6_dualstack", {}) if stats else {}


def _phases(result: PlaybookResult) -> list[dict[str, Any]]:
    """Seconds from each task's start to the next one's (per-host tasks run for the whole batch at once)."""
    starts = [(datetime.fromisoformat(e["created"]), e["event_data"].get("task", "?")) for e in result.events
              if e.get("event") in ("playbook_on_task_start", "playbook_on_handler_task_start") and e.get("created")]
    ends = [datetime.fromisoformat(e["created"]) for e in result.events
            if e.get("event") == "playbook_on_stats" and e.get("created")]
    marks = [*starts, (ends[-1], "end")] if ends else starts
    merged: dict[str, float] = {}
    for (t0, name), (t1, _) in itertools.pairwise(marks):
        merged[name] = merged.get(name, 0.0) + (t1 - t0).total_seconds()
    return [{"task": k, "s": round(v, 1)} for k, v in merged.items() if v >= 0.5]


def _summary(result: PlaybookResult) -> dict[str, Any]:
    outcome = _outcome(result)
    return {"wall_s": result.duration_s, "status": result.status, "rc": result.rc, "changed": result.changed,
            "changed_hosts": sorted(h for h, s in result.stats.items() if s.get("changed")),
            "failed_hosts": result.failed_hosts(), "hosts": len(result.stats),
            "verified": sum(1 for v in outcome.values() if v.get("verified")), "phases": _phases(result)}


def _reachable_from_dns(lab: Lab, outcome: dict[str, dict[str, Any]]) -> int:
    """Hosts that answer ping -6 at their new address from the DNS server's namespace (outside the playbook)."""
    namespace = lab.state()["dns"]["namespace"]
    return sum(1 for v in outcome.values() if v.get("ipv6")
               and lab.run_in(namespace, "ping", "-6", "-c", "1", "-W", "2", v["ipv6"], check=False).returncode == 0)


def run(hosts: int = 50, forks: int = 50, lab_id: int = LAB_ID, home: Path | None = None) -> dict[str, Any]:
    """Bring up a registered lab of ``hosts``, migrate it twice, take it down; the measurements as a dict."""
    if os.geteuid() != 0:
        raise SystemExit("the dual-stack benchmark needs root (network namespaces)")
    with tempfile.TemporaryDirectory(prefix="yunshu-dualstack-bench-") as tmp:
        base = home or Path(tmp)
        rt = open_runtime(Settings(home=base / "var"))
        lab = Lab(rt.settings.home, lab_id)
        lab.down()
        started = time.monotonic()
        try:
            start_registered_lab(rt, hosts, lab_id)
            lab_up_s = time.monotonic() - started
            with rt.transaction() as session:
                inventory = write_inventory(session, base / "inventory.yml", lab=lab,
                                            ipv6_block=rt.settings.net.ipv6_block)
            extravars = {"yunshu_ipv6_serial": "100%"}
            load_before = os.getloadavg()
            first = run_playbook("ipv6_dualstack.yml", inventory, base / "run1", extravars=extravars, forks=forks,
                                 timeout=900)
            load_during = os.getloadavg()
            reachable = _reachable_from_dns(lab, _outcome(first))
            second = run_playbook("ipv6_dualstack.yml", inventory, base / "run2", extravars=extravars, forks=forks,
                                  timeout=900)
        finally:
            lab.down()
            rt.close()
    one, two = _summary(first), _summary(second)
    one["reachable_from_dns_ns"] = reachable
    return {
        "benchmark": "dualstack",
        "machine": machine_info(ROOT),
        "params": {"lab_hosts": hosts, "playbook_hosts": one["hosts"], "forks": forks, "serial": "100%",
                   "pipelining": True, "ssh": "ControlMaster=auto, ControlPersist=60s", "gather_facts": False},
        "lab_up_s": round(lab_up_s, 1),
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after_first": [round(x, 2) for x in load_during]},
        "first": one,
        "second": two,
        "target_s": TARGET_S,
        "pass": {"wall_time": one["wall_s"] < TARGET_S and one["status"] == "successful",
                 "idempotent": two["changed"] == 0 and two["status"] == "successful"},
    }


def markdown(r: dict[str, Any]) -> str:
    """The results as a markdown table with the machine underneath."""
    one, two, p, m = r["first"], r["second"], r["params"], r["machine"]
    verdict = {True: "PASS", False: "FAIL"}
    lines = [
        "| Measurement | Value | Target | Result |", "|---|---:|---:|---|",
        f"| Dual-stack migration, {p['lab_hosts']} lab hosts (+ DNS server), first run | {one['wall_s']:.1f} s | "
        f"< {r['target_s']:.0f} s | {verdict[r['pass']['wall_time']]} |",
        f"| Second run: changed tasks | {two['changed']} ({two['wall_s']:.1f} s) | 0 | "
        f"{verdict[r['pass']['idempotent']]} |",
        f"| Hosts verified by the playbook | {one['verified']} / {one['hosts']} | all | |",
        f"| Hosts answering ping -6 from the DNS server's namespace | {one['reachable_from_dns_ns']} | all | |",
        "",
        f"First run: status {one['status']}, {one['changed']} changed tasks, failed hosts: "
        f"{', '.join(one['failed_hosts']) or 'none'}. Tuning: forks {p['forks']}, serial {p['serial']}, SSH "
        f"pipelining, {p['ssh']}, no fact gathering. Lab start (not timed above): {r['lab_up_s']} s.",
        "",
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, Python {m['python']}, {m['os']}; {m['date']}, commit "
        f"{m['git'] or 'n/a'}. Load average (1/5/15 min) before the first run {r['load_average']['before']}, "
        f"after it {r['load_average']['after_first']} — the machine is shared, other jobs' load is included.",
        "",
        "Where the first run's time goes (seconds per task, all hosts of the batch together):",
        "",
        "| Task | s |", "|---|---:|",
    ]
    lines += [f"| {p['task']} | {p['s']:.1f} |" for p in one.get("phases", [])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI: run the benchmark and write ``dualstack.json`` and ``dualstack.md``; exit 1 when a target is missed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--forks", type=int, default=50)
    ap.add_argument("--lab-id", type=int, default=LAB_ID)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    result = run(args.hosts, args.forks, args.lab_id)
    write_json(args.results / "dualstack.json", result)
    (args.results / "dualstack.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    print(json.dumps(result["pass"]))
    return 0 if all(result["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
