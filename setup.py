"""Builds the compiled hot path (``soc.native.COMPILED``) with Cython; everything else is in pyproject.toml.

A module that fails to compile is left to run from its source (``optional``): slower, never different. The modules
of ``LIBRARY_BOUND`` are built when their C library's header is installed.
"""

import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soc.native import COMPILED, DIRECTIVES, LIBRARY_BOUND, ROOT, header_of, source_of


def extension(module: str) -> Extension:
    """A package's ``__init__`` is built as ``package.__init__`` so that it lands inside the package folder."""
    source = source_of(module)
    name = f"{module}.__init__" if source.name == "__init__.py" else module
    return Extension(name, [str(source.relative_to(ROOT))], optional=True)


extensions = [extension(name) for name in COMPILED]
for name, (_header, library) in LIBRARY_BOUND.items():
    if header_of(name) is not None:  # built against the installed library; its importer falls back without it
        extensions.append(Extension(name, [str(source_of(name).relative_to(ROOT))], libraries=[library],
                                    optional=True))
setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES, quiet=True))
