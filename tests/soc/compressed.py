"""An embedded store that compresses every document from its first one: a dictionary trained here on varied ECS
documents is put in the file before the store opens it (a store trains its own only after SAMPLE_DOCS documents)."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import orjson
import zstandard

from soc.store.sqlite import SQLiteStore


def training_docs(count: int = 1000, seed: int = 7) -> list[bytes]:
    """Varied ECS-like documents (auth and web events) as JSON bytes."""
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        docs.append(orjson.dumps({
            "@timestamp": f"2026-11-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:00:00.000Z",
            "event": {"kind": "event", "dataset": rng.choice(["system.auth", "nginx.access"]), "outcome":
                      rng.choice(["success", "failure"]), "action": rng.choice(["ssh_login", "access"])},
            "message": f"Failed password for user{i % 17} from {ip} port {rng.randrange(1024, 65535)} ssh2",
            "source": {"ip": ip, "port": rng.randrange(1024, 65535)}, "user": {"name": f"user{i % 17}"},
            "host": {"name": f"host-{i % 9}"}, "related": {"ip": [ip]},
            "gov": {"system": {"id": f"SYS-{i % 5}"}, "department": "RSJ", "mlps_level": 3, "data_class": "general"},
        }))
    return docs


def compressed_sqlite(path: Path) -> SQLiteStore:
    """A SQLiteStore at ``path`` holding a trained document dictionary (so it compresses from the start)."""
    SQLiteStore(path).close()
    dictionary = zstandard.train_dictionary(4096, training_docs())
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO doc_dictionaries(id, data, added) VALUES (?, ?, ?)",
                   (dictionary.dict_id(), dictionary.as_bytes(), time.time()))
    db.close()
    return SQLiteStore(path)
