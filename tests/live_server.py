"""Run ``yunshu up`` as a real process on a free port for end-to-end tests."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str, context: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def live_server(home: Path, env_extra: dict[str, str], args: list[str], *, scheme: str = "http",
                context_for: object = None) -> Iterator[str]:
    """Start ``yunshu up ARGS`` with a fresh YUNSHU_HOME; yield the base URL once /healthz answers 200.

    ``context_for`` is called with the home directory after start to build the TLS context used to poll.
    """
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNSHU_")}
    # each server gets its own syslog port, so servers started by parallel tests never collide on 5514
    env.update({"YUNSHU_HOME": str(home), "PYTHONUNBUFFERED": "1", "YUNSHU_SOC__SYSLOG_PORT": str(free_port()),
                **env_extra})
    base = f"{scheme}://127.0.0.1:{port}"

    def output() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")

    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "portal.cli", "up", "--port", str(port), *args],
                                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            context = context_for(home) if callable(context_for) else None
            if (context is not None or scheme == "http") and _healthy(f"{base}/healthz", context):
                break
            if proc.poll() is not None:
                pytest.fail(f"yunshu up exited with code {proc.returncode} before /healthz answered:\n{output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"/healthz did not answer 200 within {STARTUP_TIMEOUT:.0f} s:\n{output()}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
