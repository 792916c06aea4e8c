"""The audit chain detects edited, deleted, reordered and forged entries (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update

from core.audit import AuditChain, AuditEntry, AuditHead
from core.runtime import Runtime


def _append(rt: Runtime, n: int) -> None:
    with rt.transaction() as s:
        for i in range(n):
            rt.audit.append(s, actor="alice", action="test.change", object_type="thing", object_id=str(i),
                            payload={"i": i, "note": "变更"})


def _verify(rt: Runtime):  # type: ignore[no-untyped-def]
    with rt.sessions() as s:
        return rt.audit.verify(s)


def test_intact_chain_verifies(rt: Runtime) -> None:
    _append(rt, 5)
    result = _verify(rt)
    assert result.ok and result.entries == 6 and result.bad_seq is None  # the genesis entry and five more
    with rt.sessions() as s:
        assert s.get(AuditEntry, 1).action == "audit.genesis"


def test_key_file_is_private(rt: Runtime) -> None:
    key = rt.settings.keys_dir / "audit_ed25519.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_edited_payload_detected(rt: Runtime) -> None:
    _append(rt, 5)
    with rt.transaction() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(payload='{"i":999}'))
    result = _verify(rt)
    assert (result.ok, result.bad_seq, result.kind) == (False, 3, "edited")


def test_edited_field_detected(rt: Runtime) -> None:
    _append(rt, 5)
    with rt.transaction() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="mallory"))
    result = _verify(rt)
    assert (result.ok, result.bad_seq, result.kind) == (False, 2, "edited")


def test_deleted_middle_entry_detected(rt: Runtime) -> None:
    _append(rt, 5)
    with rt.transaction() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    result = _verify(rt)
    assert (result.ok, result.bad_seq, result.kind) == (False, 4, "deleted")
    assert "3..3" in result.detail


def test_deleted_tail_detected(rt: Runtime) -> None:
    _append(rt, 5)
    with rt.transaction() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 6))
    result = _verify(rt)
    assert (result.ok, result.bad_seq, result.kind) == (False, 6, "deleted")


def test_wiped_chain_detected(rt: Runtime) -> None:
    _append(rt, 3)
    with rt.transaction() as s:
        s.execute(delete(AuditEntry))
        s.execute(delete(AuditHead))
    result = _verify(rt)
    assert (result.ok, result.kind) == (False, "deleted") and "empty" in result.detail


def test_deleted_and_renumbered_detected(rt: Runtime) -> None:
    _append(rt, 6)
    with rt.transaction() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
        for seq in range(4, 8):
            s.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(seq=seq - 1))
    result = _verify(rt)
    assert (result.ok, result.bad_seq, result.kind) == (False, 3, "deleted")
    assert "signed as seq 4" in result.detail


def test_malformed_values_reported_not_crashing(rt: Runtime) -> None:
    _append(rt, 3)
    with rt.transaction() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(hash="zz", signature="not hex"))
    result = _verify(rt)
    assert (result.ok, result.bad_seq, result.kind) == (False, 2, "edited")


def test_reordered_entries_detected(rt: Runtime) -> None:
    _append(rt, 5)
    cols = ["ts", "actor", "action", "object_type", "object_id", "payload", "payload_digest", "prev_hash",
            "hash", "signature"]
    with rt.transaction() as s:
        a = s.get(AuditEntry, 2)
        b = s.get(AuditEntry, 3)
        va = {c: getattr(a, c) for c in cols}
        vb = {c: getattr(b, c) for c in cols}
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(**vb))
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(**va))
    result = _verify(rt)
    assert (result.ok, result.bad_seq, result.kind) == (False, 2, "reordered")


def test_forged_entry_detected(rt: Runtime) -> None:
    """An attacker who re-computes hashes with their own key still cannot produce our signatures."""
    _append(rt, 3)
    forger = AuditChain(Ed25519PrivateKey.generate())
    with rt.transaction() as s:
        forger.append(s, actor="mallory", action="user.create", object_type="user", object_id="backdoor")
    result = _verify(rt)
    assert (result.ok, result.bad_seq, result.kind) == (False, 5, "forged")


def test_rehashed_edit_detected_as_forged(rt: Runtime) -> None:
    _append(rt, 3)
    from core.audit import entry_hash
    from core.crypto import sha256_hex

    with rt.transaction() as s:
        e = s.get(AuditEntry, 2)
        e.payload = json.dumps({"i": 42})
        e.payload_digest = sha256_hex(e.payload.encode())
        e.hash = entry_hash(e.seq, e.ts, e.actor, e.action, e.object_type, e.object_id, e.payload_digest,
                            e.prev_hash)
    result = _verify(rt)
    assert (result.ok, result.bad_seq, result.kind) == (False, 2, "forged")


def test_missing_head_detected(rt: Runtime) -> None:
    _append(rt, 2)
    with rt.transaction() as s:
        s.execute(delete(AuditHead))
    assert _verify(rt).kind == "deleted"


def test_missing_key_is_refused_not_replaced(rt: Runtime) -> None:
    """A new key for an existing chain would hide tampering: opening the instance must fail instead."""
    from core.runtime import AuditKeyMissing, open_runtime

    _append(rt, 2)
    for key in rt.settings.keys_dir.iterdir():
        key.unlink()
    with pytest.raises(AuditKeyMissing, match="has entries but its signing key"):
        open_runtime(rt.settings)
    assert not (rt.settings.keys_dir / "audit_ed25519.pem").exists()


def test_chain_links_each_entry_to_the_previous(rt: Runtime) -> None:
    _append(rt, 3)
    with rt.sessions() as s:
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_verify_names_bad_entry(rt: Runtime, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _append(rt, 4)
    env = {"YUNSHU_HOME": str(rt.settings.home), "YUNSHU_DATABASE_URL": rt.settings.db_url, "PATH": "/usr/bin"}
    ok = subprocess.run([sys.executable, "-m", "portal.cli", "audit", "verify"], env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["entries"] == 5
    with rt.transaction() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(object_id="other"))
    bad = subprocess.run([sys.executable, "-m", "portal.cli", "audit", "verify"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1
    out = json.loads(bad.stdout)
    assert (out["bad_seq"], out["kind"]) == (2, "edited")
    env["YUNSHU_HOME"] = str(tmp_path / "typo")
    wrong = subprocess.run([sys.executable, "-m", "portal.cli", "audit", "verify"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert wrong.returncode == 2 and "no audit key" in wrong.stderr
    assert not (tmp_path / "typo").exists()  # verifying a mistyped home creates nothing
