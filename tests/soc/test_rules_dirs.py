"""User-configured rule folders (soc.rules_dirs): their rules raise alerts and can be hunted with; broken ones are
reported by name and the rest keep working."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from soc.alerts.stage import load_configured_rules
from tests.soc.test_ingest import _cli

RULE_ID = "0b6c1f5e-6a53-4d0e-9a55-7d1f3c0e2a11"
RULE_NAME = "city_oracle_ssh_failure"
RULE = f"""title: Failed SSH login as the Oracle service account
id: {RULE_ID}
name: {RULE_NAME}
status: experimental
logsource:
  product: linux
  service: sshd
detection:
  selection:
    user.name: oracle
    event.outcome: failure
    source.ip|cidr: 198.51.100.0/24
  condition: selection
level: high
tags:
  - attack.credential-access
  - attack.t1110
"""
BROKEN = "title: half-written rule\ndetection: {condition: nope}\n"


def _rules_dir(tmp_path: Path) -> Path:
    rules = tmp_path / "city-rules"
    (rules / "ssh").mkdir(parents=True)
    (rules / "ssh" / "oracle_login.yml").write_text(RULE, encoding="utf-8")
    (rules / "broken_rule.yml").write_text(BROKEN, encoding="utf-8")
    return rules


def _home(tmp_path: Path, rules_dirs: list[Path]) -> Path:
    """A home whose config.yaml (core.settings reads $YUNSHU_HOME/config.yaml) names the rule folders."""
    home = tmp_path / "var"
    home.mkdir()
    (home / "config.yaml").write_text(yaml.safe_dump({"soc": {"rules_dirs": [str(d) for d in rules_dirs]}}),
                                      encoding="utf-8")
    return home


def _sshd(user: str, ip: str, n: int, minute: int) -> list[str]:
    return [f"<38>Nov 20 10:{minute:02d}:{i:02d} bastion01 sshd[7]: Failed password for {user} from {ip} "
            f"port {40000 + i} ssh2\n" for i in range(n)]


def test_configured_rule_raises_alerts_and_is_hunted(tmp_path: Path) -> None:
    rules = _rules_dir(tmp_path)
    home = _home(tmp_path, [rules])
    log = tmp_path / "auth.log"
    log.write_text("".join(_sshd("oracle", "198.51.100.23", 3, 0) + _sshd("oracle", "192.0.2.9", 2, 1)
                           + _sshd("root", "198.51.100.23", 2, 2)), encoding="utf-8")

    ingested = _cli(home, "soc", "ingest", str(log))
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout)["stored"] == 7
    # the broken file is named with the reason; it did not stop the good rule from loading or detection
    assert str(rules / "broken_rule.yml") in ingested.stderr and "rule not loaded" in ingested.stderr
    assert "oracle_login.yml" not in ingested.stderr

    listed = _cli(home, "soc", "alerts")
    assert listed.returncode == 0, listed.stderr
    alerts = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(a["rule_id"], a["title"], a["count"], a["source_ip"]) for a in alerts] == [
        (RULE_ID, "Failed SSH login as the Oracle service account", 3, "198.51.100.23")]
    assert alerts[0]["attack"] == ["attack.credential-access", "attack.t1110"]

    for key in (RULE_ID, RULE_NAME):
        hunted = _cli(home, "soc", "hunt", "--rule-id", key, "--limit", "100")
        assert hunted.returncode == 0, hunted.stderr
        hits = [json.loads(line) for line in hunted.stdout.splitlines()]
        assert len(hits) == 3 and {(h["user"]["name"], h["source"]["ip"]) for h in hits} == {
            ("oracle", "198.51.100.23")}
        assert "3 of 3 matching events" in hunted.stderr

    # a home without the folder configured knows no such rule, and says where it looked
    (home / "config.yaml").write_text("soc: {rules_dirs: []}\n", encoding="utf-8")
    unknown = _cli(home, "soc", "hunt", "--rule-id", RULE_ID)
    assert unknown.returncode == 2 and f"no rule with id or name '{RULE_ID}'" in unknown.stderr
    assert "soc.rules_dirs: none" in unknown.stderr


def test_missing_folder_and_broken_files_are_reported_not_fatal(tmp_path: Path) -> None:
    rules = _rules_dir(tmp_path)
    (rules / "not_yaml.yml").write_bytes(b"\xff\xfe not utf-8 \x00")
    missing = tmp_path / "no-such-folder"
    ruleset = load_configured_rules([missing, rules])
    errors = {Path(e.path).name: e.reason for e in ruleset.errors}
    assert set(errors) == {"no-such-folder", "broken_rule.yml", "not_yaml.yml"}, errors
    assert "no such rule folder" in errors["no-such-folder"]
    assert all(reason.strip() for reason in errors.values())
    assert RULE_ID in {r.id for r in ruleset.rules}
    assert "yunshu_ssh_failed_login" in {r.name for r in ruleset.rules}  # the built-in rules still load

    home = _home(tmp_path, [missing, rules])
    log = tmp_path / "auth.log"
    log.write_text("".join(_sshd("oracle", "198.51.100.77", 1, 5)), encoding="utf-8")
    ingested = _cli(home, "soc", "ingest", str(log))
    assert ingested.returncode == 0, ingested.stderr
    assert str(missing) in ingested.stderr and "not_yaml.yml" in ingested.stderr
    alerts = [json.loads(line) for line in _cli(home, "soc", "alerts").stdout.splitlines()]
    assert [a["rule_id"] for a in alerts] == [RULE_ID]
