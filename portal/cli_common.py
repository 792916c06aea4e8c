"""What every ``yunshu`` command shares: the error console and the runtime from the configured settings."""

from __future__ import annotations

from rich.console import Console

from core.runtime import Runtime, open_runtime
from core.settings import load_settings

err = Console(stderr=True, soft_wrap=True)


def open_configured_runtime() -> Runtime:
    """The runtime of ``$YUNSHU_HOME`` (or ``./var``) with its config file and ``YUNSHU_*`` settings."""
    return open_runtime(load_settings())
