"""The audit chain: an append-only, hash-linked, Ed25519-signed record of every state change.

Each entry stores ``seq``, time, actor, action, object, the payload and its SHA-256 digest, the
previous entry's hash and its own hash over all of these; the hash is signed. A single-row head
records the newest ``seq`` and hash (also signed) so that deleting entries at the tail is seen.
Entries are written in the same transaction as the change they describe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import BigInteger, DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.crypto import canonical_json, sha256_hex
from core.db import Base

GENESIS_HASH = "0" * 64


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(128), index=True)
    payload: Mapped[str] = mapped_column(Text)
    payload_digest: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


def _ts_text(ts: datetime) -> str:
    if ts.tzinfo is None:  # SQLite returns naive datetimes; we only ever store UTC
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    seq: int, ts: datetime, actor: str, action: str, object_type: str, object_id: str, digest: str, prev: str
) -> str:
    """The hash of one entry over every field but the payload itself (covered by its digest)."""
    body = {
        "seq": seq,
        "ts": _ts_text(ts),
        "actor": actor,
        "action": action,
        "object": f"{object_type}:{object_id}",
        "payload_digest": digest,
        "prev_hash": prev,
    }
    return sha256_hex(canonical_json(body))


def _fit(text: str, size: int) -> str:
    """Column-sized text with NUL removed (PostgreSQL refuses NUL; oversize would not fit)."""
    text = text.replace("\x00", "\\0")
    return text if len(text) <= size else text[: size - 1] + "…"


GENESIS_ACTION = "audit.genesis"


def _head_message(seq: int, hash_: str) -> bytes:
    return f"yunshu-audit-head:{seq}:{hash_}".encode()


class AuditChain:
    """Appends to and verifies the chain; the key signs, its public half verifies."""

    def __init__(self, signing_key: Ed25519PrivateKey | None = None, public_key: Ed25519PublicKey | None = None):
        self.signing_key = signing_key
        self.public_key = public_key or (signing_key.public_key() if signing_key else None)

    def append(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        payload: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Add one entry inside the caller's transaction (which commits it with the change)."""
        if self.signing_key is None:
            raise RuntimeError("audit chain opened without a signing key cannot append")
        head = session.get(AuditHead, 1, with_for_update=True)
        prev_seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
        actor, object_id = _fit(actor, 128), _fit(object_id, 128)
        payload_text = canonical_json(payload or {}).decode()
        digest = sha256_hex(payload_text.encode())
        ts = datetime.now(UTC)
        seq = prev_seq + 1
        hash_ = entry_hash(seq, ts, actor, action, object_type, object_id, digest, prev_hash)
        entry = AuditEntry(
            seq=seq,
            ts=ts,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            payload=payload_text,
            payload_digest=digest,
            prev_hash=prev_hash,
            hash=hash_,
            signature=self.signing_key.sign(bytes.fromhex(hash_)).hex(),
        )
        session.add(entry)
        head_sig = self.signing_key.sign(_head_message(seq, hash_)).hex()
        if head is None:
            session.add(AuditHead(id=1, seq=seq, hash=hash_, signature=head_sig))
        else:
            head.seq, head.hash, head.signature = seq, hash_, head_sig
        session.flush()
        return entry

    def verify(self, session: Session) -> VerifyResult:
        """Recompute every hash and signature; report the first bad entry and what happened to it."""
        if self.public_key is None:
            raise RuntimeError("no public key to verify with")
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        if not entries:
            return VerifyResult(False, 0, 1, "deleted", "the chain is empty: every instance starts it with an "
                                "audit.genesis entry, so its entries were deleted (or this is not the instance "
                                "you meant: check YUNSHU_HOME / the database URL)")
        if entries[0].seq == 1 and entries[0].action != GENESIS_ACTION:
            return VerifyResult(False, len(entries), 1, "deleted", "seq 1 is not the audit.genesis entry")
        hashes = {e.hash: e.seq for e in entries}
        prev_seq, prev_hash = 0, GENESIS_HASH
        for entry in entries:
            try:
                problem = self._check_entry(entry, prev_seq, prev_hash, hashes)
            except (ValueError, TypeError, AttributeError) as exc:  # unreadable hash, signature or time
                problem = ("edited", f"seq {entry.seq}: stored values are not well-formed ({exc})")
            if problem:
                kind, detail = problem
                return VerifyResult(False, len(entries), entry.seq, kind, detail)
            prev_seq, prev_hash = entry.seq, entry.hash
        head = session.get(AuditHead, 1)
        return self._check_head(head, prev_seq, prev_hash, len(entries))

    def _check_entry(
        self, entry: AuditEntry, prev_seq: int, prev_hash: str, hashes: dict[str, int]
    ) -> tuple[str, str] | None:
        if entry.seq != prev_seq + 1:
            return "deleted", f"entries {prev_seq + 1}..{entry.seq - 1} are missing before seq {entry.seq}"
        if not self._signature_ok(bytes.fromhex(entry.hash), entry.signature):
            return "forged", f"seq {entry.seq}: signature does not verify (entry forged or re-hashed)"
        if sha256_hex(entry.payload.encode()) != entry.payload_digest:
            return "edited", f"seq {entry.seq}: payload does not match its digest"
        recomputed = entry_hash(
            entry.seq, entry.ts, entry.actor, entry.action, entry.object_type, entry.object_id,
            entry.payload_digest, entry.prev_hash,
        )
        if recomputed != entry.hash:
            elsewhere = hashes.get(entry.prev_hash)
            if elsewhere is not None and elsewhere != prev_seq:
                return "reordered", f"seq {entry.seq}: entry belongs after seq {elsewhere}, not after {prev_seq}"
            original = self._original_seq(entry)
            if original is not None and original > entry.seq:
                return "deleted", (f"seq {entry.seq}: this entry was signed as seq {original}; "
                                   f"{original - entry.seq} entries before it were deleted and the rest renumbered")
            return "edited", f"seq {entry.seq}: fields changed after signing (hash mismatch)"
        if entry.prev_hash != prev_hash:
            return "reordered", f"seq {entry.seq}: previous-hash link to seq {prev_seq} is broken"
        return None

    @staticmethod
    def _original_seq(entry: AuditEntry, window: int = 100_000) -> int | None:
        """The sequence number an entry was signed with, if it was only renumbered."""
        for seq in range(max(1, entry.seq - window), entry.seq + window):
            if seq != entry.seq and entry_hash(seq, entry.ts, entry.actor, entry.action, entry.object_type,
                                               entry.object_id, entry.payload_digest, entry.prev_hash) == entry.hash:
                return seq
        return None

    def _check_head(self, head: AuditHead | None, last_seq: int, last_hash: str, count: int) -> VerifyResult:
        if head is None:
            return VerifyResult(False, count, None, "deleted", "chain head record is missing")
        if not self._signature_ok(_head_message(head.seq, head.hash), head.signature):
            return VerifyResult(False, count, head.seq, "forged", "chain head signature does not verify")
        if head.seq != last_seq or head.hash != last_hash:
            return VerifyResult(
                False, count, last_seq + 1, "deleted",
                f"head says the chain ends at seq {head.seq} but the last entry is seq {last_seq}",
            )
        return VerifyResult(True, count, None, None, f"{count} entries verified")

    def _signature_ok(self, message: bytes, signature_hex: str) -> bool:
        assert self.public_key is not None
        try:
            self.public_key.verify(bytes.fromhex(signature_hex), message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :meth:`AuditChain.verify`: ``bad_seq`` and ``kind`` name the first problem."""

    ok: bool
    entries: int
    bad_seq: int | None
    kind: str | None  # edited | deleted | reordered | forged
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "bad_seq": self.bad_seq, "kind": self.kind,
                "detail": self.detail}


def entry_payload(entry: AuditEntry) -> dict[str, Any]:
    """The decoded payload of an entry."""
    return json.loads(entry.payload)
