"""``yunshu net migrate-ipv6``, ``yunshu onboard`` and ``yunshu jobs …``: automation jobs from the command line, with a
live progress display on the terminal (stderr) and JSON on stdout."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from collections import Counter
from typing import Any

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from infra.jobs import JobEventView, JobRefused, Jobs
from portal.cli_common import err, open_configured_runtime
from portal.job_events import job_forwarder

EXIT = {"successful": 0, "failed": 1, "timeout": 3, "canceled": 4, "error": 5}


class JobProgress:
    """A rich progress display: hosts finished (bar), the task running, ok/changed/failed counts."""

    def __init__(self) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[job]}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total} hosts"), TextColumn("{task.fields[counts]}"),
                                 TextColumn("[dim]{task.fields[current]}"), TimeElapsedColumn(), console=err,
                                 transient=False)
        self.task: Any = None
        self.counts: Counter[str] = Counter()
        self.hosts_seen: set[str] = set()
        self.lock = threading.Lock()

    def created(self, job_id: int, hosts: int) -> None:
        self.task = self.progress.add_task("job", total=hosts or None, job=f"job {job_id}", counts="", current="")

    def event(self, view: JobEventView, _raw: dict[str, Any]) -> None:
        if self.task is None:
            return
        with self.lock:
            if view.event == "playbook_on_task_start":
                self.progress.update(self.task, current=(view.task or "")[:60])
                return
            if view.event == "playbook_on_stats":
                self.progress.update(self.task, completed=self.progress.tasks[0].total or 0, current="done")
                return
            kind = ("failed" if view.failed else "changed" if view.changed
                    else "skipped" if view.event == "runner_on_skipped" else "ok")
            self.counts[kind] += 1
            if view.host:
                self.hosts_seen.add(view.host)
            counts = " ".join(f"{k}={self.counts[k]}" for k in ("ok", "changed", "failed", "skipped") if self.counts[k])
            # a host counts as finished once every host has been seen on the current task (rough but monotone)
            self.progress.update(self.task, counts=counts, completed=min(len(self.hosts_seen),
                                                                        self.progress.tasks[0].total or 0))


def _run_with_progress(args: argparse.Namespace, start: Any) -> int:
    """Run a job with the progress display; Ctrl-C asks the job to cancel instead of killing it."""
    rt = open_configured_runtime()
    progress = JobProgress()
    created: dict[str, int] = {}
    soc_sink = job_forwarder(rt) if not getattr(args, "no_soc", False) else None

    def on_created(job_id: int, hosts: int) -> None:
        created["id"] = job_id
        progress.created(job_id, hosts)
        if soc_sink is not None:
            soc_sink.on_created(job_id, hosts)

    def on_event(view: JobEventView, raw: dict[str, Any]) -> None:
        progress.event(view, raw)
        if soc_sink is not None:
            soc_sink.on_event(view, raw)

    def interrupt(_sig: int, _frame: Any) -> None:
        if "id" in created:
            err.print(f"[yellow]cancelling job {created['id']} …[/]")
            Jobs(rt).cancel(created["id"], args.actor)

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        with progress.progress:
            record = start(rt, on_event=on_event, on_created=on_created)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    except JobRefused as exc:
        err.print(f"[red]{exc}[/]")
        return EXIT["error"]
    finally:
        signal.signal(signal.SIGINT, previous)
        if soc_sink is not None:
            soc_sink.close()
        rt.close()
    record.pop("events", None)
    print(json.dumps(record, ensure_ascii=False))
    colour = "green" if record["status"] == "successful" else "red"
    err.print(f"[{colour}]job {record['id']}: {record['status']}[/] (rc {record['rc']}, {record['duration_s']} s)")
    return EXIT.get(record["status"], 1)


def cmd_migrate_ipv6(args: argparse.Namespace) -> int:
    from infra.ipv6_migration import migrate_ipv6

    return _run_with_progress(args, lambda rt, **kw: migrate_ipv6(rt, args.scope, args.actor, check=args.check,
                                                                   **kw))


def _planned_waves(args: argparse.Namespace) -> list[Any] | None:
    """The waves for ``--size``/``--scope``; None (after saying why) when the request is invalid."""
    from infra.waves import plan_waves

    rt = open_configured_runtime()
    try:
        with rt.sessions() as session:
            return plan_waves(session, args.size, set(args.scope) or None)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        return None
    finally:
        rt.close()


def cmd_waves(args: argparse.Namespace) -> int:
    waves = _planned_waves(args)
    if waves is None:
        return 2
    for wave in waves:
        print(json.dumps(wave.as_dict(), ensure_ascii=False))
    err.print(f"{len(waves)} waves, {sum(len(w.systems) for w in waves)} systems")
    return 0


def cmd_wave_run(args: argparse.Namespace) -> int:
    """Dual-stack migration of one wave's systems that still need it (moving to 政务云 goes through tickets).

    The plan is made afresh from the register, so a dependency that is done has left it. A system of the wave that
    needs a system still to migrate in an earlier wave (or outside ``--scope``) makes the run refuse, naming both,
    unless ``--ignore-dependencies`` (check mode only warns).
    """
    from infra.ipv6_migration import migrate_ipv6

    waves = _planned_waves(args)
    if waves is None:
        return 2
    wave = next((w for w in waves if w.number == args.number), None)
    if wave is None:
        err.print(f"[red]there is no wave {args.number} (the plan has {len(waves)} waves)[/]")
        return 2
    systems = [s["id"] for s in wave.systems if "dual_stack" in s["steps"]]
    if not systems:
        err.print(f"wave {args.number}: no system needs the dual-stack migration (the others move through tickets)")
        return 0
    blocking = _blocking(waves, wave, systems)
    if blocking and not (args.ignore_dependencies or args.check):
        err.print(f"[red]wave {args.number} refused: {blocking}; migrate those first "
                  "(or pass --ignore-dependencies)[/]")
        return 2
    if blocking:
        err.print(f"[yellow]wave {args.number}: {blocking}[/]")
    err.print(f"wave {args.number}: dual-stack migration of {', '.join(systems)}")
    return _run_with_progress(args, lambda rt, **kw: migrate_ipv6(rt, systems, args.actor, check=args.check, **kw))


def _blocking(waves: list[Any], wave: Any, systems: list[str]) -> str:
    """Which of ``systems`` need a system that is still to migrate and not in this wave (empty: none)."""
    where = {s["id"]: w.number for w in waves for s in w.systems}
    parts = []
    for system in systems:
        needs = [f"{d} (wave {where[d]})" if d in where else f"{d} (outside the scope)"
                 for d in wave.waiting_on.get(system, [])]
        if needs:
            parts.append(f"{system} needs {', '.join(needs)}")
    if not parts:
        return ""
    return "dependencies not yet migrated: " + "; ".join(parts)


def cmd_onboard(args: argparse.Namespace) -> int:
    """等保 baseline (onboard.yml), then the hosts' evidence read back and stored (evidence.yml, check mode)."""
    from infra.onboarding import onboard

    code = _run_with_progress(args, lambda rt, **kw: onboard(rt, args.system, args.actor, check=args.check, **kw))
    if code != 0 or args.check or args.no_evidence:
        return code
    return cmd_evidence(args)


