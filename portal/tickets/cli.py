"""``yunshu tickets …``: submit a ticket file, review / approve / reject / withdraw / renew as a named user, show and
list tickets as JSON, run the maintenance (escalation, expiry) and the idle-systems report."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from portal.cli_common import err, open_configured_runtime
from portal.deps import Principal
from portal.models import User
from portal.tickets import service as svc
from portal.tickets.api import to_datetime
from portal.tickets.models import Ticket

EXIT_REFUSED, EXIT_USAGE = 1, 2


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_REFUSED):
        super().__init__(message)
        self.code = code


def _actor(session: Session, username: str) -> svc.Actor:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        raise CliError(f"unknown or inactive user '{username}'", EXIT_USAGE)
    scope = Principal(user, "cli").departments(session)
    return svc.Actor(user.username, user.role, frozenset(scope) if scope is not None else None)


def _print(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _show(rt: Runtime, ticket_id: int) -> dict[str, Any]:
    with rt.sessions() as session:
        ticket = session.get(Ticket, ticket_id)
        return svc.ticket_dict(session, ticket, detail=True)


def read_ticket_file(path: Path) -> dict[str, Any]:
    """A ticket file (YAML or JSON) as a mapping; errors name the file and the reason."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"no such file: {path}", EXIT_USAGE) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: not a YAML file ({exc})") from None
    if not isinstance(data, dict):
        raise CliError(f"{path}: a ticket file is a mapping of fields (type, title, department, …)")
    return data


def cmd_submit(args: argparse.Namespace) -> int:
    data = read_ticket_file(Path(args.file))
    rt = open_configured_runtime()
    with rt.transaction() as session:
        ticket = svc.create(session, rt.audit, _actor(session, args.as_user), data, net=rt.settings.net,
                            submit=not args.draft)
        ticket_id = ticket.id
    out = _show(rt, ticket_id)
    _print(out)
    if out["state"] == "rejected":
        failed = [m for c in out["admission"]["checks"] if not c["passed"] for m in c["messages"]]
        err.print(f"[red]{out['id']}: admission rejected the ticket[/]")
        for message in failed:
            err.print(f"  {message}", markup=False, highlight=False)
        return EXIT_REFUSED
    err.print(f"{out['id']}: {out['state']}")
    return 0


