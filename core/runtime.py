"""The running control plane's shared handles: settings, engine, sessions and the audit chain."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.audit import AuditChain
from core.crypto import load_or_create_signing_key
from core.db import make_engine, migrate, session_factory, transaction
from core.settings import Settings, load_settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    audit: AuditChain

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction (commit on success, roll back on error)."""
        with transaction(self.sessions) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def open_runtime(settings: Settings | None = None, *, run_migrations: bool = True) -> Runtime:
    """Create var/, open the database (migrating it to the newest schema) and load the signing key."""
    settings = settings or load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    if run_migrations:
        migrate(engine)
    key = load_or_create_signing_key(settings.keys_dir)
    return Runtime(settings, engine, session_factory(engine), AuditChain(key))
