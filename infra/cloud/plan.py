"""Plan mode: the real cloud program evaluated under ``pulumi.runtime.set_mocks`` — nothing is applied.

Each plan runs on its own thread inside a fresh ``contextvars.Context`` with its own event loop: Pulumi keeps its
runtime state (settings, root stack, pending RPCs) in context variables, so a fresh context starts from a clean
runtime and nothing leaks between plans. The few values Pulumi shares between contexts through its
context-property defaults (the output set and its lock) are replaced per plan, and plans are serialised.

The result lists every resource (type, name, properties, parent) and the policy-pack report over them, labelled
``"mode": "plan"`` and ``"notice": "plan — nothing applied / 计划模式，未实际执行"``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks, set_mocks
from pulumi.runtime.stack import run_pulumi_func

from infra.cloud.program import program
from infra.cloud.specs import CloudRequest
from policies.cloud.catalog import RuleCatalog
from policies.cloud.engine import evaluate
from policies.cloud.models import PlannedResource

PROJECT = "yunshu-cloud"
MODE = "plan"
NOTICE = "plan — nothing applied / 计划模式，未实际执行"
STACK_ROOT = "pulumi:pulumi:Stack"
_PLAN_LOCK = threading.Lock()


class PlanError(Exception):
    """The program could not be evaluated (the message names the resource or input at fault)."""


class _EchoMocks(Mocks):
    """Resources come back with their inputs as state and a predictable id ``<name>-id``."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        return (f"{args.name}-id" if args.custom else None), dict(args.inputs)

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise PlanError(f"plan mode cannot answer the provider function {args.token}; pass the value as data")


class _RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping each registration's parent, kind and dependencies."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.order: list[dict[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:  # gRPC method name
        response = super().RegisterResource(request)
        self.order.append({"urn": response.urn, "type": request.type, "name": request.name,
                           "parent": request.parent or None, "custom": bool(request.custom),
                           "dependencies": list(request.dependencies)})
        return response


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _plain(value: Any) -> Any:
    """Mock state as JSON-friendly data: whole floats back to ints (the wire format has only doubles)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def stack_name(request: CloudRequest) -> str:
    """A stack per department (tenant / namespaces) or per system (a request for one system only)."""
    dept = request.department.lower()
    if request.tenant is None and not request.k8s and len(request.systems) == 1:
        return f"{dept}-{request.systems[0].system_id.lower()}"
    return dept


def _evaluate(request: CloudRequest, stack: str) -> tuple[list[PlannedResource], list[str]]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    handler = _ListHandler()
    logger = logging.Logger("yunshu.cloud.plan")
    logger.addHandler(handler)
    try:
        monitor = _RecordingMonitor(_EchoMocks())
        set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=True, logger=logger, monitor=monitor)
        # values Pulumi otherwise shares between contexts through its context-property defaults
        pulumi_settings.SETTINGS.outputs = set()
        pulumi_settings.SETTINGS.lock = threading.Lock()
        loop.run_until_complete(run_pulumi_func(lambda: program(request)))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    states = monitor.get_registered_resources()
    parents = {r["urn"]: r for r in monitor.order}
    resources = []
    for rec in monitor.order:
        if rec["type"] == STACK_ROOT:
            continue
        parent = parents.get(rec["parent"] or "")
        registration = states.get(rec["urn"])
        resources.append(PlannedResource(
            urn=rec["urn"], type=rec["type"], name=rec["name"], custom=rec["custom"],
            props=_plain(registration.state) if registration else {},
            id=registration.id if registration and rec["custom"] else None,
            parent=None if parent is None or parent["type"] == STACK_ROOT else parent["urn"],
            dependencies=rec["dependencies"]))
    resources.sort(key=lambda r: (r.custom, r.urn))  # registration order varies run to run; the plan must not
    return resources, handler.messages


def evaluate_program(request: CloudRequest, stack: str | None = None) -> tuple[list[PlannedResource], list[str]]:
    """Run the program under mocks in a fresh Pulumi context; the planned resources and the program's log lines."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = contextvars.Context().run(_evaluate, request, stack or stack_name(request))
        except BaseException as exc:  # handed to the calling thread
            result["error"] = exc

    with _PLAN_LOCK:
        thread = threading.Thread(target=target, name="yunshu-cloud-plan", daemon=True)
        thread.start()
        thread.join()
    if "error" in result:
        error = result["error"]
        if isinstance(error, PlanError):
            raise error
        raise PlanError(f"the cloud program failed under plan mode: {error}") from error
    return result["value"]


def plan(request: CloudRequest | Mapping[str, Any], catalog: RuleCatalog | None = None) -> dict[str, Any]:
    """Plan ``request`` (a CloudRequest or its plain-data form): the resources it would create and the policy
    results. Nothing is applied. Invalid input raises pydantic's ValidationError naming the field; a program
    failure raises PlanError."""
    spec = request if isinstance(request, CloudRequest) else CloudRequest.model_validate(request)
    stack = stack_name(spec)
    resources, log = evaluate_program(spec, stack)
    names = {r.urn: r.name for r in resources}
    report = evaluate(resources, catalog)
    return {
        "mode": MODE,
        "notice": NOTICE,
        "applied": False,
        "project": PROJECT,
        "stack": stack,
        "department": spec.department,
        "request": spec.model_dump(mode="json"),
        "resources": [{"type": r.type, "name": r.name, "urn": r.urn, "custom": r.custom,
                       "parent": names.get(r.parent) if r.parent else None, "properties": r.props}
                      for r in resources],
        "summary": {"resources": sum(1 for r in resources if r.custom),
                    "components": sum(1 for r in resources if not r.custom),
                    "by_type": dict(sorted(Counter(r.type for r in resources if r.custom).items()))},
        "policy": report.model_dump(mode="json"),
        "admissible": report.passed,
        "log": log,
    }