def cmd_evidence(args: argparse.Namespace) -> int:
    from infra.host_evidence import collect_evidence

    return _run_with_progress(args, lambda rt, **kw: collect_evidence(rt, args.system, args.actor, **kw))


def cmd_evidence_show(args: argparse.Namespace) -> int:
    from infra.host_evidence import latest_evidence

    rt = open_configured_runtime()
    try:
        with rt.sessions() as session:
            found = latest_evidence(session, args.host)
    finally:
        rt.close()
    if found is None:
        err.print(f"[red]no evidence stored for host '{args.host}' (run: yunshu evidence collect SYSTEM)[/]")
        return 2
    print(json.dumps(found, ensure_ascii=False))
    return 0


def cmd_jobs_list(args: argparse.Namespace) -> int:
    rt = open_configured_runtime()
    try:
        for job in Jobs(rt).list(limit=args.limit, status=args.status):
            print(json.dumps(job, ensure_ascii=False))
    finally:
        rt.close()
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    rt = open_configured_runtime()
    try:
        print(json.dumps(Jobs(rt).show(args.id), ensure_ascii=False))
    except JobRefused as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    finally:
        rt.close()
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    rt = open_configured_runtime()
    try:
        status = Jobs(rt).cancel(args.id, args.actor)
    except JobRefused as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    finally:
        rt.close()
    err.print(f"job {args.id} ({status}): cancellation requested")
    return 0


