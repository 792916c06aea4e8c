"""Digests and provenance stamps shared by the collectors."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from policies.mlps.evidence import Provenance


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8): what a digest covers."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def sha256_of(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def stamp(source: str, at: datetime, material: Any) -> Provenance:
    """Provenance of one evidence item: its source, when, and the digest of the raw material read."""
    return Provenance(source=source, collected_at=at, digest=sha256_of(material))
