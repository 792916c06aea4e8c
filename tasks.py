"""invoke tasks: up, test, lint. ``./dev.sh`` bootstraps the venv and system packages, then calls these."""

from __future__ import annotations

from invoke import Context, task


@task(help={"demo": "load the sample city even if the register is not empty", "port": "listen port"})
def up(c: Context, demo: bool = False, port: int = 0) -> None:
    """Migrate var/, create the admin user and start the control plane on its embedded defaults."""
    args = ["up"]
    if demo:
        args.append("--demo")
    if port:
        args += ["--port", str(port)]
    c.run("yunshu " + " ".join(args), pty=False)


@task
def lint(c: Context) -> None:
    """ruff over the whole tree."""
    c.run("ruff check .")


@task(pre=[lint], help={"k": "only tests matching this expression", "workers": "pytest-xdist workers"})
def test(c: Context, k: str = "", workers: int = 2) -> None:
    """The whole test suite: SQLite and a throwaway PostgreSQL, the API, the console in a real browser."""
    select = f" -k '{k}'" if k else ""
    c.run(f"pytest -n {workers} --dist loadfile{select}", pty=False)
