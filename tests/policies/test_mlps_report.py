"""Report data: JSON- and CSV-ready, consistent with the evaluation."""

from __future__ import annotations

import csv
import io
import json

from policies.mlps.evaluate import Answer, evaluate
from policies.mlps.report import CSV_COLUMNS, csv_rows, overview_rows, report_data, to_csv, to_json
from policies.mlps.results import Result
from tests.policies.mlps_evidence import AS_OF, good


def _weak_password_system():  # type: ignore[no-untyped-def]
    data = good()
    data["hosts"][0]["password"]["minlen"] = 4
    answers = [Answer(unit="L3-PSS1-01", result=Result.COMPLIANT, auditor="李审计", answered_at=AS_OF, note="已查阅")]
    return evaluate(data, answers=answers, as_of=AS_OF)


def test_report_data_is_json_ready_and_consistent() -> None:
    ev = _weak_password_system()
    data = json.loads(to_json(ev, generated_at=AS_OF))
    assert data["system"] == {"id": "SYS-TEST-01", "name": "测试系统", "level": 3, "cloud_role": "customer"}
    assert data["items"] == len(ev.results) == len(data["requirements"])
    assert sum(data["counts"].values()) == data["items"]
    assert data["rate_percent"] == round(ev.rate * 100, 2)
    assert data["conclusion"]["value"] == "基本符合" and data["conclusion"]["provisional"] is True
    assert "暂定" in data["conclusion"]["zh"] and "provisional" in data["conclusion"]["en"]
    assert [(h["unit"], h["case"]) for h in data["high_risks"]] == [("L3-CES1-01", "6.4.1.1")]
    assert data["major_hazards"] == data["high_risks"]
    assert data["report"]["generated_at"] == AS_OF.isoformat() and "1846" in data["report"]["scoring_source"]


def test_requirement_entries_carry_evidence_and_answers() -> None:
    data = report_data(_weak_password_system(), generated_at=AS_OF)
    by_unit = {r["unit"]: r for r in data["requirements"]}
    weak = by_unit["L3-CES1-01"]
    assert weak["result"] == "部分符合" and weak["clause"] == "8.1.4.1 a"
    assert weak["checks"][0]["check"] == "host.password_complexity" and "web-01" in weak["checks"][0]["reason_zh"]
    assert by_unit["L3-PSS1-01"]["answer"]["auditor"] == "李审计"
    assert by_unit["L3-PSS1-02"]["result"] == "待人工" and by_unit["L3-PSS1-02"]["answer"] is None


def test_family_breakdown_adds_up() -> None:
    ev = _weak_password_system()
    families = report_data(ev)["families"]
    assert sum(f["items"] for f in families) == len(ev.results)
    ces = next(f for f in families if f["family"] == "CES" and f["scenario"] == "general")
    assert ces["items"] == 34 and ces["counts"]["部分符合"] >= 1 and ces["rate_percent"] < 100


def test_csv_has_bilingual_headers_and_one_row_per_requirement() -> None:
    ev = _weak_password_system()
    text = to_csv(ev)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == [h for _, h in CSV_COLUMNS] and len(rows) == len(ev.results) + 1
    flat = {r["unit"]: r for r in csv_rows(ev)}
    assert flat["L3-CES1-01"]["high_risk_cases"] == "6.4.1.1" and "minlen 4 < 8" in flat["L3-CES1-01"]["reasons_en"]
    assert flat["L3-PSS1-01"]["auditor"] == "李审计" and flat["L3-PSS1-01"]["decided_by"].startswith("测评人员")


def test_overview_rows() -> None:
    weak, ok = _weak_password_system(), evaluate(good(), as_of=AS_OF)
    rows = overview_rows([weak, ok])
    assert [r["conclusion"] for r in rows] == ["基本符合", "符合"]
    assert rows[0]["high_risks"] == 1 and rows[1]["high_risks"] == 0 and rows[1]["pending"] > 0
