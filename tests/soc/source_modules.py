"""A compiled module run from its ``.py`` source beside the imported (compiled) one, for comparisons."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def from_source(module: ModuleType) -> ModuleType:
    """``module`` executed from its source file under another name (once per test session)."""
    name = f"{module.__name__}__from_source"
    if name not in sys.modules:
        source = Path(module.__file__ or "").with_name(module.__name__.rpartition(".")[2] + ".py")
        spec = importlib.util.spec_from_file_location(name, source)
        assert spec is not None and spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        spec.loader.exec_module(loaded)
    return sys.modules[name]
