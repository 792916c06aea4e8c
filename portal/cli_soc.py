"""The ``yunshu soc`` commands: ingest, search, stats, rules, hunt, drills, alerts, retention."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from core.db import DB_INT_MAX
from portal.cli_common import err, open_configured_runtime
from soc.store.base import HISTOGRAM_INTERVALS, SearchQuery

_runtime = open_configured_runtime


def cmd_soc_ingest(args: argparse.Namespace) -> int:
    from soc.service import ingest_files, open_soc

    rt = _runtime()
    missing = [p for p in args.files if not Path(p).is_file()]
    if missing:
        err.print(f"[red]no such file: {', '.join(missing)}[/]")
        return 2
    soc = open_soc(rt, args.store)
    if args.host:
        soc.ctx = replace(soc.ctx, hostname=args.host)
        if soc.enricher.index.lookup({"host": {"name": args.host}}) is None:
            err.print(f"[yellow]--host {args.host}: not a host of the register; events are stored without "
                      "gov.* (system, department, 等保 level) / 台账中无此主机[/]")
    try:
        stats = ingest_files(soc, args.files, args.format, rt.settings.soc.max_line_bytes)
    finally:
        soc.close()
    print(json.dumps(stats.as_dict()))
    return 0


def _count(text: str) -> int:
    """An argparse type: a whole number ≥ 0."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= number <= DB_INT_MAX:
        raise argparse.ArgumentTypeError(f"{number} is not between 0 and {DB_INT_MAX}")
    return number


