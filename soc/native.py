"""The compiled hot path: parsers, enrichment and the Sigma matcher are built with Cython at setup.

``pip install -e .`` (``./dev.sh``) compiles the modules of ``COMPILED`` into extension modules beside their
sources (``setup.py``); the same Python source then runs about 1.5× faster per event. Nothing else changes: the
``.py`` files stay the source of truth, and a module whose build is missing or older than its source is imported
from the source instead (:class:`FreshSourceFinder`), so an edit is never shadowed by a stale build. Rebuild with
``python -m soc.native_build`` (``invoke test`` and ``./dev.sh`` do it when a build is stale).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

log = logging.getLogger(__name__)

ROOT: Final = Path(__file__).resolve().parent.parent
# Modules on the per-event path of ingest and detection, compiled at setup (their .py is the source).
COMPILED: Final[tuple[str, ...]] = (
    "soc.ecs", "soc.enrich", "soc.records",
    "soc.parsers", "soc.parsers.common", "soc.parsers.syslog", "soc.parsers.auth", "soc.parsers.firewall",
    "soc.parsers.web", "soc.parsers.auditd", "soc.parsers.jsonlog", "soc.parsers.openstack", "soc.parsers.scan",
    "soc.detect.compiler", "soc.detect.engine", "soc.detect.correlation", "soc.detect.values", "soc.store.rows",
    "soc.store.text_words",
)
# Compiled modules calling others in C (``from cython.cimports…``, through the other's ``.pxd``): a module is built
# against those declarations and runs compiled only beside a compiled build of each module it cimports.
CIMPORTS: Final[dict[str, tuple[str, ...]]] = {
    "soc.detect.engine": ("soc.detect.compiler",),
    "soc.detect.correlation": ("soc.detect.compiler", "soc.ecs"),
}
# Modules written in Cython against a C library, built when the library's header is installed (module → header,
# library); there is no Python source to fall back on: their importers fall back on something else.
LIBRARY_BOUND: Final[dict[str, tuple[str, str]]] = {
    "soc.detect.hs_literals": ("hs/hs.h", "hs"),  # Hyperscan (Debian libhyperscan-dev); else the hyperscan wheel
}
INCLUDE_DIRS: Final = (Path("/usr/include"), Path("/usr/local/include"))
# Cython directives: annotations are documentation here, not C types (``parse(None)`` must still raise
# ParseError, not TypeError), exactly as in CPython.
DIRECTIVES: Final = {"language_level": 3, "annotation_typing": False}


def source_of(module: str, root: Path = ROOT) -> Path:
    """The ``.py`` file a compiled module is built from (``.pyx`` for those of LIBRARY_BOUND; ``root``: the folder
    holding its top package)."""
    path = root.joinpath(*module.split("."))
    if module in LIBRARY_BOUND:
        return path.with_suffix(".pyx")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def header_of(module: str) -> Path | None:
    """Where the C header a LIBRARY_BOUND module needs is installed, or None."""
    header, _library = LIBRARY_BOUND[module]
    return next((d / header for d in INCLUDE_DIRS if (d / header).exists()), None)


def buildable() -> tuple[str, ...]:
    """COMPILED and the modules of LIBRARY_BOUND whose library is installed."""
    return COMPILED + tuple(m for m in LIBRARY_BOUND if header_of(m) is not None)


def built_of(module: str, root: Path = ROOT) -> Path | None:
    """The extension module built from ``module``'s source, if there is one."""
    source = source_of(module, root)
    stem = "__init__" if source.name == "__init__.py" else source.stem
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_name(stem + suffix)
        if candidate.exists():
            return candidate
    return None


def _older(built: Path, source: Path) -> bool:
    """Whether ``built`` predates the last edit of ``source``."""
    return built.stat().st_mtime < source.stat().st_mtime


def inputs_of(module: str, root: Path = ROOT) -> list[Path]:
    """The files ``module``'s build is made from: its source, the ``.pxd`` beside it, those of what it cimports."""
    out = []
    for name in (module, *CIMPORTS.get(module, ())):
        source = source_of(name, root)
        pxd = source.with_suffix(".pxd")
        out += ([source] if name == module else []) + ([pxd] if pxd.exists() else [])
    return out


def is_stale(module: str, root: Path = ROOT, built: Path | None = None) -> bool:
    """Whether ``module``'s build (``built``, default: the one beside its source) is missing, older than one of
    its inputs, or cimports a module that is stale itself (which then runs from its source)."""
    built = built if built is not None else built_of(module, root)
    if built is None or any(path.exists() and _older(built, path) for path in inputs_of(module, root)):
        return True
    return any(is_stale(name, root) for name in CIMPORTS.get(module, ()))


def stale(modules: Sequence[str] | None = None) -> list[str]:
    """The modules (default: all :func:`buildable`) whose build is missing or stale (:func:`is_stale`)."""
    return [module for module in (buildable() if modules is None else modules) if is_stale(module)]


def status() -> dict[str, str]:
    """For each module of ``COMPILED`` already imported: ``compiled`` or ``source``."""
    out = {}
    for name in COMPILED:
        module: ModuleType | None = sys.modules.get(name)
        if module is not None:
            spec = module.__spec__
            compiled = spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
            out[name] = "compiled" if compiled else "source"
    return out


class FreshSourceFinder(importlib.abc.MetaPathFinder):
    """Imports a module of ``modules`` from its source when its build is older than the source; a module of
    LIBRARY_BOUND built before its last edit is not imported at all (ImportError: its importer falls back)."""

    def __init__(self, modules: Sequence[str] = COMPILED + tuple(LIBRARY_BOUND), root: Path = ROOT):
        self.modules = frozenset(modules)
        self.root = root

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader) or not spec.origin:
            return spec
        built, source = Path(spec.origin), source_of(fullname, self.root)
        if source.exists() and _older(built, source) and fullname in LIBRARY_BOUND:
            raise ImportError(f"compiled {built.name} is older than {source} (rebuild: python -m soc.native_build)",
                              name=fullname)
        if source.exists() and is_stale(fullname, self.root, built):
            log.warning("compiled %s is older than %s or what it cimports: importing the source (rebuild: "
                        "python -m soc.native_build)", built.name, source)
            return importlib.util.spec_from_file_location(
                fullname, source, submodule_search_locations=spec.submodule_search_locations)
        return spec


def install() -> None:
    """Put :class:`FreshSourceFinder` first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, FreshSourceFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, FreshSourceFinder())


def summary() -> str:
    """One line for reports: how the hot path runs in this process (its imported modules)."""
    modes = status()
    compiled = sum(mode == "compiled" for mode in modes.values())
    bound = [name for name in LIBRARY_BOUND if name in sys.modules]
    if modes and compiled == len(modes):
        return f"compiled with Cython ({compiled} modules)" + (f" + {', '.join(bound)}" if bound else "")
    return f"pure Python for {len(modes) - compiled} of {len(modes)} modules (build: python -m soc.native_build)"
