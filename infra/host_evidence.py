"""Host evidence kept for the 等保 collectors: what ``evidence.yml`` read on each host, when, by which job, with
the SHA-256 of the stored facts (canonical JSON) so a report can cite exactly what it was based on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base
from core.runtime import Runtime
from infra.ansible_run import PlaybookResult
from infra.evidence_facts import parse_evidence
from infra.jobs import JobEventView
from infra.jobs_models import Job  # noqa: F401 - the foreign key's table
from infra.scoped_jobs import run_scoped


class HostEvidenceRecord(Base):
    """One collection of one host's evidence."""

    __tablename__ = "host_evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(64), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    collected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    facts: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))


def canonical(facts: dict[str, Any]) -> str:
    """The stored form of the facts (sorted keys, no spaces): what the digest covers."""
    return json.dumps(facts, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def store_evidence(session: Session, job_id: int, outcome: PlaybookResult) -> dict[str, str]:
    """Store every host's evidence from an evidence.yml run; returns host → digest."""
    now = datetime.now(UTC)
    digests = {}
    for host, evidence in sorted(parse_evidence(outcome.events).items()):
        text = canonical(evidence.model_dump(mode="json"))
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        session.add(HostEvidenceRecord(host=host, job_id=job_id, collected_at=now, facts=text, sha256=digest))
        digests[host] = digest
    return digests


def latest_evidence(session: Session, host: str) -> dict[str, Any] | None:
    """The newest evidence of ``host``: facts, when, which job, digest (None when never collected)."""
    row = session.scalars(select(HostEvidenceRecord).where(HostEvidenceRecord.host == host)
                          .order_by(HostEvidenceRecord.id.desc()).limit(1)).first()
    if row is None:
        return None
    return {"host": row.host, "facts": json.loads(row.facts), "collected_at": row.collected_at.isoformat(),
            "job_id": row.job_id, "sha256": row.sha256, "source": "playbooks/evidence.yml"}


def collect_evidence(rt: Runtime, scope: list[str], actor: str, *,
                     on_event: Callable[[JobEventView, dict[str, Any]], None] | None = None,
                     on_created: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run evidence.yml on ``scope`` as a job (check mode: it must change nothing) and store what it read."""

    def summarise(job_id: int, outcome: PlaybookResult) -> dict[str, Any]:
        with rt.transaction() as session:
            digests = store_evidence(session, job_id, outcome)
        return {"hosts": sorted(digests), "sha256": digests, "changed": outcome.changed}

    return run_scoped(rt, "evidence", "evidence.yml", scope, actor, check=True, on_event=on_event,
                      on_created=on_created, summarise=summarise)
