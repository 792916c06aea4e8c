"""``python -m soc.native_build``: rebuild the compiled hot path (:mod:`soc.native`) where a source changed."""

from __future__ import annotations

import logging
import subprocess
import sys

from soc.native import ROOT, stale

log = logging.getLogger(__name__)


def build_stale() -> list[str]:
    """Rebuild (``setup.py build_ext --inplace``) when a module's build is missing or stale; returns what was
    stale. A module that does not compile keeps running from its source (the build says why)."""
    todo = stale()
    if todo:
        log.info("building the compiled hot path: %s", ", ".join(todo))
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=ROOT, check=True)
    return todo


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_stale()
    missing = stale()
    if missing:
        print(f"not compiled (running from source): {', '.join(missing)}", file=sys.stderr)
