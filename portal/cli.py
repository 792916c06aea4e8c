"""The ``yunshu`` command line."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import string
import sys
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import func, select

from core.crypto import ensure_self_signed_certificate
from core.runtime import AuditKeyMissing, Runtime, open_runtime
from core.settings import config_path, load_settings
from infra.onboarding import syslog_listen_addresses
from inventory.ansible_inventory import build_inventory, host_inventory
from inventory.files import FileFormatError
from inventory.models import System
from inventory.register import ImportRejected, export_text, import_file
from portal.cli_audit import add_audit_report_commands
from portal.cli_common import err, open_configured_runtime
from portal.cli_infra import add_infra_commands
from portal.cli_jobs import add_job_commands
from portal.cli_soc import add_soc_commands
from portal.models import ROLES, User
from portal.security import create_token, create_user
from portal.tickets.cli import add_ticket_commands
from soc.store.base import StoreConfigError, StoreUnavailable

SAMPLE_CITY = Path(__file__).resolve().parent.parent / "inventory" / "samples" / "city.yaml"
_runtime = open_configured_runtime


def _generated_password() -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^*-_=+"
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(20))
        if all(any(c in cls for c in pw) for cls in (string.ascii_lowercase, string.ascii_uppercase,
                                                      string.digits, "!@#%^*-_=+")):
            return pw


def ensure_admin(rt: Runtime) -> str | None:
    """Create the admin user on first start; return the generated password (printed once) if any."""
    with rt.transaction() as session:
        if session.scalar(select(User).where(User.role == "admin")):
            return None
        password = rt.settings.admin_password or _generated_password()
        create_user(session, rt.audit, rt.settings.portal, actor="system", username="admin", role="admin",
                    password=password, display_name="系统管理员 Administrator",
                    must_change_password=rt.settings.admin_password is None)
    return None if rt.settings.admin_password else password


def load_demo(rt: Runtime, force: bool) -> dict[str, dict[str, int]] | None:
    """Load the sample city when asked, or when the register is empty."""
    with rt.transaction() as session:
        empty = not session.scalar(select(func.count(System.id)))
        if not (force or empty):
            return None
        return import_file(session, SAMPLE_CITY, rt.audit, "system:demo").as_dict()


def cmd_up(args: argparse.Namespace) -> int:
    import uvicorn

    from portal.app import create_app

    rt = _runtime()
    app = create_app(rt, soc_listeners=True)  # validates the data files before anything is written
    portal = rt.settings.portal
    host, port = args.host or portal.host, args.port or portal.port
    try:
        password = ensure_admin(rt)
    except ValueError as exc:
        err.print(f"[red]cannot create the admin user: {exc} (YUNSHU_ADMIN_PASSWORD)[/]")
        return 2
    demo = None if args.no_demo else load_demo(rt, args.demo)
    with rt.sessions() as session:
        systems = session.scalar(select(func.count(System.id)))
    certfile, keyfile = portal.tls_certfile, portal.tls_keyfile
    if portal.tls_self_signed and not certfile:
        cert, key = ensure_self_signed_certificate(rt.settings.keys_dir, [host, "localhost"])
        certfile, keyfile = str(cert), str(key)
    scheme = "https" if certfile else "http"
    err.print(f"[bold]云枢 Yunshu[/] control plane — {scheme}://{host}:{port}/")
    err.print(f"  home (YUNSHU_HOME): {rt.settings.home.resolve()}")
    err.print(f"  database:           {rt.engine.url.render_as_string(hide_password=True)}")
    err.print(f"  audit signing key:  {rt.settings.keys_dir.resolve()}/audit_ed25519.pem")
    err.print(f"  API docs: {scheme}://{host}:{port}/docs   metrics: /metrics   health: /healthz")
    soc = rt.settings.soc
    listen = ", ".join(syslog_listen_addresses(rt))
    err.print(f"  syslog (UDP+TCP):   {listen} port {soc.syslog_port}   HTTP ingest: POST /api/soc/ingest")
    err.print(f"  event store:        {soc.store_url or rt.settings.home.resolve() / 'soc' / 'events.db'}")
    if demo:
        err.print(f"  sample city loaded: {demo['created']}")
    err.print(f"  systems in the register: {systems}")
    if password:
        err.print(f"  [bold yellow]admin password (shown once, change at first login): {password}[/]")
    uvicorn.run(app, host=host, port=port, log_level="info",
                ssl_certfile=certfile, ssl_keyfile=keyfile)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    rt = _runtime()
    try:
        with rt.transaction() as session:
            result = import_file(session, Path(args.file), rt.audit, args.actor, args.format)
    except FileNotFoundError:
        err.print(f"[red]no such file: {args.file}[/]")
        return 2
    except FileFormatError as exc:
        err.print(f"[red]{args.file}: {exc}; nothing was imported[/]")
        return 1
    except ImportRejected as exc:
        err.print(f"[red]{args.file}: {exc}[/]")
        for e in exc.errors:
            err.print(f"  {e}", markup=False, highlight=False)
        return 1
    print(json.dumps(result.as_dict(), ensure_ascii=False))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    rt = _runtime()
    with rt.sessions() as session:
        text = export_text(session, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_ansible(args: argparse.Namespace) -> int:
    rt = _runtime()
    with rt.sessions() as session:
        data = host_inventory(session, args.host) if args.host else build_inventory(session)
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


def cmd_audit_verify(_args: argparse.Namespace) -> int:
    settings = load_settings(create_home=False)
    public = settings.keys_dir / "audit_ed25519.pub"
    if not public.exists():
        err.print(f"[red]no audit key at {public}: is YUNSHU_HOME ({settings.home.resolve()}) the right instance?[/]")
        return 2
    rt = open_runtime(settings)
    with rt.sessions() as session:
        result = rt.audit.verify(session)
    print(json.dumps(result.as_dict(), ensure_ascii=False))
    if not result.ok:
        err.print(f"[red]audit chain broken at seq {result.bad_seq}: {result.kind} — {result.detail}[/]")
    return 0 if result.ok else 1


def cmd_user_add(args: argparse.Namespace) -> int:
    rt = _runtime()
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            err.print(f"[red]environment variable {args.password_env} is not set[/]")
            return 2
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.username}: ")
    else:
        err.print("[red]no terminal to ask for the password: use --password-env VAR[/]")
        return 2
    try:
        with rt.transaction() as session:
            create_user(session, rt.audit, rt.settings.portal, actor=args.actor, username=args.username,
                        role=args.role, password=password, display_name=args.display_name,
                        department=args.department, must_change_password=not args.no_change)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        return 1
    err.print(f"user {args.username} ({args.role}) created")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    rt = _runtime()
    with rt.transaction() as session:
        user = session.scalar(select(User).where(User.username == args.user))
        if user is None:
            err.print(f"[red]unknown user '{args.user}'[/]")
            return 1
        _, raw = create_token(session, rt.audit, actor=args.actor, user=user, name=args.name,
                              expires_days=args.days)
    err.print("API token (shown once; store it now):")
    print(raw)
    return 0


def cmd_net_plan(args: argparse.Namespace) -> int:
    from inventory.ipam import IpamAllocation, IpamExhausted, plan_ipv6

    rt = _runtime()
    net = rt.settings.net
    try:
        with rt.transaction() as session:
            before = session.scalar(select(func.count(IpamAllocation.id)))
            plan = plan_ipv6(session, net.ipv6_block, set(args.scope) or None, net.department_prefix_len,
                             net.subnet_prefix_len)
            added = session.scalar(select(func.count(IpamAllocation.id))) - before
            if added:
                rt.audit.append(session, actor=args.actor, action="ipam.allocate", object_type="ipam",
                                object_id=net.ipv6_block, payload={"allocations": added})
    except (ValueError, IpamExhausted) as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    for department in plan:
        print(json.dumps(department, ensure_ascii=False))
    err.print(f"{len(plan)} departments in {net.ipv6_block}; {added} new allocations")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yunshu", description="云枢 Yunshu — government cloud control plane")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="migrate, create the admin user and start the service")
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument("--demo", action="store_true", help="load the sample city (default when the register is empty)")
    up.add_argument("--no-demo", action="store_true", help="never load the sample city")
    up.set_defaults(func=cmd_up)

    inv = sub.add_parser("inventory", help="the system register").add_subparsers(dest="sub", required=True)
    imp = inv.add_parser("import", help="import a YAML or CSV file (all or nothing)")
    imp.add_argument("file")
    imp.add_argument("--format", choices=["yaml", "csv"])
    imp.add_argument("--actor", default=os.environ.get("USER", "cli"))
    imp.set_defaults(func=cmd_import)
    exp = inv.add_parser("export", help="export the register")
    exp.add_argument("--format", choices=["yaml", "csv"], default="yaml")
    exp.add_argument("-o", "--output")
    exp.set_defaults(func=cmd_export)
    ans = inv.add_parser("ansible", help="Ansible dynamic inventory")
    group = ans.add_mutually_exclusive_group(required=True)
    group.add_argument("--list", action="store_true")
    group.add_argument("--host")
    ans.set_defaults(func=cmd_ansible)

    audit = sub.add_parser("audit", help="the audit chain").add_subparsers(dest="sub", required=True)
    audit.add_parser("verify", help="recompute hashes and signatures").set_defaults(func=cmd_audit_verify)
    add_audit_report_commands(audit)

    user = sub.add_parser("user", help="users").add_subparsers(dest="sub", required=True)
    add = user.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--department")
    add.add_argument("--display-name")
    add.add_argument("--password-env", help="read the password from this environment variable")
    add.add_argument("--no-change", action="store_true", help="do not force a password change at first login")
    add.add_argument("--actor", default=os.environ.get("USER", "cli"))
    add.set_defaults(func=cmd_user_add)

    add_soc_commands(sub)
    net = sub.add_parser("net", help="the e-Government extranet").add_subparsers(dest="sub", required=True)
    plan = net.add_parser("plan-ipv6", help="the IPv6 address plan (allocates what is missing; JSON lines)")
    plan.add_argument("--scope", action="append", default=[], metavar="DEPARTMENT", help="only these departments")
    plan.add_argument("--actor", default=os.environ.get("USER", "cli"))
    plan.set_defaults(func=cmd_net_plan)
    add_job_commands(sub, net)
    add_ticket_commands(sub)
    add_infra_commands(sub)

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="sub", required=True)
    tc = token.add_parser("create", help="create a token (shown once)")
    tc.add_argument("--user", required=True)
    tc.add_argument("--name", required=True)
    tc.add_argument("--days", type=int, default=365, choices=range(1, 3651), metavar="1..3650")
    tc.add_argument("--actor", default=os.environ.get("USER", "cli"))
    tc.set_defaults(func=cmd_token_create)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # databases, keys, spool and artifacts are for this service account only
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValidationError as exc:  # settings from config.yaml or YUNSHU_* that do not validate
        err.print(f"[red]configuration error ({config_path()} / YUNSHU_* environment):[/]\n{exc}")
        return 2
    except AuditKeyMissing as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    except StoreConfigError as exc:  # a store URL or server that cannot be used: a setting to correct
        err.print(f"[red]事件存储配置错误 / event store: {exc}[/]")
        return 2
    except StoreUnavailable as exc:  # the event store is down or refusing (after the pipeline's retries)
        err.print(f"[red]事件存储不可用 / event store unavailable: {exc}[/]\n"
                  "已写入的事件不会重复：恢复后重新运行即可续传 / what was stored stays once: rerun when it is back")
        return 3


if __name__ == "__main__":
    sys.exit(main())
