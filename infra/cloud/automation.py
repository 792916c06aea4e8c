"""The Automation API path: preview / up / destroy / refresh-based drift with the real ``pulumi`` CLI.

Only where the CLI is installed (``shutil.which("pulumi")``); without it every action except plan mode is
refused with :class:`PulumiCliMissing` — nothing is ever pretended to be applied. Stacks live in a ``file://``
backend under ``<home>/pulumi``, secrets use the passphrase provider, one stack per department or system.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from infra.cloud.plan import PROJECT, stack_name
from infra.cloud.program import program
from infra.cloud.specs import CloudRequest

Action = Literal["preview", "up", "destroy", "drift"]
ACTIONS: tuple[Action, ...] = ("preview", "up", "destroy", "drift")
CLI_MISSING = "pulumi CLI not installed: plan mode only / 未安装 pulumi CLI：仅支持计划模式"


class PulumiCliMissing(RuntimeError):
    """The ``pulumi`` CLI is not on PATH, so only plan mode is available."""

    def __init__(self) -> None:
        super().__init__(CLI_MISSING)


def pulumi_cli() -> str | None:
    """Path of the ``pulumi`` CLI, or None."""
    return shutil.which("pulumi")


def require_cli() -> str:
    """The CLI path; PulumiCliMissing when it is not installed."""
    path = pulumi_cli()
    if path is None:
        raise PulumiCliMissing()
    return path


def backend_url(home: Path) -> str:
    """The ``file://`` backend directory (created when missing)."""
    directory = (home / "pulumi").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return directory.as_uri()


def select_stack(request: CloudRequest, home: Path, passphrase: str) -> Any:  # pragma: no cover - needs the CLI
    """Create or select the request's stack in the local backend, with the inline program."""
    require_cli()
    from pulumi import automation as auto

    settings = auto.ProjectSettings(name=PROJECT, runtime="python",
                                    backend=auto.ProjectBackend(url=backend_url(home)))
    options = auto.LocalWorkspaceOptions(project_settings=settings, secrets_provider="passphrase",
                                         env_vars={"PULUMI_CONFIG_PASSPHRASE": passphrase})
    return auto.create_or_select_stack(stack_name=stack_name(request), project_name=PROJECT,
                                       program=lambda: program(request), opts=options)


def run_action(action: Action, request: CloudRequest, home: Path, passphrase: str,
               on_output: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run ``action`` with the CLI, streaming its output; a job record as plain data.
    PulumiCliMissing (before anything else happens) when the CLI is not installed."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action '{action}'; expected one of: {', '.join(ACTIONS)}")
    require_cli()
    stack = select_stack(request, home, passphrase)  # pragma: no cover - needs the CLI
    if action == "preview":  # pragma: no cover
        result = stack.preview(on_output=on_output)
        return {"mode": "preview", "applied": False, "stack": stack.name, "changes": result.change_summary}
    if action == "up":  # pragma: no cover
        result = stack.up(on_output=on_output)
        return {"mode": "up", "applied": True, "stack": stack.name, "result": result.summary.result,
                "changes": result.summary.resource_changes}
    if action == "destroy":  # pragma: no cover
        result = stack.destroy(on_output=on_output)
        return {"mode": "destroy", "applied": True, "stack": stack.name, "result": result.summary.result}
    result = stack.refresh(preview_only=True, on_output=on_output)  # pragma: no cover
    changes = {k: v for k, v in (result.summary.resource_changes or {}).items() if k != "same"}
    return {"mode": "drift", "applied": False, "stack": stack.name, "drift": bool(changes), "changes": changes}


def run(action: Literal["plan", "preview", "up", "destroy", "drift"], request: CloudRequest | dict[str, Any],
        home: Path, passphrase: str = "", on_output: Callable[[str], Any] = print) -> dict[str, Any]:
    """One entry for every action: ``plan`` always works (mocks, nothing applied); the others need the CLI."""
    from infra.cloud.plan import plan

    spec = request if isinstance(request, CloudRequest) else CloudRequest.model_validate(request)
    if action == "plan":
        return plan(spec)
    return run_action(action, spec, home, passphrase, on_output)
