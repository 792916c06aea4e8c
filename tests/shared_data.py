"""Where the project's shared reference data lives (../shared beside the checkout, as in CI)."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("YUNSHU_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
LOGHUB = SHARED / "data" / "loghub"
SIGMA = SHARED / "data" / "sigma" / "rules"


def require(path: Path) -> Path:
    """The path, or a clear failure (never a skip): the tests need the real data."""
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the tests read ../shared beside the checkout "
                                "(or set YUNSHU_SHARED_DIR)")
    return path
