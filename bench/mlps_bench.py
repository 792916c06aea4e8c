"""等保 evaluation benchmark (issue 7): 1,000 synthetic level-3 systems against the full level-3 catalog.

Each system is a government-cloud customer (general requirements + the customer side of the cloud extension) with
2–8 hosts and seeded random evidence: most facts pass, a few fail, some sections are missing, some manual items are
answered by an auditor. Timed: validating the plain evidence mappings into models, and the evaluation itself
(checks, combination, high risks, 符合率, conclusion). Target: the whole run under 5 s.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.report import machine_info, write_json
from policies.mlps.catalog import default_catalog
from policies.mlps.evaluate import Answer, Evaluator
from policies.mlps.evidence import Evidence
from policies.mlps.results import Result

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 5.0
AS_OF = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _host(rng: random.Random, name: str, bad: float) -> dict[str, Any]:
    def flip(good: Any, poor: Any) -> Any:
        return poor if rng.random() < bad else good

    return {
        "name": name,
        "collected_at": AS_OF - timedelta(hours=rng.randint(1, 200)),
        "password": {"minlen": flip(12, 6), "minclass": flip(3, 1), "max_days": flip(90, 99999)},
        "empty_password_accounts": flip([], ["guest"]),
        "faillock": {"enabled": flip(True, False), "deny": 5, "unlock_time": 900},
        "tmout": flip(600, None),
        "sshd": {
            "permit_root_login": flip("no", "yes"),
            "permit_empty_passwords": False,
            "authentication_methods": flip("publickey,keyboard-interactive", None),
            "client_alive_interval": 300,
            "client_alive_count_max": 2,
            "allowed_sources": flip(["10.20.0.0/24"], []),
        },
        "uid0_accounts": ["root"],
        "default_accounts_enabled": flip([], ["admin"]),
        "stale_accounts": flip([], ["olduser"]),
        "shared_accounts": [],
        "sudo_nopasswd_all": flip([], ["deploy"]),
        "mac": {"kind": "selinux", "mode": flip("enforcing", "permissive")},
        "auditd": {"running": flip(True, False), "rules": 40, "immutable": flip(True, False)},
        "rsyslog": {"forwarding": flip(True, False), "targets": ["soc:6514"]},
        "listening": [
            {"proto": "tcp", "port": 22},
            {"proto": "tcp", "port": 443},
            *([{"proto": "tcp", "port": 445}] if rng.random() < bad else []),
        ],
        "pending_security_updates": flip(0, rng.randint(1, 30)),
        "exploitable_vulns": flip([], ["CVE-2024-6387"]) if rng.random() < 0.2 else [],
        "antimalware": {"installed": True, "running": True, "signatures_age_days": flip(1, 40)},
        "baseline": {"playbook": "onboard.yml", "applied_at": AS_OF - timedelta(days=rng.randint(1, 300))},
    }


def synthetic_system(rng: random.Random, index: int) -> dict[str, Any]:
    """One level-3 cloud-customer system's evidence as plain data (what collectors hand over)."""
    bad = rng.choice([0.0, 0.02, 0.05, 0.15, 0.4])
    n = rng.randint(2, 8)
    names = [f"s{index:04d}-h{i}" for i in range(n)]
    third = index % 250
    return {
        "register": {
            "system_id": f"SYS-{index:04d}",
            "name": f"系统 {index}",
            "department": f"D{index % 40:02d}",
            "owner": "负责人",
            "mlps_level": 3,
            "grading_info_level": 3,
            "grading_service_level": rng.choice([2, 3]),
            "data_class": rng.choice(["general", "important"]),
            "public_data_level": rng.choice(["L2", "L3", "L4"]),
            "hosting": "gov_cloud",
            "network_stack": rng.choice(["ipv4", "dual", "dual"]),
            "business_continuity_high": rng.random() < 0.3,
            "filing_no": None if rng.random() < bad else f"F-{index:05d}",
            "last_assessment": (AS_OF - timedelta(days=rng.randint(30, 500))).date(),
            "hosts": [
                {
                    "name": h,
                    "role": rng.choice(["web", "app", "db"]),
                    "ipv4": f"10.{third}.{i}.{index % 200 + 1}",
                    "ipv6": f"fd00:{third:x}:{i}::{index % 200 + 1:x}",
                }
                for i, h in enumerate(names)
            ],
            "networks": [{"code": f"N{index}", "prefixes": [f"10.{third}.0.0/16", f"fd00:{third:x}::/32"]}],
        },
        "hosts": None if rng.random() < 0.05 else [_host(rng, h, bad) for h in names],
        "infra": {
            "region": "cn-gov-1",
            "country": "CN",
            "ops_countries": ["CN"],
            "platform_mlps_level": 3,
            "volumes": [{"name": f"{h}-vol", "encrypted": rng.random() >= bad} for h in names],
            "instances": [
                {"name": h, "role": "app", "floating_ip": rng.random() < 0.1, "exposure_approved": rng.random() >= bad}
                for h in names
            ],
            "security_rules": [
                {"group": "web", "protocol": "tcp", "port_min": 443, "port_max": 443, "remote": "0.0.0.0/0"},
                {
                    "group": "mgmt",
                    "protocol": "tcp",
                    "port_min": 22,
                    "port_max": 22,
                    "remote": "0.0.0.0/0" if rng.random() < bad else "10.20.0.0/24",
                },
            ],
            "default_deny": rng.random() >= bad,
            "isolated_tenant_network": True,
            "backups": {
                "policy": rng.random() >= bad,
                "last_backup_at": AS_OF - timedelta(hours=rng.randint(1, 60)),
                "offsite": rng.random() >= bad,
                "offsite_realtime": rng.random() < 0.6,
                "local_copy": True,
                "last_restore_test_at": AS_OF - timedelta(days=rng.randint(10, 500)),
            },
        },
        "soc": {
            "as_of": AS_OF,
            "hosts_reporting_24h": [h for h in names if rng.random() >= bad],
            "retention_days": rng.choice([90, 180, 400]),
            "network_sources_reporting": True,
            "network_rules_enabled": 25,
            "alerts_total": 20,
            "alerts_over_sla": rng.choice([0, 0, 0, 2]),
        },
        "drills": {
            "drills": [
                {
                    "kind": "emergency",
                    "held_on": (AS_OF - timedelta(days=rng.randint(20, 500))).date(),
                    "findings_total": 4,
                    "findings_open": rng.choice([0, 0, 1]),
                }
            ]
        },
        "crypto": {
            "endpoints": [
                {"name": "portal", "protocols": rng.choice([["TLSv1.2", "TLSv1.3"], ["TLSv1.0", "TLSv1.2"]])}
            ],
            "scheme_on_file": rng.random() >= bad,
            "scheme_requires_sm": True,
            "sm_algorithms_in_use": ["SM2", "SM3", "SM4"],
            "certified_products": True,
        },
    }


