"""Data classification: schemes share the register's codes; rules suggest a class with reasons; bad rules are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inventory.vocabulary import vocabulary
from policies.classification import suggest_class
from policies.classification.schemes import SCHEMES_FILE, default_schemes, load_schemes
from policies.classification.suggest import RULES_FILE, load_rules


def test_schemes_use_the_register_codes_in_order() -> None:
    schemes = default_schemes()
    assert schemes.data_class.order == ["general", "important", "core"]
    assert set(schemes.data_class.order) == set(vocabulary().enums["data_class"].codes())
    assert schemes.public_data_level.order == ["L1", "L2", "L3", "L4"]
    assert schemes.public_data_level.highest(["L2", "L4", "L1"]) == "L4"


def test_schemes_with_foreign_codes_are_refused(tmp_path: Path) -> None:
    data = yaml.safe_load(SCHEMES_FILE.read_text(encoding="utf-8"))
    data["data_class"]["order"] = ["general", "important", "secret"]
    data["data_class"]["levels"]["secret"] = data["data_class"]["levels"].pop("core")
    path = tmp_path / "schemes.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=r"schemes\.yaml: .*data_class codes .*secret"):
        load_schemes(path)


@pytest.mark.parametrize(
    ("description", "data_class", "level", "rules"),
    [
        (
            "全市居民身份证号码与户籍信息库，含姓名、住址",
            "important",
            "L4",
            {"identity_number", "contact", "bulk_personal"},
        ),
        ("医院门诊病历及诊疗记录", "general", "L3", {"health"}),
        ("社区人脸识别门禁抓拍记录", "general", "L4", {"biometrics"}),
        ("新生儿疫苗接种登记（含监护人手机号）", "general", "L3", {"minors", "health", "contact"}),
        ("公积金缴存及个人征信查询记录", "general", "L3", {"finance"}),
        ("网约车订单行踪轨迹", "general", "L3", {"location"}),
        ("电网调度运行数据", "important", "L4", {"critical_infrastructure"}),
        ("城市地下管线高精度测绘成果", "important", "L3", {"geospatial"}),
        ("人类遗传资源样本测序数据", "important", "L4", {"genetic"}),
        ("涉密会议纪要", "core", "L4", {"national_security", "internal_office"}),
        ("2025 年国民经济统计公报（已公开）", "general", "L1", {"published"}),
        ("局机关内部通知与会议纪要", "general", "L2", {"internal_office"}),
        ("Outpatient diagnosis records with GPS location history", "general", "L3", {"health", "location"}),
        ("City-wide population register with ID card numbers", "important", "L4", {"identity_number", "bulk_personal"}),
    ],
)
def test_suggestions(description: str, data_class: str, level: str, rules: set[str]) -> None:
    s = suggest_class(description)
    assert (s.data_class, s.public_data_level) == (data_class, level)
    assert {r.rule for r in s.reasons} == rules
    assert not s.defaulted and all(r.matched and r.source for r in s.reasons)
    assert s.data_class_zh == vocabulary().label("data_class", data_class)


def test_scale_alone_is_not_personal_data() -> None:
    s = suggest_class("全市公园绿地名录")  # "全市" without personal data: bulk rule does not count
    assert s.defaulted and (s.data_class, s.public_data_level) == ("general", "L2")
    assert [r.rule for r in s.reasons] == ["default"]


def test_anonymisation_caps_general_data_only() -> None:
    assert suggest_class("匿名化的门诊病历统计").public_data_level == "L2"
    bulk = suggest_class("匿名化的全市人口库身份证号码")
    assert (bulk.data_class, bulk.public_data_level) == ("important", "L4")  # important data is not capped


def test_reasons_name_the_matched_terms() -> None:
    s = suggest_class("学生学籍表：姓名、身份证号、家庭住址")
    matched = {r.rule: r.matched for r in s.reasons}
    assert "身份证" in matched["identity_number"] and "学生学籍" in matched["minors"]
    assert s.as_dict()["reasons"][0]["zh"]


def test_empty_description_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        suggest_class("   ")


def _rules_with(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_bad_rules_are_named(tmp_path: Path) -> None:
    path = _rules_with(tmp_path, lambda d: d["rules"][1].update(public_data_level="L9"))
    with pytest.raises(ValueError, match=r"rules\.yaml: rule biometrics: public_data_level 'L9'"):
        load_rules(path)
    path = _rules_with(tmp_path, lambda d: d["rules"][2].update(patterns=["(unclosed"]))
    with pytest.raises(ValueError, match=r"rules\.2 \(genetic\)\.patterns"):
        load_rules(path)
    path = _rules_with(tmp_path, lambda d: d["rules"][9].update(requires_tag="nobody"))
    with pytest.raises(ValueError, match="requires_tag 'nobody'"):
        load_rules(path)
    path = _rules_with(tmp_path, lambda d: d["rules"][0].update(keywords=[], patterns=[]))
    with pytest.raises(ValueError, match=r"identity_number.*keywords or patterns"):
        load_rules(path)
