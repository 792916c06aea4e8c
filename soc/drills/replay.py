"""Replay mode: a drill's attack logs go through the real pipeline (parsers, store, rules, alerts), then scored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.runtime import Runtime
from soc.drills.models import Drill
from soc.drills.scenario import Scenario
from soc.drills.service import DrillError, auto_link, replay_records, score
from soc.parsers import ParseContext
from soc.pipeline import Pipeline
from soc.service import Soc


def rule_ids(soc: Soc) -> dict[str, str]:
    """Rule and correlation names → ids, so steps may name their expected rule either way."""
    if soc.detection is None:
        return {}
    ruleset = soc.detection.detector.ruleset
    return {item.name: item.id for item in [*ruleset.rules, *ruleset.correlations] if item.name}


def replay(rt: Runtime, soc: Soc, drill_id: int, scenario: Scenario, actor: str,
           start: datetime | None = None) -> dict[str, Any]:
    """Run every step of the drill now (or from ``start``), link the alerts that result and return the score.

    The steps' logs keep the scenario's timeline from ``start`` (the rules see the attack as it would unfold), but
    a replay feeds them all at once: each step counts as executed when its logs enter the pipeline, so its time to
    detect is how long the SOC took to raise the alert after receiving them.
    The logs are counted in ``soc.metrics`` under source ``replay``.
    """
    if soc.detection is None:
        raise DrillError("detection is switched off (soc.detection: false); a replay would detect nothing")
    start = (start or datetime.now(UTC)).replace(microsecond=0)  # logs carry whole seconds
    with rt.transaction() as session:
        drill = session.get(Drill, drill_id)
        if drill is None:
            raise DrillError(f"no drill {drill_id}")
        if drill.status == "completed":
            raise DrillError(f"drill {drill_id} is completed; create a new one to replay")
        if drill.scenario_code != scenario.code:
            raise DrillError(f"drill {drill_id} follows scenario {drill.scenario_code}, not {scenario.code}")
        plan = replay_records(drill, scenario, start)
        anchors = {step.seq: start + timedelta(seconds=spec.offset_seconds)
                   for (step, _), spec in zip(plan, scenario.steps, strict=True)}
        drill.status, drill.actual_start = "running", drill.actual_start or start
        rt.audit.append(session, actor=actor, action="drill.replay", object_type="drill", object_id=str(drill_id),
                        payload={"start": start.isoformat(), "records": sum(len(r) for _, r in plan)})
        targets = [(step.seq, step.target) for step, _ in plan]
        batches = [records for _, records in plan]
    latest = start + timedelta(seconds=max(s.offset_seconds + s.repeat * s.step_seconds for s in scenario.steps))
    fed: dict[int, datetime] = {}
    for (seq, target), records in zip(targets, batches, strict=True):
        ctx = ParseContext(tz=soc.ctx.tz, now=latest + timedelta(hours=1), hostname=target)
        fed[seq] = datetime.now(UTC)
        Pipeline(soc.store, soc.deadletters, soc.enricher, ctx, after_write=soc.detection, metrics=soc.metrics,
                 source="replay").run(records)
    with rt.transaction() as session:
        drill = session.get(Drill, drill_id)
        assert drill is not None
        for step in drill.steps:
            step.executed_at = fed[step.seq]
        auto_link(session, drill, rule_ids(soc), anchors=anchors)
        return score(session, drill)
