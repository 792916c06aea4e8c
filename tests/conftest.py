"""Shared fixtures: settings in a temp YUNSHU_HOME, SQLite and a real PostgreSQL, the app and users."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import settings

from core.runtime import Runtime, open_runtime
from core.settings import Settings
from inventory.register import import_file
from portal.app import create_app
from portal.models import ROLES
from portal.security import create_token, create_user
from tests.browser_support import browser, playwright  # noqa: F401 - module-scoped browser fixtures
from tests.pg import Cluster

# No per-example time limit for hypothesis (its default is 200 ms): a test that fails when the shared machine is slow
# is a timed unit test; speed belongs to the benchmarks (test_enrich's compiled-against-source test failed so once).
settings.register_profile("yunshu", deadline=None)
settings.load_profile("yunshu")

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = REPO_ROOT / "inventory" / "samples" / "city.yaml"
PASSWORD = "Corr3ct-Horse-Battery"
_db_names = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database suite runs on both: a SQLite file and a fresh database in the PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'yunshu.db'}"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"yunshu_{next(_db_names)}")


def make_runtime(home: Path, db_url: str | None = None, **portal: object) -> Runtime:
    settings = Settings(home=home, database_url=db_url, portal=portal)  # type: ignore[arg-type]
    return open_runtime(settings)


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path / "var", db_url)
    yield runtime
    runtime.close()


@pytest.fixture
def sqlite_rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path / "var")
    yield runtime
    runtime.close()


def load_sample(runtime: Runtime) -> None:
    with runtime.transaction() as session:
        import_file(session, SAMPLE, runtime.audit, "test")


def sample_home_with_users(home: Path, users: list[tuple[str, str, str | None]]) -> None:
    """``home`` with the sample city and users (name, role, department), each with the test password; closed."""
    runtime = make_runtime(home)
    try:
        load_sample(runtime)
        with runtime.transaction() as session:
            for name, role, department in users:
                create_user(session, runtime.audit, runtime.settings.portal, actor="test", username=name, role=role,
                            password=PASSWORD, department=department)
    finally:
        runtime.close()


def run_cli(home: Path, *args: str, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``yunshu ARGS`` as a separate process on ``home`` (run from the repository); ``env`` adds variables."""
    environment = {"YUNSHU_HOME": str(home), "PATH": "/usr/bin", **(env or {})}
    return subprocess.run([sys.executable, "-m", "portal.cli", *args], env=environment, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


@contextmanager
def sample_city(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Runtime]:
    """A runtime of its own (SQLite, under a fresh ``name`` directory) with the sample city loaded."""
    runtime = make_runtime(tmp_path_factory.mktemp(name) / "var")
    try:
        load_sample(runtime)
        yield runtime
    finally:
        runtime.close()


@dataclass
class Portal:
    """A test portal: the app, its runtime and one API token per role (department users of GAJ and RSJ)."""

    rt: Runtime
    client: TestClient
    tokens: dict[str, str]

    def as_role(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@contextmanager
def open_portal(tmp_path_factory: pytest.TempPathFactory, name: str, **portal: object) -> Iterator[Portal]:
    """A portal with the sample city loaded and a user plus token per role (SQLite, under a fresh ``name``
    directory; ``portal`` overrides portal settings)."""
    runtime = make_runtime(tmp_path_factory.mktemp(name) / "var", None, **portal)
    try:
        load_sample(runtime)
        tokens: dict[str, str] = {}
        with runtime.transaction() as session:
            for role in ROLES:
                dept = "GAJ" if role == "department_user" else None
                user = create_user(session, runtime.audit, runtime.settings.portal, actor="test",
                                   username=role.replace("_", "-"), role=role, password=PASSWORD, department=dept)
                tokens[role] = create_token(session, runtime.audit, actor="test", user=user, name="t")[1]
            other = create_user(session, runtime.audit, runtime.settings.portal, actor="test", username="rsj-user",
                                role="department_user", password=PASSWORD, department="RSJ")
            tokens["department_user_rsj"] = create_token(session, runtime.audit, actor="test", user=other,
                                                         name="t")[1]
        with TestClient(create_app(runtime)) as client:
            yield Portal(runtime, client, tokens)
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """One portal with the sample city loaded and a user plus token per role (SQLite)."""
    with open_portal(tmp_path_factory, "portal") as opened:
        yield opened
