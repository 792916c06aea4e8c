"""``yunshu infra plan TICKET``: the Pulumi program of a ticket evaluated in plan mode (nothing applied), as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from portal.cli_common import err, open_configured_runtime


def cmd_infra_plan(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from infra.cloud.plan import PlanError, plan
    from portal.tickets import service as svc
    from portal.tickets.models import Ticket

    rt = open_configured_runtime()
    try:
        with rt.sessions() as session:
            try:
                ticket = session.get(Ticket, svc.parse_ref(args.ticket))
                if ticket is None:
                    raise svc.TicketNotFound(f"no ticket {args.ticket}")
                if ticket.type in ("decommission", "remediation"):
                    err.print(f"[red]{ticket.ref} is a {ticket.type} ticket: it has no resources to plan[/]")
                    return 2
                result: dict[str, Any] = plan(svc.build_request(session, ticket, rt.settings.net))
            except (svc.TicketError, svc.TicketNotFound, ValidationError, PlanError, ValueError) as exc:
                err.print(f"[red]{exc}[/]")
                return 2
            finally:
                session.rollback()  # IPAM allocations made for the plan are not kept: nothing is applied or stored
    finally:
        rt.close()
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    err.print(f"{result['notice']}: {len(result['resources'])} resources, "
              f"policy {'passed' if result['policy']['passed'] else 'violated'}")
    return 0


def add_infra_commands(sub: Any) -> None:
    """Register ``infra plan``."""
    infra = sub.add_parser("infra", help="government cloud as code (Pulumi)").add_subparsers(dest="sub", required=True)
    p = infra.add_parser("plan", help="a ticket's Pulumi program in plan mode (nothing applied), JSON")
    p.add_argument("ticket", metavar="TICKET", help="TKT-000012 or 12")
    p.set_defaults(func=cmd_infra_plan)
