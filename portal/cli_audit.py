"""``yunshu audit report`` and ``yunshu audit verify-report``: signed 等保 reports from the command line.

The lead wires them in portal/cli.py with ``add_audit_report_commands(audit)`` (``audit`` = the audit subparsers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from inventory.models import System
from portal.cli_common import err, open_configured_runtime
from portal.compliance.collect import SUPPORTED_LEVELS, unsupported_message
from portal.compliance.reports import load_or_create_report_key, unsupported_report, verify_report, write_report
from portal.compliance.store import run_evaluation


def cmd_audit_report(args: argparse.Namespace) -> int:
    """Collect, evaluate (with the stored answers), store the run and write the signed report to ``--out``."""
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        err.print(f"[red]--out {out}: exists and is not an empty directory; give a new one[/]")
        return 2
    rt = open_configured_runtime()
    try:
        with rt.sessions() as session:
            system = session.get(System, args.system)
            if system is None:
                err.print(f"[red]--system {args.system}: not in the register[/]")
                return 2
            level, name, dept = system.mlps_level, system.name, system.department_code
        if level not in SUPPORTED_LEVELS:
            data = unsupported_report({"id": args.system, "name": name, "level": level, "department": dept,
                                       "cloud_role": None}, unsupported_message(args.system, level))
            err.print(f"[yellow]{unsupported_message(args.system, level)}[/]")
        else:
            _, data = run_evaluation(rt, args.system, args.actor, include_portal=args.probe_portal,
                                     probe_timeout=args.probe_timeout, probe_targets=[] if args.no_probe else None)
        manifest = write_report(out, data, load_or_create_report_key(rt.settings.keys_dir))
    finally:
        rt.close()
    print(json.dumps({"directory": str(out), "system": args.system, "conclusion": data.get("conclusion"),
                      "rate_percent": data.get("rate_percent"), "evaluation_id": manifest["evaluation_id"],
                      "public_key_sha256": manifest["public_key_sha256"], "files": sorted(manifest["files"])},
                     ensure_ascii=False))
    return 0


def cmd_audit_verify_report(args: argparse.Namespace) -> int:
    """Exit 0 when the signature and every digest hold; 1 naming each tampered file; 2 on bad arguments."""
    trusted: Ed25519PublicKey | None = None
    if args.public_key:
        try:
            key = serialization.load_pem_public_key(Path(args.public_key).read_bytes())
        except (OSError, ValueError) as exc:
            err.print(f"[red]--public-key {args.public_key}: {exc}[/]")
            return 2
        if not isinstance(key, Ed25519PublicKey):
            err.print(f"[red]--public-key {args.public_key}: not an Ed25519 public key[/]")
            return 2
        trusted = key
    result = verify_report(args.directory, trusted)
    print(json.dumps(result.as_dict(), ensure_ascii=False))
    if result.ok:
        return 0
    for name, reason in result.problems:
        err.print(f"[red]{name}: {reason}[/]")
    return 1


def add_audit_report_commands(audit: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``report`` and ``verify-report`` to the ``yunshu audit`` subcommands."""
    rep = audit.add_parser("report", help="evaluate a system (等保 2.0) and write a signed HTML/JSON/CSV report")
    rep.add_argument("--system", required=True, help="register id, e.g. SYS-GAJ-001")
    rep.add_argument("--out", required=True, help="a new (or empty) directory for the report")
    rep.add_argument("--actor", default=os.environ.get("USER", "cli"))
    rep.add_argument("--probe-portal", action="store_true", help="also probe this portal's TLS endpoint")
    rep.add_argument("--no-probe", action="store_true", help="do not connect to endpoints (TLS evidence stays 待人工)")
    rep.add_argument("--probe-timeout", type=float, default=2.0, help="seconds per TLS/HTTP connection attempt")
    rep.set_defaults(func=cmd_audit_report)
    ver = audit.add_parser("verify-report", help="check a report's signature and every file's SHA-256")
    ver.add_argument("directory")
    ver.add_argument("--public-key", help="the signer's public key (PEM) to trust instead of the bundled one")
    ver.set_defaults(func=cmd_audit_verify_report)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m portal.cli_audit report …``) until portal/cli.py wires the commands."""
    parser = argparse.ArgumentParser(prog="yunshu audit")
    add_audit_report_commands(parser.add_subparsers(dest="sub", required=True))
    args = parser.parse_args(argv)
    os.umask(0o077)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
