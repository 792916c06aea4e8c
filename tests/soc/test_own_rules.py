"""Yunshu's own rules: each has positive and negative samples of raw log lines, run through the parsers."""

from __future__ import annotations

from pathlib import Path

import pytest

from soc.detect.engine import Detector
from soc.detect.loader import BUILTIN_RULES, load_rules
from soc.detect.samples import SampleCase, load_samples

SAMPLES = BUILTIN_RULES.parent / "rule_samples"
RULE_FILES = sorted(BUILTIN_RULES.glob("*.yml"))
RULESET = load_rules([BUILTIN_RULES])


def test_every_own_rule_loads_and_has_samples() -> None:
    assert RULESET.errors == []
    assert len(RULE_FILES) >= 14
    assert sorted(p.name for p in SAMPLES.glob("*.yml")) == [p.name for p in RULE_FILES]


def _fired(case: SampleCase) -> set[str]:
    """Ids and names of every rule and correlation that fired on the case's events."""
    detector = Detector(RULESET)  # with the real dataset → log-source index
    fired: set[str] = set()
    for event in case.events():
        matched, correlated = detector.process(event)
        for item in [*matched, *(hit.correlation for hit in correlated)]:
            fired |= {item.id, item.name or item.id}
    return fired


KNOWN = {n for item in [*RULESET.rules, *RULESET.correlations] for n in (item.id, item.name) if n}
CASES = [(path.stem, case) for path in sorted(SAMPLES.glob("*.yml")) for case in load_samples(path).cases]


@pytest.mark.parametrize(("rule_file", "case"), CASES, ids=[f"{r}:{c.name}" for r, c in CASES])
def test_rule_sample(rule_file: str, case: SampleCase) -> None:
    unknown = [n for n in case.expect + case.expect_not if n not in KNOWN]
    assert not unknown, f"{rule_file}: the sample names rules that do not exist: {unknown}"
    fired = _fired(case)
    missing = [n for n in case.expect if n not in fired]
    unexpected = [n for n in case.expect_not if n in fired]
    assert not missing, f"{rule_file}: {case.name}: expected {missing} to fire; fired {sorted(fired)}"
    assert not unexpected, f"{rule_file}: {case.name}: {unexpected} fired but must not"


def test_samples_schema_rejects_a_file_without_negatives(tmp_path: Path) -> None:
    bad = tmp_path / "x.yml"
    bad.write_text("cases:\n  - {name: a, lines: [x], expect: [r]}\n  - {name: b, lines: [y], expect: [r]}\n")
    with pytest.raises(ValueError, match="expect_not"):
        load_samples(bad)