def _decide(args: argparse.Namespace, approve: bool) -> int:
    rt = open_configured_runtime()
    with rt.transaction() as session:
        actor = _actor(session, args.as_user)
        ticket = svc.visible_ticket(session, actor, args.id)
        if ticket.state == "security_review":
            svc.review(session, rt.audit, actor, ticket, approve=approve, note=args.note)
        elif ticket.state == "resource_approval" or (approve and ticket.resource_approver == actor.name):
            svc.approve(session, rt.audit, actor, ticket, approve=approve, note=args.note)
        else:
            raise svc.TicketConflict(f"ticket {ticket.ref} is {ticket.state}: nothing to approve or reject")
        ticket_id, state, type_ = ticket.id, ticket.state, ticket.type
    if state == "provisioning" or (state == "onboarding" and type_ == "remediation"):
        svc.run_pipeline(rt, ticket_id)  # a 等保整改 host baseline item: onboard.yml runs again
    out = _show(rt, ticket_id)
    _print(out)
    err.print(f"{out['id']}: {out['state']}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, True)


def cmd_reject(args: argparse.Namespace) -> int:
    return _decide(args, False)


def cmd_withdraw(args: argparse.Namespace) -> int:
    rt = open_configured_runtime()
    with rt.transaction() as session:
        actor = _actor(session, args.as_user)
        ticket = svc.withdraw(session, rt.audit, actor, svc.visible_ticket(session, actor, args.id), note=args.note)
        ticket_id = ticket.id
    _print(_show(rt, ticket_id))
    return 0


def cmd_renew(args: argparse.Namespace) -> int:
    try:
        expires = to_datetime(date.fromisoformat(args.expires))
    except ValueError:
        raise CliError(f"--expires: '{args.expires}' is not a date (YYYY-MM-DD)", EXIT_USAGE) from None
    rt = open_configured_runtime()
    with rt.transaction() as session:
        actor = _actor(session, args.as_user)
        ticket = svc.renew(session, rt.audit, actor, svc.visible_ticket(session, actor, args.id), expires,
                           note=args.note)
        ticket_id = ticket.id
    _print(_show(rt, ticket_id))
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    rt = open_configured_runtime()
    with rt.transaction() as session:
        actor = _actor(session, args.as_user)
        ticket = svc.complete_remediation(session, rt.audit, actor, svc.visible_ticket(session, actor, args.id),
                                          evaluation_id=args.evaluation, note=args.note)
        ticket_id = ticket.id
    _print(_show(rt, ticket_id))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    rt = open_configured_runtime()
    with rt.sessions() as session:
        if args.as_user:
            ticket = svc.visible_ticket(session, _actor(session, args.as_user), args.id)
        else:  # the service account on this machine sees every ticket
            ticket = session.get(Ticket, svc.parse_ref(args.id))
            if ticket is None:
                raise svc.TicketNotFound(f"no ticket {args.id}")
        _print(svc.ticket_dict(session, ticket, detail=True))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rt = open_configured_runtime()
    with rt.sessions() as session:
        actor = _actor(session, args.as_user) if args.as_user else svc.Actor("cli", "admin", None)
        rows, _ = svc.list_tickets(session, actor, state=args.state, type_=args.type, limit=args.limit)
        for ticket in rows:
            print(json.dumps(svc.ticket_dict(session, ticket), ensure_ascii=False))
    return 0


def cmd_maintain(_args: argparse.Namespace) -> int:
    _print(svc.maintain(open_configured_runtime()))
    return 0


def cmd_idle(args: argparse.Namespace) -> int:
    rt = open_configured_runtime()
    with rt.sessions() as session:
        for row in svc.idle_systems(session, args.days):
            print(json.dumps(row, ensure_ascii=False))
    return 0


def _guarded(func):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except CliError as exc:
            err.print(str(exc), style="red", markup=False, highlight=False)
            return exc.code
        except (svc.TicketError, svc.TicketForbidden, svc.TicketConflict, svc.TicketNotFound) as exc:
            err.print(str(exc), style="red", markup=False, highlight=False)
            return EXIT_REFUSED
    return run


def add_ticket_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``yunshu tickets …`` on the top-level subparsers."""
    tickets = sub.add_parser("tickets", help="department tickets (资源工单)").add_subparsers(dest="sub", required=True)
    submit = tickets.add_parser("submit", help="submit a ticket file (admission runs at once)")
    submit.add_argument("file")
    submit.add_argument("--as", dest="as_user", required=True, metavar="USER")
    submit.add_argument("--draft", action="store_true", help="store as a draft, do not submit")
    submit.set_defaults(func=_guarded(cmd_submit))
    for name, func, text in (("approve", cmd_approve, "approve the stage the ticket is in (security review or "
                                                       "resource approval); provisioning follows"),
                             ("reject", cmd_reject, "reject the ticket at its current stage (needs --note)")):
        p = tickets.add_parser(name, help=text)
        p.add_argument("id", help="TKT-000012 or 12")
        p.add_argument("--as", dest="as_user", required=True, metavar="USER")
        p.add_argument("--note")
        p.set_defaults(func=_guarded(func))
    wd = tickets.add_parser("withdraw", help="withdraw a ticket not yet approved (its requester)")
    wd.add_argument("id")
    wd.add_argument("--as", dest="as_user", required=True, metavar="USER")
    wd.add_argument("--note")
    wd.set_defaults(func=_guarded(cmd_withdraw))
    rn = tickets.add_parser("renew", help="a new expiry for delivered resources")
    rn.add_argument("id")
    rn.add_argument("--as", dest="as_user", required=True, metavar="USER")
    rn.add_argument("--expires", required=True, metavar="YYYY-MM-DD")
    rn.add_argument("--note")
    rn.set_defaults(func=_guarded(cmd_renew))
    done = tickets.add_parser("complete", help="mark a 等保整改 ticket done, naming the later evaluation in which "
                                               "the unit is 符合 (platform engineers)")
    done.add_argument("id")
    done.add_argument("--as", dest="as_user", required=True, metavar="USER")
    done.add_argument("--evaluation", type=int, required=True, metavar="ID")
    done.add_argument("--note")
    done.set_defaults(func=_guarded(cmd_complete))
    show = tickets.add_parser("show", help="one ticket as JSON (plan, checks, jobs, history)")
    show.add_argument("id")
    show.add_argument("--as", dest="as_user", metavar="USER", help="only what this user may see")
    show.set_defaults(func=_guarded(cmd_show))
    ls = tickets.add_parser("list", help="tickets as JSON lines, newest first")
    ls.add_argument("--state", help="a state or 'open'")
    ls.add_argument("--type")
    ls.add_argument("--as", dest="as_user", metavar="USER")
    ls.add_argument("--limit", type=int, default=100)
    ls.set_defaults(func=_guarded(cmd_list))
    tickets.add_parser("maintain", help="escalate overdue approvals, expiry reminders, reclamation").set_defaults(
        func=_guarded(cmd_maintain))
    idle = tickets.add_parser("idle", help="僵尸系统: systems without activity for N days (JSON lines)")
    idle.add_argument("--days", type=int)
    idle.set_defaults(func=_guarded(cmd_idle))
