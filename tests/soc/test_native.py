"""The compiled hot path (soc.native): built at setup, used when fresh, never used when older than its source."""

from __future__ import annotations

import importlib.machinery
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from soc import native


def test_the_hot_path_runs_compiled() -> None:
    for name in native.COMPILED:
        importlib.import_module(name)
    modes = native.status()
    assert set(modes) == set(native.COMPILED)
    slow = sorted(name for name, mode in modes.items() if mode != "compiled")
    assert not slow, f"running from source: {slow} — rebuild with: python -m soc.native_build"
    assert native.stale() == []


def test_package_init_and_modules_map_to_their_sources() -> None:
    assert native.source_of("soc.parsers") == native.ROOT / "soc" / "parsers" / "__init__.py"
    assert native.source_of("soc.enrich") == native.ROOT / "soc" / "enrich.py"
    built = native.built_of("soc.parsers")
    assert built is not None and built.parent == native.ROOT / "soc" / "parsers" and built.name.startswith("__init__.")


PROBE = """
import sys
from pathlib import Path
from soc.native import FreshSourceFinder
root = Path(sys.argv[1])
sys.path.insert(0, str(root))
sys.meta_path.insert(0, FreshSourceFinder(["probepkg.probe"], root))
import probepkg.probe as probe
print(probe.VALUE, type(probe.__spec__.loader).__name__)
"""


def _import_probe(root: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(root)], capture_output=True, text=True, check=True,
                         cwd=native.ROOT)
    return out.stdout.split()


def test_a_build_older_than_its_source_is_not_imported(tmp_path: Path) -> None:
    package = tmp_path / "probepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = package / "probe.py"
    source.write_text("VALUE = 1\n")
    # the build's copy keeps the compiled file's mtime in whole seconds (distutils' copy_file): a source written in
    # the same second as a fast build would look newer than it; written a minute earlier, it is plainly older
    earlier = source.stat().st_mtime - 60
    os.utime(source, (earlier, earlier))
    subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", "-q", str(source)], check=True,
                   capture_output=True, cwd=tmp_path)
    built = next(package.glob("probe.*.so"))
    assert _import_probe(tmp_path) == ["1", "ExtensionFileLoader"]  # fresh: the build is used

    source.write_text(textwrap.dedent("VALUE = 2\n"))
    later = built.stat().st_mtime + 5
    os.utime(source, (later, later))
    assert _import_probe(tmp_path) == ["2", "SourceFileLoader"]  # edited after the build: the source wins


def test_a_library_bound_module_is_built_where_its_header_is_and_never_imported_when_stale(tmp_path: Path) -> None:
    """soc.detect.hs_literals (Hyperscan's C API) is part of the build when hs/hs.h is installed; its build, when
    older than its .pyx, is refused (ImportError: the engine falls back on the hyperscan wheel), never used."""
    module = "soc.detect.hs_literals"
    assert native.source_of(module) == native.ROOT / "soc" / "detect" / "hs_literals.pyx"
    if native.header_of(module) is None:
        assert module not in native.buildable()
        return
    assert module in native.buildable() and module not in native.stale()
    built = native.built_of(module)
    assert built is not None
    package = tmp_path / "soc" / "detect"
    package.mkdir(parents=True)
    (package / "hs_literals.pyx").write_text("# edited after the build\n")
    copy = package / built.name
    copy.write_bytes(built.read_bytes())
    later = copy.stat().st_mtime + 5
    os.utime(package / "hs_literals.pyx", (later, later))
    finder = native.FreshSourceFinder(root=tmp_path)
    with pytest.raises(ImportError, match="older than"):
        finder.find_spec(module, [str(package)])


def _fake_tree(root: Path) -> dict[str, Path]:
    """soc/detect/{compiler,engine}.py, compiler.pxd and a (fake) build of each, every build newer than its inputs."""
    package = root / "soc" / "detect"
    package.mkdir(parents=True)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    files = {name: package / name for name in ("compiler.py", "compiler.pxd", "engine.py")}
    files |= {f"{stem}.so": package / f"{stem}{suffix}" for stem in ("compiler", "engine")}
    for n, path in enumerate(files.values()):
        path.write_text("")
        os.utime(path, (1000 + n, 1000 + n))  # sources first, builds after
    return files


