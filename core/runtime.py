"""The running control plane's shared handles: settings, engine, sessions and the audit chain."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from core.audit import GENESIS_ACTION, AuditChain, AuditEntry
from core.crypto import SIGNING_KEY_NAME, load_or_create_signing_key, sha256_hex
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


class AuditKeyMissing(RuntimeError):
    """The database holds an audit chain but its signing key is not where it should be."""


def open_runtime(settings: Settings | None = None, *, run_migrations: bool = True) -> Runtime:
    """Create var/ (private), open the database (migrating it) and load the audit signing key.

    The key is created only together with a new chain, whose first entry (``audit.genesis``) names it;
    a chain whose key has gone missing is refused rather than continued under a new key.
    """
    settings = settings or load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    engine = make_engine(settings.db_url)
    if run_migrations:
        migrate(engine)
    _private_sqlite_file(engine)
    sessions = session_factory(engine)
    key_path = settings.keys_dir / f"{SIGNING_KEY_NAME}.pem"
    if not key_path.exists():
        with sessions() as session:
            if session.scalar(select(AuditEntry.seq).limit(1)) is not None:
                engine.dispose()
                raise AuditKeyMissing(
                    f"the audit chain in {engine.url.render_as_string(hide_password=True)} has entries but its "
                    f"signing key {key_path} is missing: restore the key (or check YUNSHU_HOME); "
                    "a new key would hide tampering"
                )
    new_chain = not key_path.exists()
    key = load_or_create_signing_key(settings.keys_dir)
    audit = AuditChain(key)
    if new_chain:
        fingerprint = sha256_hex(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
        with transaction(sessions) as session:
            audit.append(session, actor="system", action=GENESIS_ACTION, object_type="audit_key",
                         object_id=fingerprint[:16], payload={"public_key_sha256": fingerprint})
    return Runtime(settings, engine, sessions, audit)


def _private_sqlite_file(engine: Engine) -> None:
    """The embedded database holds password hashes and TOTP secrets: owner-only access."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if database and database != ":memory:" and Path(database).exists():
        os.chmod(database, 0o600)