def synthetic_answers(rng: random.Random, manual_units: list[str], share: float) -> list[Answer]:
    """Auditor answers for a share of the manual requirements (mostly 符合)."""
    picked = [u for u in manual_units if rng.random() < share]
    return [
        Answer(
            unit=u,
            result=rng.choice([Result.COMPLIANT] * 8 + [Result.PARTIAL, Result.NON_COMPLIANT]),
            auditor="bench",
            answered_at=AS_OF,
        )
        for u in picked
    ]


def run(systems: int, seed: int, repeat: int) -> dict[str, Any]:
    rng = random.Random(seed)
    raw = [synthetic_system(rng, i) for i in range(systems)]
    catalog = default_catalog()
    manual = [r.unit for r in catalog.for_system(3, "customer") if r.kind == "manual"]
    answers = [synthetic_answers(rng, manual, rng.choice([0.0, 0.5, 1.0])) for _ in range(systems)]
    evaluator = Evaluator(catalog)
    evaluator.evaluate(Evidence.model_validate(raw[0]), answers[0], AS_OF)  # warm caches (catalog selection, imports)

    best: dict[str, float] = {}
    evaluations = []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        evidence = [Evidence.model_validate(r) for r in raw]
        w1, c1 = time.perf_counter(), time.process_time()
        evaluations = [evaluator.evaluate(ev, ans, AS_OF) for ev, ans in zip(evidence, answers, strict=True)]
        w2, c2 = time.perf_counter(), time.process_time()
        for key, value in (
            ("validate_s", w1 - w0),
            ("evaluate_s", w2 - w1),
            ("total_s", w2 - w0),
            ("validate_cpu_s", c1 - c0),
            ("evaluate_cpu_s", c2 - c1),
            ("total_cpu_s", c2 - c0),
        ):
            best[key] = min(best.get(key, value), value)

    items = sum(len(e.results) for e in evaluations)
    results = Counter(r.result.value for e in evaluations for r in e.results)
    conclusions = Counter(f"{e.conclusion}{' (暂定)' if e.provisional else ''}" for e in evaluations)
    return {
        "systems": systems,
        "seed": seed,
        "repeat": repeat,
        "catalog": {
            "level": 3,
            "requirements_per_system": len(catalog.for_system(3, "customer")),
            "general": catalog.count(3, "general"),
            "cloud_customer": len(catalog.for_system(3, "customer")) - catalog.count(3, "general"),
        },
        "timing": {k: round(v, 4) for k, v in best.items()},
        "systems_per_cpu_s": round(systems / best["total_cpu_s"], 1),
        "requirements_evaluated": items,
        "requirements_per_cpu_s": round(items / best["evaluate_cpu_s"]),
        "load_average_1m": os.getloadavg()[0],
        "results": dict(results),
        "conclusions": dict(conclusions),
        "high_risks": sum(len(e.high_risks) for e in evaluations),
        "target_s": TARGET_S,
        # Single-threaded: on an idle core wall time equals CPU time. The 2 cores are shared with other jobs, so
        # the verdict uses this process's CPU time and the wall time is reported beside it with the load average.
        "pass": best["total_cpu_s"] < TARGET_S,
        "pass_wall": best["total_s"] < TARGET_S,
    }