def _touch_later(path: Path) -> None:
    os.utime(path, (5000, 5000))


@pytest.mark.parametrize(("edited", "expected"), [
    (None, []),
    ("engine.py", ["soc.detect.engine"]),
    ("compiler.py", ["soc.detect.compiler", "soc.detect.engine"]),  # engine would run beside a source compiler
    ("compiler.pxd", ["soc.detect.compiler", "soc.detect.engine"]),  # engine was built against old declarations
])
def test_a_module_is_stale_with_what_it_cimports(tmp_path: Path, edited: str | None, expected: list[str]) -> None:
    assert native.CIMPORTS["soc.detect.engine"] == ("soc.detect.compiler",)
    files = _fake_tree(tmp_path)
    if edited:
        _touch_later(files[edited])
    found = [m for m in ("soc.detect.compiler", "soc.detect.engine") if native.is_stale(m, tmp_path)]
    assert found == expected


def test_a_module_cimporting_a_stale_one_is_imported_from_its_source(tmp_path: Path) -> None:
    files = _fake_tree(tmp_path)
    finder = native.FreshSourceFinder(root=tmp_path)
    package = [str(tmp_path / "soc" / "detect")]
    spec = finder.find_spec("soc.detect.engine", package)
    assert spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    _touch_later(files["compiler.py"])  # its own build is fresh, the compiler's is not
    spec = finder.find_spec("soc.detect.engine", package)
    assert spec is not None and spec.origin == str(files["engine.py"])
    assert isinstance(spec.loader, importlib.machinery.SourceFileLoader)


def test_the_modules_cimporting_the_compiler_have_its_declarations() -> None:
    """What CIMPORTS lists is what the sources cimport (a cimport left out of it would go stale unseen)."""
    for module in native.COMPILED:
        text = native.source_of(module).read_text(encoding="utf-8")
        # "from cython.cimports.soc.m import name": soc.m, or soc.m.name when that is a module (cimported whole)
        found = re.findall(r"from cython\.cimports\.(soc\.[\w.]+) import (\w+)", text)
        cimported = tuple(sorted({f"{path}.{name}" if native.source_of(f"{path}.{name}").exists() else path
                                  for path, name in found}))
        assert cimported == tuple(sorted(native.CIMPORTS.get(module, ()))), module
        for name in cimported:
            assert native.source_of(name).with_suffix(".pxd").exists(), name


DETECT_SAMPLES = """
import importlib.abc, importlib.util, json, sys
from soc import native

class Source(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in native.COMPILED:
            return None
        source = native.source_of(fullname)
        package = [str(source.parent)] if source.name == "__init__.py" else None
        return importlib.util.spec_from_file_location(fullname, source, submodule_search_locations=package)

if sys.argv[1] == "source":
    sys.meta_path.insert(0, Source())
from soc.detect.engine import Detector
from soc.detect.loader import BUILTIN_RULES, load_rules
from soc.detect.samples import load_samples

rules = load_rules([BUILTIN_RULES])
fired = {}
for path in sorted((BUILTIN_RULES.parent / "rule_samples").glob("*.yml")):
    for case in load_samples(path).cases:
        detector = Detector(rules)
        fired[path.stem + ":" + case.name] = [
            sorted([rule.id for rule in matched] + [hit.correlation.id for hit in correlated])
            for matched, correlated in map(detector.process, case.events())]
modes = sorted({native.status()[m] for m in ("soc.ecs", "soc.detect.compiler", "soc.detect.engine",
                                              "soc.detect.correlation")})
print(json.dumps({"modes": modes, "fired": fired}))
"""


def _detect_samples(mode: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", DETECT_SAMPLES, mode], capture_output=True, text=True, check=True,
                         cwd=native.ROOT)
    return json.loads(out.stdout)


def test_detection_from_source_and_compiled_agree_on_every_rule_sample() -> None:
    """The modules cimporting others take other import paths compiled and from source: both detect alike."""
    compiled, source = _detect_samples("compiled"), _detect_samples("source")
    assert compiled["modes"] == ["compiled"] and source["modes"] == ["source"]
    assert compiled["fired"] == source["fired"]
    assert any(any(ids) for ids in compiled["fired"].values())  # the samples do fire rules