def add_job_commands(sub: Any, net: Any) -> None:
    """Register ``net migrate-ipv6``, ``onboard`` and ``jobs list|show|cancel``."""
    actor = os.environ.get("USER", "cli")
    mig = net.add_parser("migrate-ipv6", help="dual-stack migration of departments or systems (an Ansible job)")
    mig.add_argument("--scope", action="append", required=True, metavar="DEPARTMENT|SYSTEM",
                     help="department code or system id (repeatable)")
    mig.add_argument("--check", action="store_true", help="check mode: report what would change, change nothing")
    mig.add_argument("--no-soc", action="store_true", help="do not send job events to the SOC")
    mig.add_argument("--actor", default=actor)
    mig.set_defaults(func=cmd_migrate_ipv6)

    waves = net.add_parser("waves", help="migration waves planned from the register (JSON lines)")
    waves.add_argument("--size", type=int, default=10, help="systems per wave (default 10)")
    waves.add_argument("--scope", action="append", default=[], metavar="DEPARTMENT")
    waves.set_defaults(func=cmd_waves)
    wave_run = net.add_parser("wave-run", help="run the dual-stack migration of one wave (an Ansible job)")
    wave_run.add_argument("number", type=int)
    wave_run.add_argument("--size", type=int, default=10)
    wave_run.add_argument("--scope", action="append", default=[], metavar="DEPARTMENT")
    wave_run.add_argument("--check", action="store_true")
    wave_run.add_argument("--ignore-dependencies", action="store_true",
                          help="run even if a system of the wave needs one still to migrate in an earlier wave")
    wave_run.add_argument("--no-soc", action="store_true")
    wave_run.add_argument("--actor", default=actor)
    wave_run.set_defaults(func=cmd_wave_run)

    onboard = sub.add_parser("onboard", help="等保 baseline hardening of a system's hosts (an Ansible job)")
    onboard.add_argument("system", nargs="+", metavar="SYSTEM", help="system id (or department code)")
    onboard.add_argument("--check", action="store_true")
    onboard.add_argument("--no-evidence", action="store_true", help="do not collect evidence afterwards")
    onboard.add_argument("--no-soc", action="store_true")
    onboard.add_argument("--actor", default=actor)
    onboard.set_defaults(func=cmd_onboard)

    evidence = sub.add_parser("evidence", help="等保 host evidence").add_subparsers(dest="sub", required=True)
    collect = evidence.add_parser("collect", help="read the hosts' evidence (evidence.yml, check mode) and store it")
    collect.add_argument("system", nargs="+", metavar="SYSTEM", help="system id (or department code)")
    collect.add_argument("--no-soc", action="store_true")
    collect.add_argument("--actor", default=actor)
    collect.set_defaults(func=cmd_evidence)
    show = evidence.add_parser("show", help="the newest stored evidence of a host (JSON)")
    show.add_argument("host")
    show.set_defaults(func=cmd_evidence_show)

    jobs = sub.add_parser("jobs", help="automation jobs").add_subparsers(dest="sub", required=True)
    ls = jobs.add_parser("list", help="recent jobs, newest first (JSON lines)")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--status", choices=[*sorted(EXIT), "queued", "running"])
    ls.set_defaults(func=cmd_jobs_list)
    show = jobs.add_parser("show", help="one job with its events (JSON)")
    show.add_argument("id", type=int)
    show.set_defaults(func=cmd_jobs_show)
    cancel = jobs.add_parser("cancel", help="ask a queued or running job to stop")
    cancel.add_argument("id", type=int)
    cancel.add_argument("--actor", default=actor)
    cancel.set_defaults(func=cmd_jobs_cancel)