def markdown(r: dict[str, Any]) -> str:
    """The results as a markdown table with the machine underneath."""
    t, m = r["timing"], r["machine"]
    verdict = "PASS" if r["pass"] else "FAIL"
    lines = [
        "| Measurement | CPU time | Wall time | Target | Result |",
        "|---|---:|---:|---:|---|",
        f"| {r['systems']:,} level-3 systems, validate evidence + evaluate (1 core) | {t['total_cpu_s']:.2f} s | "
        f"{t['total_s']:.2f} s | < {r['target_s']:.0f} s | {verdict} |",
        f"| evidence mappings → models | {t['validate_cpu_s']:.2f} s | {t['validate_s']:.2f} s | | |",
        f"| evaluation ({r['requirements_evaluated']:,} requirements, {r['requirements_per_cpu_s']:,}/CPU-s) | "
        f"{t['evaluate_cpu_s']:.2f} s | {t['evaluate_s']:.2f} s | | |",
        "",
        f"Verdict on CPU time (= wall time on an idle core). The 2 cores are shared: 1-minute load average "
        f"{r['load_average_1m']:.1f} during the run; wall time grows when they are busy.",
        "",
        f"Catalog: {r['catalog']['requirements_per_system']} requirements per system "
        f"({r['catalog']['general']} general "
        f"+ {r['catalog']['cloud_customer']} cloud customer side). Results: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(r["results"].items()))
        + ". Conclusions: "
        + ", ".join(f"{k} {v}" for k, v in sorted(r["conclusions"].items()))
        + f"; high risks {r['high_risks']:,}. "
        f"Seed {r['seed']}, best of {r['repeat']}.",
        "",
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, Python {m['python']}, {m['os']}; {m['date']}, "
        f"commit {m['git'] or 'n/a'}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.mlps_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--systems", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    result = run(args.systems, args.seed, args.repeat)
    result["machine"] = machine_info(ROOT)
    write_json(args.results / "mlps.json", result)
    (args.results / "mlps.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
