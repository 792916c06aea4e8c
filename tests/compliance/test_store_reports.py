"""Stored evaluations, auditor answers fed into the next run, the trend; signed reports and their verification
(tampering with a byte of the HTML, the manifest or the signature is named); the CLI commands."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from core.audit import AuditEntry
from core.runtime import Runtime
from portal import cli_audit
from portal.compliance.reports import (
    MANIFEST,
    PUBLIC_KEY,
    SIGNATURE,
    load_or_create_report_key,
    verify_report,
    write_report,
)
from portal.compliance.store import AnswerRejected, record_answer, run_evaluation, trend
from tests.conftest import sample_city

SYSTEM = "SYS-SJJ-002"
MANUAL = "L3-PSS1-01"  # 安全策略: a manual item


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with sample_city(tmp_path_factory, "mlps-store") as rt:
        yield rt


@pytest.fixture(scope="module")
def report(city: Runtime) -> dict:
    return run_evaluation(city, SYSTEM, "auditor", probe_targets=[])[1]


def _req(data: dict, unit: str) -> dict:
    return next(r for r in data["requirements"] if r["unit"] == unit)


def test_stored_answers_change_the_next_evaluation(city: Runtime, report: dict) -> None:
    assert _req(report, MANUAL)["result"] == "待人工"
    with city.transaction() as session:
        record_answer(session, city, SYSTEM, unit=MANUAL, result="符合", auditor="li.auditor", note="制度已发布")
    run, data = run_evaluation(city, SYSTEM, "li.auditor", probe_targets=[])
    req = _req(data, MANUAL)
    assert req["result"] == "符合" and req["decided_by"] == "auditor"
    assert req["answer"]["auditor"] == "li.auditor" and req["answer"]["note"] == "制度已发布"
    assert data["counts"]["符合"] == report["counts"]["符合"] + 1
    assert data["counts"]["待人工"] == report["counts"]["待人工"] - 1
    assert run.answers_used == 1

    with city.transaction() as session:  # the newest answer for a unit wins
        record_answer(session, city, SYSTEM, unit=MANUAL, result="不符合", auditor="wang.auditor", note="未发布")
    _, again = run_evaluation(city, SYSTEM, "wang.auditor", probe_targets=[])
    req = _req(again, MANUAL)
    assert req["result"] == "不符合" and req["answer"]["auditor"] == "wang.auditor"
    assert req["remediation"]["zh"]  # every 不符合 item has a suggestion
    assert all(r["remediation"] for r in again["requirements"] if r["result"] in ("不符合", "部分符合"))
    assert all(r["remediation"] is None for r in again["requirements"] if r["result"] == "符合")
    with city.sessions() as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("compliance.%"))).all()
        assert city.audit.verify(session).ok
    assert actions.count("compliance.answer") == 2 and actions.count("compliance.evaluate") >= 3


@pytest.mark.parametrize(("system", "unit", "result", "message"), [
    (SYSTEM, "L3-XYZ1-01", "符合", "is not a requirement of level 3 system"),
    (SYSTEM, "L2-PSS1-01", "符合", "is not a requirement of level 3 system"),
    (SYSTEM, "bogus", "符合", "answer: unit"),
    (SYSTEM, MANUAL, "yes", "result 'yes' must be one of 符合"),
    ("SYS-NOPE-001", MANUAL, "符合", "SYS-NOPE-001 is not in the register"),
    ("SYS-CGJ-004", "L1-PSS1-01", "符合", "levels 2 and 3 only"),
])
def test_bad_answers_are_refused_naming_the_problem(city: Runtime, system: str, unit: str, result: str,
                                                    message: str) -> None:
    with city.transaction() as session, pytest.raises(AnswerRejected, match=message):
        record_answer(session, city, system, unit=unit, result=result, auditor="a")


def test_trend_lists_evaluations_in_time_order(city: Runtime) -> None:
    other = "SYS-XFJ-001"
    later = datetime.now(UTC)
    first, _ = run_evaluation(city, other, "a", now=later, probe_targets=[])
    second, _ = run_evaluation(city, other, "a", now=later - timedelta(days=30), probe_targets=[])  # back-dated
    third, _ = run_evaluation(city, other, "a", now=later + timedelta(minutes=1), probe_targets=[])
    with city.sessions() as session:
        runs = trend(session, other)
        assert [r["id"] for r in trend(session, other, limit=2)] == [first.id, third.id]
    assert [r["id"] for r in runs] == [second.id, first.id, third.id]
    assert [r["evaluated_at"] for r in runs] == sorted(r["evaluated_at"] for r in runs)
    assert all(r["system_id"] == other and set(r["evidence_digests"]) >= {"register", "soc"} for r in runs)


def test_signed_report_verifies_and_names_every_tampered_file(city: Runtime, report: dict, tmp_path: Path) -> None:
    key = load_or_create_report_key(city.settings.keys_dir)
    out = tmp_path / "report"
    manifest = write_report(out, report, key)
    assert sorted(manifest["files"]) == ["report.csv", "report.html", "report.json", PUBLIC_KEY]
    result = verify_report(out)
    assert result.ok and result.system == SYSTEM and result.key_sha256 == manifest["public_key_sha256"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert SYSTEM in html and report["conclusion"]["zh"] in html and "整改建议" in html
    assert f"测评项 / Items: {report['items']} ·" in html and "built-in method" not in html
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["system"]["id"] == SYSTEM
    csv_text = (out / "report.csv").read_text(encoding="utf-8-sig")
    assert "整改建议" in csv_text.splitlines()[0] and MANUAL in csv_text
    with pytest.raises(FileExistsError, match="not empty"):
        write_report(out, report, key)

    def tampered(mutate) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
        copy = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
        copy.mkdir()
        for path in out.iterdir():
            (copy / path.name).write_bytes(path.read_bytes())
        mutate(copy)
        return verify_report(copy).problems

    def flip(name: str, at: int = 400):  # type: ignore[no-untyped-def]
        def mutate(d: Path) -> None:
            body = bytearray((d / name).read_bytes())
            body[at] = ord("X") if body[at] != ord("X") else ord("Y")
            (d / name).write_bytes(bytes(body))
        return mutate

    assert [f for f, _ in tampered(flip("report.html"))] == ["report.html"]
    assert [f for f, _ in tampered(flip("report.csv", 100))] == ["report.csv"]
    assert [f for f, _ in tampered(flip(MANIFEST, 60))] == [MANIFEST]

    def bad_signature(d: Path) -> None:
        sig = json.loads((d / SIGNATURE).read_text())
        raw = bytearray(base64.b64decode(sig["signature"]))
        raw[0] ^= 1
        sig["signature"] = base64.b64encode(bytes(raw)).decode()
        (d / SIGNATURE).write_text(json.dumps(sig))

    assert [f for f, _ in tampered(bad_signature)] == [SIGNATURE]
    assert [f for f, _ in tampered(flip(SIGNATURE, 20))] == [SIGNATURE]
    assert tampered(lambda d: (d / "report.json").unlink()) == [("report.json", "missing / 缺失")]
    assert [f for f, _ in tampered(lambda d: (d / "extra.txt").write_text("x"))] == ["extra.txt"]

    def resigned(d: Path) -> None:  # an attacker edits the HTML and re-signs with a key of their own
        other = Ed25519PrivateKey.generate()
        (d / "report.html").write_text("forged", encoding="utf-8")
        for path in list(d.iterdir()):
            path.unlink()
        write_report(d, {**report, "conclusion": None}, other)

    forged = tmp_path / "forged"
    forged.mkdir()
    resigned(forged)
    assert verify_report(forged).ok  # self-consistent, but not by our key:
    trusted = key.public_key()
    assert [f for f, _ in verify_report(forged, trusted).problems] == [SIGNATURE]
    assert verify_report(out, trusted).ok
    assert verify_report(tmp_path / "nope").problems[0][1].startswith("not a directory")


def test_cli_report_and_verify(city: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("YUNSHU_HOME", str(city.settings.home))
    out = tmp_path / "cli-report"
    assert cli_audit.main(["report", "--system", SYSTEM, "--out", str(out), "--actor", "li.auditor",
                           "--no-probe"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["system"] == SYSTEM and printed["evaluation_id"] and "manifest" not in printed["files"]
    assert cli_audit.main(["verify-report", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    pub = city.settings.keys_dir / "report_ed25519.pub"
    assert cli_audit.main(["verify-report", str(out), "--public-key", str(pub)]) == 0
    capsys.readouterr()

    body = bytearray((out / "report.html").read_bytes())
    body[-20] ^= 0x20
    (out / "report.html").write_bytes(bytes(body))
    assert cli_audit.main(["verify-report", str(out)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["problems"][0]["file"] == "report.html" and "report.html" in captured.err

    assert cli_audit.main(["report", "--system", "SYS-NOPE-001", "--out", str(tmp_path / "x")]) == 2
    assert "SYS-NOPE-001: not in the register" in capsys.readouterr().err
    assert cli_audit.main(["report", "--system", SYSTEM, "--out", str(out)]) == 2  # not empty
    assert "not an empty directory" in capsys.readouterr().err
    not_key = tmp_path / "k.pem"
    not_key.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert cli_audit.main(["verify-report", str(out), "--public-key", str(not_key)]) == 1


def test_level_one_system_gets_a_signed_report_that_says_it_is_not_covered(
        city: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("YUNSHU_HOME", str(city.settings.home))
    out = tmp_path / "l1"
    assert cli_audit.main(["report", "--system", "SYS-CGJ-004", "--out", str(out), "--no-probe"]) == 0
    assert "levels 2 and 3 only" in capsys.readouterr().err
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "本目录仅覆盖第二级和第三级，第1级系统须人工测评" in html and 'id="conclusion"' not in html
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["requirements"] == [] and data["unsupported"]["en"].endswith("evaluate it by hand")
    assert verify_report(out).ok


def test_remediation_ticket_fields_and_opening(city: Runtime, report: dict) -> None:
    from portal.compliance.remediation import open_remediation_ticket, remediation_ticket_fields
    from portal.tickets.service import Actor, compliance_ref, ticket_dict

    failed = next(r for r in report["requirements"] if r["result"] == "不符合")
    fields = remediation_ticket_fields(report, failed["unit"])
    assert fields["type"] == "remediation" and fields["system"] == SYSTEM and failed["unit"] in fields["title"]
    assert failed["remediation"]["zh"] in fields["justification"]
    assert fields["compliance"]["evaluation_id"] == report["report"]["evaluation_id"]
    assert fields["compliance"]["unit"] == failed["unit"] and fields["compliance"]["clause"] == failed["clause"]
    passed = next(r for r in report["requirements"] if r["result"] == "符合")
    with pytest.raises(ValueError, match="only 不符合 / 部分符合 items are remediated"):
        remediation_ticket_fields(report, passed["unit"])
    with pytest.raises(ValueError, match="not a requirement"):
        remediation_ticket_fields(report, "L3-ZZZ1-01")
    with pytest.raises(ValueError, match="not a stored evaluation"):
        remediation_ticket_fields({**report, "report": {}}, failed["unit"])
    with city.transaction() as session:
        ticket = open_remediation_ticket(session, city.audit, Actor("eng", "platform_engineer", None), report,
                                         failed["unit"])
        assert ticket.state == "draft" and ticket.type == "remediation" and ticket.system_id == SYSTEM
        shown = ticket_dict(session, ticket, detail=True)
    assert shown["compliance"] == compliance_ref(ticket) and shown["compliance"]["unit"] == failed["unit"]
    assert shown["compliance"]["finding"].startswith(failed["clause"])
    with city.transaction() as session:
        submitted = open_remediation_ticket(session, city.audit, Actor("eng", "platform_engineer", None), report,
                                            failed["unit"], submit=True)
        assert submitted.state == "security_review"