def _row_id(text: str) -> int:
    """An argparse type: the id of a stored row (1 … the databases' largest integer)."""
    number = _count(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not an id (ids start at 1)")
    return number


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
    soc = open_soc(_runtime(), args.store, must_exist=True, detect=False)
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
    soc = open_soc(_runtime(), args.store, must_exist=True, detect=False)
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
    try:
        fh = open(args.events, "rb")  # noqa: SIM115 - closed below; an unreadable path is reported first
    except OSError as exc:
        err.print(f"[red]--events {args.events}: {exc.strerror or exc}[/]")
        return 2
    with fh:
        for number, raw in enumerate(fh, 1):
            line = raw.decode("utf-8", "replace")  # a stray byte is a replacement character, as ingest decodes
            if not line.strip():
                continue
            index += 1
            try:
                event = json.loads(line)
            except (ValueError, RecursionError) as exc:
                err.print(f"[red]{args.events}:{number}: not JSON ({type(exc).__name__}: {exc}); skipped[/]")
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
    """Retro-hunt: the stored events a rule matches, as JSON lines; ``--rule-id`` looks in the built-in rules and
    the configured folders (soc.rules_dirs), as live detection does."""
    from soc.alerts.stage import load_configured_rules
    from soc.detect.retro import hunt, rule_from_text
    from soc.service import open_soc

    query = _soc_query(args, args.limit)
    if query is None:
        return 2
    rt = _runtime()
    try:
        if args.rule:
            rule = rule_from_text(Path(args.rule).read_text(encoding="utf-8"), args.pipeline)
        else:
            rules = load_configured_rules(rt.settings.soc.rules_dirs).rules
            rule = next((r for r in rules if args.rule_id in (r.id, r.name)), None)
            if rule is None:
                dirs = ", ".join(map(str, rt.settings.soc.rules_dirs)) or "none"
                err.print(f"[red]no rule with id or name {args.rule_id!r} among the built-in rules or the "
                          f"configured folders (soc.rules_dirs: {dirs})[/]", highlight=False)
                return 2
    except (OSError, ValueError) as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    soc = open_soc(rt, args.store, must_exist=True, detect=False)
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
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            err.print(f"[red]-o {args.output}: {exc.strerror or exc}[/]")
            return 2
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


def cmd_soc_alerts_assign(args: argparse.Namespace) -> int:
    """Hand an open alert over to USER (or unassign it with --unassign) without changing its status; audited."""
    from portal.alerts_api import check_assignee
    from soc.alerts.models import Alert
    from soc.alerts.service import AlertService, WorkflowError, alert_payload

    if (args.user is None) == (not args.unassign):
        err.print("[red]give either USER or --unassign[/]")
        return 2
    rt = _runtime()
    with rt.transaction() as session:
        alert = session.get(Alert, args.id)
        if alert is None:
            err.print(f"[red]no alert {args.id} / 告警不存在[/]")
            return 2
        try:
            assignee = None if args.unassign else check_assignee(session, args.user)
            AlertService(audit=rt.audit).assign(session, alert, assignee, args.actor, note=args.note)
        except (ValueError, WorkflowError) as exc:  # WorkflowError is a ValueError; both say what is wrong
            err.print(f"[red]{exc}[/]")
            session.rollback()
            return 2
        payload = alert_payload(alert)
    print(json.dumps(payload, ensure_ascii=False))
    return 0


def cmd_soc_retention(args: argparse.Namespace) -> int:
    from soc.service import apply_retention, open_soc

    rt = _runtime()
    soc = open_soc(rt, args.store, must_exist=True, detect=False)
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


def add_soc_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``yunshu soc …`` on the top-level sub-command parser."""
    soc = sub.add_parser("soc", help="security operations").add_subparsers(dest="sub", required=True)
    ing = soc.add_parser("ingest", help="parse, enrich and store log files")
    ing.add_argument("files", nargs="+")
    ing.add_argument("--format", default="auto",
                     choices=["auto", "syslog", "sshd", "nginx", "apache", "auditd", "json", "openstack"])
    ing.add_argument("--store", help="sqlite:///PATH or http(s)://HOST:PORT (default: the configured store)")
    ing.add_argument("--host", help="host.name for lines that name no host (access logs, OpenStack, files copied off "
                                    "a server), so they are enriched from the register")
    ing.set_defaults(func=cmd_soc_ingest)
    srch = soc.add_parser("search", help="search stored events (JSON lines)")
    _add_event_filters(srch)
    srch.add_argument("--limit", type=_count, default=100)
    srch.set_defaults(func=cmd_soc_search)
    stats = soc.add_parser("stats", help="aggregations over stored events: terms, date histogram (JSON lines)")
    _add_event_filters(stats)
    stats.add_argument("--terms", action="append", default=[], metavar="FIELD", help="top values of FIELD")
    stats.add_argument("--interval", choices=list(HISTOGRAM_INTERVALS), help="date histogram bucket size")
    stats.add_argument("--size", type=_count, default=10, help="buckets per terms field")
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
    which.add_argument("--rule-id", help="id or name of a loaded rule (built-in or from soc.rules_dirs)")
    hunt.add_argument("--pipeline", choices=["none", "ecs"], default="none")
    _add_event_filters(hunt)
    hunt.add_argument("--limit", type=_count, default=100)
    hunt.set_defaults(func=cmd_soc_hunt)
    drill = soc.add_parser("drill", help="drills (攻防演练/应急演练)").add_subparsers(dest="drill_cmd", required=True)
    run = drill.add_parser("run", help="create a drill from a scenario and replay its attack logs now")
    run.add_argument("scenario")
    run.add_argument("--complete", action="store_true", help="complete it too (detection gaps become findings)")
    run.add_argument("--actor", default=os.environ.get("USER", "cli"))
    run.set_defaults(func=cmd_soc_drill_run)
    rep = drill.add_parser("report", help="a drill's report")
    rep.add_argument("id", type=_row_id)
    rep.add_argument("--format", choices=["html", "json"], default="html")
    rep.add_argument("-o", "--output")
    rep.set_defaults(func=cmd_soc_drill_report)
    alerts = soc.add_parser("alerts", help="alerts as JSON lines, newest first; `alerts assign` hands one over")
    alerts.add_argument("--status", help="open, new, acknowledged, investigating, resolved or false_positive")
    alerts.add_argument("--limit", type=_count, default=1000)
    alerts.set_defaults(func=cmd_soc_alerts)
    alert_cmds = alerts.add_subparsers(dest="alerts_cmd")
    assign = alert_cmds.add_parser("assign", help="hand an open alert over to USER (status unchanged; audited)")
    assign.add_argument("id", type=_row_id, metavar="ID")
    assign.add_argument("user", nargs="?", metavar="USER", help="user name of an analyst (soc.alerts.manage)")
    assign.add_argument("--unassign", action="store_true", help="leave the alert without an assignee")
    assign.add_argument("--note", help="why it is handed over (kept as a note)")
    assign.add_argument("--actor", default=os.environ.get("USER", "cli"))
    assign.set_defaults(func=cmd_soc_alerts_assign)
    ret = soc.add_parser("retention", help="delete events past their retention (per data class)")
    ret.add_argument("--store")
    ret.set_defaults(func=cmd_soc_retention)
