"""The ``yunshu`` command line."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import string
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import func, select

from core.crypto import ensure_self_signed_certificate
from core.runtime import AuditKeyMissing, Runtime, open_runtime
from core.settings import config_path, load_settings
from inventory.ansible_inventory import build_inventory, host_inventory
from inventory.files import FileFormatError
from inventory.models import System
from inventory.register import ImportRejected, export_text, import_file
from portal.models import ROLES, User
from portal.security import create_token, create_user
from soc.store.base import HISTOGRAM_INTERVALS, SearchQuery

SAMPLE_CITY = Path(__file__).resolve().parent.parent / "inventory" / "samples" / "city.yaml"
err = Console(stderr=True, soft_wrap=True)


def _runtime() -> Runtime:
    return open_runtime(load_settings())


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
    err.print(f"  syslog (UDP+TCP):   {soc.syslog_host}:{soc.syslog_port}   HTTP ingest: POST /api/soc/ingest")
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


def cmd_soc_ingest(args: argparse.Namespace) -> int:
    from soc.service import ingest_files, open_soc

    rt = _runtime()
    missing = [p for p in args.files if not Path(p).is_file()]
    if missing:
        err.print(f"[red]no such file: {', '.join(missing)}[/]")
        return 2
    soc = open_soc(rt, args.store)
    try:
        stats = ingest_files(soc, args.files, args.format, rt.settings.soc.max_line_bytes)
    finally:
        soc.close()
    print(json.dumps(stats.as_dict()))
    return 0


def _soc_query(args: argparse.Namespace, limit: int = 100) -> SearchQuery | None:
    """The SearchQuery of the shared filter options (--query, --where, --from, --to); None after an error."""
    from soc.ecs import parse_query_time
    from soc.store.base import split_where

    try:
        where, cidr = split_where(args.where)
    except ValueError as exc:
        err.print(f"[red]--where: {exc}[/]")
        return None
    try:
        start, end = parse_query_time(args.start), parse_query_time(args.end)
    except ValueError as exc:
        err.print(f"[red]--from/--to: {exc}[/]")
        return None
    return SearchQuery(start=start, end=end, text=args.query, where=where, cidr=cidr, limit=limit)


def cmd_soc_search(args: argparse.Namespace) -> int:
    from soc.service import open_soc

    query = _soc_query(args, args.limit)
    if query is None:
        return 2
    soc = open_soc(_runtime(), args.store)
    try:
        result = soc.store.search(query)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    finally:
        soc.close()
    for _, event in result.hits:
        print(json.dumps(event, ensure_ascii=False))
    err.print(f"{len(result.hits)} of {result.total} events")
    return 0


def cmd_soc_stats(args: argparse.Namespace) -> int:
    """Aggregations as JSON lines: the total, one line per terms bucket, one per histogram bucket."""
    from soc.service import open_soc
    from soc.store.aggregate import aggregate

    query = _soc_query(args)
    if query is None:
        return 2
    soc = open_soc(_runtime(), args.store)
    try:
        answer = aggregate(soc.store, query, args.terms, args.interval, args.size)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    finally:
        soc.close()
    print(json.dumps({"agg": "total", "count": answer["total"]}))
    for field_name, buckets in answer["terms"].items():
        for bucket in buckets:
            print(json.dumps({"agg": "terms", "field": field_name, **bucket}, ensure_ascii=False))
    for bucket in answer.get("histogram", {}).get("buckets", []):
        print(json.dumps({"agg": "date_histogram", "interval": args.interval, **bucket}))
    return 0


def _load_ruleset(paths: list[str], pipeline: str):  # type: ignore[no-untyped-def]
    from soc.detect.loader import ecs_pipeline, load_rules

    return load_rules(paths, ecs_pipeline() if pipeline == "ecs" else None)


def cmd_soc_rules_check(args: argparse.Namespace) -> int:
    """List every rule that fails to load and why; exit 1 when any does."""
    try:
        ruleset = _load_ruleset(args.paths, args.pipeline)
    except FileNotFoundError as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    for error in ruleset.errors:
        print(json.dumps({"path": error.path, "title": error.title, "reason": error.reason}, ensure_ascii=False))
    share = ruleset.loaded / ruleset.total if ruleset.total else 1.0
    err.print(f"loaded {ruleset.loaded} of {ruleset.total} rules ({share:.1%}): {len(ruleset.rules)} detection, "
              f"{len(ruleset.correlations)} correlation; {len(ruleset.errors)} failed")
    return 1 if ruleset.errors else 0


def cmd_soc_rules_match(args: argparse.Namespace) -> int:
    """Evaluate rules against JSON events; one JSON line per match."""
    from soc.detect.engine import Detector

    try:
        ruleset = _load_ruleset(args.rules, args.pipeline)
    except FileNotFoundError as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    for error in ruleset.errors:
        err.print(f"[yellow]not loaded: {error.path}: {error.reason}[/]")
    detector = Detector(ruleset, logsources={})  # raw events: every rule applies, whatever the dataset
    bad = 0
    index = -1
    with open(args.events, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            index += 1
            try:
                event = json.loads(line)
            except ValueError as exc:
                err.print(f"[red]{args.events}:{number}: not JSON ({exc}); skipped[/]")
                bad += 1
                continue
            if not isinstance(event, dict):
                err.print(f"[red]{args.events}:{number}: a JSON object is expected; skipped[/]")
                bad += 1
                continue
            matched, correlated = detector.process(event)
            for rule in matched:
                if rule.generate:
                    print(json.dumps({"rule_id": rule.id, "title": rule.title, "level": rule.level,
                                      "event_index": index}, ensure_ascii=False))
            for hit in correlated:
                print(json.dumps({"rule_id": hit.correlation.id, "title": hit.correlation.title,
                                  "level": hit.correlation.level, "event_index": index, "correlation": True,
                                  "group": hit.group, "count": hit.count}, ensure_ascii=False))
    return 1 if bad else 0


def cmd_soc_hunt(args: argparse.Namespace) -> int:
    """Retro-hunt: the stored events a rule matches, as JSON lines."""
    from soc.detect.loader import BUILTIN_RULES, load_rules
    from soc.detect.retro import hunt, rule_from_text
    from soc.service import open_soc

    query = _soc_query(args, args.limit)
    if query is None:
        return 2
    try:
        if args.rule:
            rule = rule_from_text(Path(args.rule).read_text(encoding="utf-8"), args.pipeline)
        else:
            rule = next((r for r in load_rules([BUILTIN_RULES]).rules if args.rule_id in (r.id, r.name)), None)
            if rule is None:
                err.print(f"[red]no built-in rule with id or name {args.rule_id!r}[/]")
                return 2
    except (OSError, ValueError) as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    soc = open_soc(_runtime(), args.store)
    try:
        result = hunt(soc.store, rule, query)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    finally:
        soc.close()
    for doc_id, event in result.hits:
        print(json.dumps({"_id": doc_id, **event}, ensure_ascii=False))
    err.print(f"{rule.title}: {len(result.hits)} of {result.total} matching events")
    return 0


def cmd_soc_drill_run(args: argparse.Namespace) -> int:
    """Create a drill from a scenario, replay its attack logs through the pipeline and print the score."""
    from soc.drills.replay import replay
    from soc.drills.scenario import scenarios
    from soc.drills.service import DrillError, complete, create_drill
    from soc.service import open_soc

    scenario = scenarios().get(args.scenario)
    if scenario is None:
        err.print(f"[red]unknown scenario {args.scenario!r}; known: {', '.join(scenarios())}[/]")
        return 2
    rt = _runtime()
    with rt.transaction() as session:
        drill_id = create_drill(session, rt.audit, args.actor, scenario, datetime.now(UTC)).id
    soc = open_soc(rt)
    try:
        result = replay(rt, soc, drill_id, scenario, args.actor)
    except DrillError as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    finally:
        soc.close()
    if args.complete:
        from soc.drills.models import Drill

        with rt.transaction() as session:
            drill = session.get(Drill, drill_id)
            assert drill is not None
            result = complete(session, rt.audit, args.actor, drill)
    print(json.dumps(result, ensure_ascii=False))
    return 0


def cmd_soc_drill_report(args: argparse.Namespace) -> int:
    from soc.drills.models import Drill
    from soc.drills.report import report_html, report_json
    from soc.drills.service import score

    rt = _runtime()
    with rt.sessions() as session:
        drill = session.get(Drill, args.id)
        if drill is None:
            err.print(f"[red]no drill {args.id}[/]")
            return 2
        result = score(session, drill)
    text = report_json(result) if args.format == "json" else report_html(result)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


def cmd_soc_alerts(args: argparse.Namespace) -> int:
    """Alerts as JSON lines, newest first."""
    from soc.alerts.models import Alert
    from soc.alerts.policy import OPEN_STATUSES, STATUSES
    from soc.alerts.service import alert_payload

    if args.status and args.status != "open" and args.status not in STATUSES:
        err.print(f"[red]--status must be open or one of {', '.join(STATUSES)}[/]")
        return 2
    rt = _runtime()
    with rt.sessions() as session:
        query = select(Alert)
        if args.status == "open":
            query = query.where(Alert.status.in_(OPEN_STATUSES))
        elif args.status:
            query = query.where(Alert.status == args.status)
        for alert in session.scalars(query.order_by(Alert.last_seen.desc(), Alert.id.desc()).limit(args.limit)):
            print(json.dumps(alert_payload(alert), ensure_ascii=False))
    return 0


def cmd_soc_retention(args: argparse.Namespace) -> int:
    from soc.service import apply_retention, open_soc

    rt = _runtime()
    soc = open_soc(rt, args.store)
    try:
        deleted = apply_retention(soc, rt.settings.soc.retention_days)
    finally:
        soc.close()
    print(json.dumps({"deleted": deleted, "retention_days": rt.settings.soc.retention_days}))
    return 0


def _add_event_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", help="full text in message")
    parser.add_argument("--where", action="append", default=[], help="field=value (CIDR for IP fields)")
    parser.add_argument("--from", dest="start", help="ISO time (Asia/Shanghai when no zone)")
    parser.add_argument("--to", dest="end")
    parser.add_argument("--store", help="sqlite:///PATH or http(s)://HOST:PORT (default: the configured store)")


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

    soc = sub.add_parser("soc", help="security operations").add_subparsers(dest="sub", required=True)
    ing = soc.add_parser("ingest", help="parse, enrich and store log files")
    ing.add_argument("files", nargs="+")
    ing.add_argument("--format", default="auto",
                     choices=["auto", "syslog", "sshd", "nginx", "apache", "auditd", "json", "openstack"])
    ing.add_argument("--store", help="sqlite:///PATH or http(s)://HOST:PORT (default: the configured store)")
    ing.set_defaults(func=cmd_soc_ingest)
    srch = soc.add_parser("search", help="search stored events (JSON lines)")
    _add_event_filters(srch)
    srch.add_argument("--limit", type=int, default=100)
    srch.set_defaults(func=cmd_soc_search)
    stats = soc.add_parser("stats", help="aggregations over stored events: terms, date histogram (JSON lines)")
    _add_event_filters(stats)
    stats.add_argument("--terms", action="append", default=[], metavar="FIELD", help="top values of FIELD")
    stats.add_argument("--interval", choices=list(HISTOGRAM_INTERVALS), help="date histogram bucket size")
    stats.add_argument("--size", type=int, default=10, help="buckets per terms field")
    stats.set_defaults(func=cmd_soc_stats)
    rules = soc.add_parser("rules", help="Sigma rules").add_subparsers(dest="rules_cmd", required=True)
    check = rules.add_parser("check", help="load rules and list every one that fails, with the reason")
    check.add_argument("paths", nargs="+", metavar="DIR_OR_FILE")
    check.add_argument("--pipeline", choices=["none", "ecs"], default="none",
                       help="ecs: map SigmaHQ field names to ECS before compiling")
    check.set_defaults(func=cmd_soc_rules_check)
    match = rules.add_parser("match", help="evaluate rules against JSON-lines events")
    match.add_argument("--rules", nargs="+", required=True, metavar="DIR_OR_FILE")
    match.add_argument("--events", required=True, metavar="FILE.jsonl")
    match.add_argument("--pipeline", choices=["none", "ecs"], default="none",
                       help="none (default): field names as they stand in the events; ecs: SigmaHQ names mapped")
    match.set_defaults(func=cmd_soc_rules_match)
    hunt = soc.add_parser("hunt", help="retro-hunt: run a Sigma rule over stored events (JSON lines)")
    which = hunt.add_mutually_exclusive_group(required=True)
    which.add_argument("--rule", metavar="FILE.yml", help="a Sigma rule file")
    which.add_argument("--rule-id", help="id or name of a built-in rule")
    hunt.add_argument("--pipeline", choices=["none", "ecs"], default="none")
    _add_event_filters(hunt)
    hunt.add_argument("--limit", type=int, default=100)
    hunt.set_defaults(func=cmd_soc_hunt)
    drill = soc.add_parser("drill", help="drills (攻防演练/应急演练)").add_subparsers(dest="drill_cmd", required=True)
    run = drill.add_parser("run", help="create a drill from a scenario and replay its attack logs now")
    run.add_argument("scenario")
    run.add_argument("--complete", action="store_true", help="complete it too (detection gaps become findings)")
    run.add_argument("--actor", default=os.environ.get("USER", "cli"))
    run.set_defaults(func=cmd_soc_drill_run)
    rep = drill.add_parser("report", help="a drill's report")
    rep.add_argument("id", type=int)
    rep.add_argument("--format", choices=["html", "json"], default="html")
    rep.add_argument("-o", "--output")
    rep.set_defaults(func=cmd_soc_drill_report)
    alerts = soc.add_parser("alerts", help="alerts as JSON lines, newest first")
    alerts.add_argument("--status", help="open, new, acknowledged, investigating, resolved or false_positive")
    alerts.add_argument("--limit", type=int, default=1000)
    alerts.set_defaults(func=cmd_soc_alerts)
    ret = soc.add_parser("retention", help="delete events past their retention (per data class)")
    ret.add_argument("--store")
    ret.set_defaults(func=cmd_soc_retention)

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


if __name__ == "__main__":
    sys.exit(main())
