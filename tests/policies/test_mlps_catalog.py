"""The 等保 catalog: schema, item counts and test-unit ids against the reference, high-risk cases, load errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from policies.mlps.catalog import CATALOG_DIR, CatalogError, load_catalog
from policies.mlps.checks import REGISTRY

# Transcribed from ../shared/reference/mlps-structure.md, tables 1, 2, 3a and 3b (sources S1, S2):
# (level, scenario, clause, family code, control point, items at this level, first test unit, last test unit).
REFERENCE = [
    (3, "general", "8.1.1.1", "PES", "物理位置选择", 2, "L3-PES1-01", "L3-PES1-02"),
    (3, "general", "8.1.1.2", "PES", "物理访问控制", 1, "L3-PES1-03", "L3-PES1-03"),
    (3, "general", "8.1.1.3", "PES", "防盗窃和防破坏", 3, "L3-PES1-04", "L3-PES1-06"),
    (3, "general", "8.1.1.4", "PES", "防雷击", 2, "L3-PES1-07", "L3-PES1-08"),
    (3, "general", "8.1.1.5", "PES", "防火", 3, "L3-PES1-09", "L3-PES1-11"),
    (3, "general", "8.1.1.6", "PES", "防水和防潮", 3, "L3-PES1-12", "L3-PES1-14"),
    (3, "general", "8.1.1.7", "PES", "防静电", 2, "L3-PES1-15", "L3-PES1-16"),
    (3, "general", "8.1.1.8", "PES", "温湿度控制", 1, "L3-PES1-17", "L3-PES1-17"),
    (3, "general", "8.1.1.9", "PES", "电力供应", 3, "L3-PES1-18", "L3-PES1-20"),
    (3, "general", "8.1.1.10", "PES", "电磁防护", 2, "L3-PES1-21", "L3-PES1-22"),
    (3, "general", "8.1.2.1", "CNS", "网络架构", 5, "L3-CNS1-01", "L3-CNS1-05"),
    (3, "general", "8.1.2.2", "CNS", "通信传输", 2, "L3-CNS1-06", "L3-CNS1-07"),
    (3, "general", "8.1.2.3", "CNS", "可信验证", 1, "L3-CNS1-08", "L3-CNS1-08"),
    (3, "general", "8.1.3.1", "ABS", "边界防护", 4, "L3-ABS1-01", "L3-ABS1-04"),
    (3, "general", "8.1.3.2", "ABS", "访问控制", 5, "L3-ABS1-05", "L3-ABS1-09"),
    (3, "general", "8.1.3.3", "ABS", "入侵防范", 4, "L3-ABS1-10", "L3-ABS1-13"),
    (3, "general", "8.1.3.4", "ABS", "恶意代码和垃圾邮件防范", 2, "L3-ABS1-14", "L3-ABS1-15"),
    (3, "general", "8.1.3.5", "ABS", "安全审计", 4, "L3-ABS1-16", "L3-ABS1-19"),
    (3, "general", "8.1.3.6", "ABS", "可信验证", 1, "L3-ABS1-20", "L3-ABS1-20"),
    (3, "general", "8.1.4.1", "CES", "身份鉴别", 4, "L3-CES1-01", "L3-CES1-04"),
    (3, "general", "8.1.4.2", "CES", "访问控制", 7, "L3-CES1-05", "L3-CES1-11"),
    (3, "general", "8.1.4.3", "CES", "安全审计", 4, "L3-CES1-12", "L3-CES1-15"),
    (3, "general", "8.1.4.4", "CES", "入侵防范", 6, "L3-CES1-17", "L3-CES1-22"),
    (3, "general", "8.1.4.5", "CES", "恶意代码防范", 1, "L3-CES1-23", "L3-CES1-23"),
    (3, "general", "8.1.4.6", "CES", "可信验证", 1, "L3-CES1-24", "L3-CES1-24"),
    (3, "general", "8.1.4.7", "CES", "数据完整性", 2, "L3-CES1-25", "L3-CES1-26"),
    (3, "general", "8.1.4.8", "CES", "数据保密性", 2, "L3-CES1-27", "L3-CES1-28"),
    (3, "general", "8.1.4.9", "CES", "数据备份恢复", 3, "L3-CES1-29", "L3-CES1-31"),
    (3, "general", "8.1.4.10", "CES", "剩余信息保护", 2, "L3-CES1-32", "L3-CES1-33"),
    (3, "general", "8.1.4.11", "CES", "个人信息保护", 2, "L3-CES1-34", "L3-CES1-35"),
    (3, "general", "8.1.5.1", "SMC", "系统管理", 2, "L3-SMC1-01", "L3-SMC1-02"),
    (3, "general", "8.1.5.2", "SMC", "审计管理", 2, "L3-SMC1-03", "L3-SMC1-04"),
    (3, "general", "8.1.5.3", "SMC", "安全管理", 2, "L3-SMC1-05", "L3-SMC1-06"),
    (3, "general", "8.1.5.4", "SMC", "集中管控", 6, "L3-SMC1-07", "L3-SMC1-12"),
    (3, "general", "8.1.6.1", "PSS", "安全策略", 1, "L3-PSS1-01", "L3-PSS1-01"),
    (3, "general", "8.1.6.2", "PSS", "管理制度", 3, "L3-PSS1-02", "L3-PSS1-04"),
    (3, "general", "8.1.6.3", "PSS", "制定和发布", 2, "L3-PSS1-05", "L3-PSS1-06"),
    (3, "general", "8.1.6.4", "PSS", "评审和修订", 1, "L3-PSS1-07", "L3-PSS1-07"),
    (3, "general", "8.1.7.1", "ORS", "岗位设置", 3, "L3-ORS1-01", "L3-ORS1-03"),
    (3, "general", "8.1.7.2", "ORS", "人员配备", 2, "L3-ORS1-04", "L3-ORS1-05"),
    (3, "general", "8.1.7.3", "ORS", "授权和审批", 3, "L3-ORS1-06", "L3-ORS1-08"),
    (3, "general", "8.1.7.4", "ORS", "沟通和合作", 3, "L3-ORS1-09", "L3-ORS1-11"),
    (3, "general", "8.1.7.5", "ORS", "审核和检查", 3, "L3-ORS1-12", "L3-ORS1-14"),
    (3, "general", "8.1.8.1", "HRS", "人员录用", 3, "L3-HRS1-01", "L3-HRS1-03"),
    (3, "general", "8.1.8.2", "HRS", "人员离岗", 2, "L3-HRS1-04", "L3-HRS1-05"),
    (3, "general", "8.1.8.3", "HRS", "安全意识教育和培训", 3, "L3-HRS1-06", "L3-HRS1-08"),
    (3, "general", "8.1.8.4", "HRS", "外部人员访问管理", 4, "L3-HRS1-09", "L3-HRS1-12"),
    (3, "general", "8.1.9.1", "CMS", "定级和备案", 4, "L3-CMS1-01", "L3-CMS1-04"),
    (3, "general", "8.1.9.2", "CMS", "安全方案设计", 3, "L3-CMS1-05", "L3-CMS1-07"),
    (3, "general", "8.1.9.3", "CMS", "产品采购和使用", 3, "L3-CMS1-08", "L3-CMS1-10"),
    (3, "general", "8.1.9.4", "CMS", "自行软件开发", 7, "L3-CMS1-11", "L3-CMS1-17"),
    (3, "general", "8.1.9.5", "CMS", "外包软件开发", 3, "L3-CMS1-18", "L3-CMS1-20"),
    (3, "general", "8.1.9.6", "CMS", "工程实施", 3, "L3-CMS1-21", "L3-CMS1-23"),
    (3, "general", "8.1.9.7", "CMS", "测试验收", 2, "L3-CMS1-24", "L3-CMS1-25"),
    (3, "general", "8.1.9.8", "CMS", "系统交付", 3, "L3-CMS1-26", "L3-CMS1-28"),
    (3, "general", "8.1.9.9", "CMS", "等级测评", 3, "L3-CMS1-29", "L3-CMS1-31"),
    (3, "general", "8.1.9.10", "CMS", "服务供应商选择", 3, "L3-CMS1-32", "L3-CMS1-34"),
    (3, "general", "8.1.10.1", "MMS", "环境管理", 3, "L3-MMS1-01", "L3-MMS1-03"),
    (3, "general", "8.1.10.2", "MMS", "资产管理", 3, "L3-MMS1-04", "L3-MMS1-06"),
    (3, "general", "8.1.10.3", "MMS", "介质管理", 2, "L3-MMS1-07", "L3-MMS1-08"),
    (3, "general", "8.1.10.4", "MMS", "设备维护管理", 4, "L3-MMS1-09", "L3-MMS1-12"),
    (3, "general", "8.1.10.5", "MMS", "漏洞和风险管理", 2, "L3-MMS1-13", "L3-MMS1-14"),
    (3, "general", "8.1.10.6", "MMS", "网络和系统安全管理", 10, "L3-MMS1-15", "L3-MMS1-24"),
    (3, "general", "8.1.10.7", "MMS", "恶意代码防范管理", 2, "L3-MMS1-25", "L3-MMS1-26"),
    (3, "general", "8.1.10.8", "MMS", "配置管理", 2, "L3-MMS1-27", "L3-MMS1-28"),
    (3, "general", "8.1.10.9", "MMS", "密码管理", 2, "L3-MMS1-29", "L3-MMS1-30"),
    (3, "general", "8.1.10.10", "MMS", "变更管理", 3, "L3-MMS1-31", "L3-MMS1-33"),
    (3, "general", "8.1.10.11", "MMS", "备份与恢复管理", 3, "L3-MMS1-34", "L3-MMS1-36"),
    (3, "general", "8.1.10.12", "MMS", "安全事件处置", 4, "L3-MMS1-37", "L3-MMS1-40"),
    (3, "general", "8.1.10.13", "MMS", "应急预案管理", 4, "L3-MMS1-41", "L3-MMS1-44"),
    (3, "general", "8.1.10.14", "MMS", "外包运维管理", 4, "L3-MMS1-45", "L3-MMS1-48"),
    (3, "cloud", "8.2.1.1", "PES", "基础设施位置", 1, "L3-PES2-01", "L3-PES2-01"),
    (3, "cloud", "8.2.2.1", "CNS", "网络架构", 5, "L3-CNS2-01", "L3-CNS2-05"),
    (3, "cloud", "8.2.3.1", "ABS", "访问控制", 2, "L3-ABS2-01", "L3-ABS2-02"),
    (3, "cloud", "8.2.3.2", "ABS", "入侵防范", 4, "L3-ABS2-03", "L3-ABS2-06"),
    (3, "cloud", "8.2.3.3", "ABS", "安全审计", 2, "L3-ABS2-07", "L3-ABS2-08"),
    (3, "cloud", "8.2.4.1", "CES", "身份鉴别", 1, "L3-CES2-01", "L3-CES2-01"),
    (3, "cloud", "8.2.4.2", "CES", "访问控制", 2, "L3-CES2-02", "L3-CES2-03"),
    (3, "cloud", "8.2.4.3", "CES", "入侵防范", 3, "L3-CES2-04", "L3-CES2-06"),
    (3, "cloud", "8.2.4.4", "CES", "镜像和快照保护", 3, "L3-CES2-07", "L3-CES2-09"),
    (3, "cloud", "8.2.4.5", "CES", "数据完整性和保密性", 4, "L3-CES2-10", "L3-CES2-13"),
    (3, "cloud", "8.2.4.6", "CES", "数据备份恢复", 4, "L3-CES2-14", "L3-CES2-17"),
    (3, "cloud", "8.2.4.7", "CES", "剩余信息保护", 2, "L3-CES2-18", "L3-CES2-19"),
    (3, "cloud", "8.2.5.1", "SMC", "集中管控", 4, "L3-SMC2-01", "L3-SMC2-04"),
    (3, "cloud", "8.2.6.1", "CMS", "云服务商选择", 5, "L3-CMS2-01", "L3-CMS2-05"),
    (3, "cloud", "8.2.6.2", "CMS", "供应链管理", 3, "L3-CMS2-07", "L3-CMS2-09"),
    (3, "cloud", "8.2.7.1", "MMS", "云计算环境管理", 1, "L3-MMS2-01", "L3-MMS2-01"),
    (2, "general", "7.1.1.1", "PES", "物理位置选择", 2, "L2-PES1-01", "L2-PES1-02"),
    (2, "general", "7.1.1.2", "PES", "物理访问控制", 1, "L2-PES1-03", "L2-PES1-03"),
    (2, "general", "7.1.1.3", "PES", "防盗窃和防破坏", 2, "L2-PES1-04", "L2-PES1-05"),
    (2, "general", "7.1.1.4", "PES", "防雷击", 1, "L2-PES1-06", "L2-PES1-06"),
    (2, "general", "7.1.1.5", "PES", "防火", 2, "L2-PES1-07", "L2-PES1-08"),
    (2, "general", "7.1.1.6", "PES", "防水和防潮", 2, "L2-PES1-09", "L2-PES1-10"),
    (2, "general", "7.1.1.7", "PES", "防静电", 1, "L2-PES1-11", "L2-PES1-11"),
    (2, "general", "7.1.1.8", "PES", "温湿度控制", 1, "L2-PES1-12", "L2-PES1-12"),
    (2, "general", "7.1.1.9", "PES", "电力供应", 2, "L2-PES1-13", "L2-PES1-14"),
    (2, "general", "7.1.1.10", "PES", "电磁防护", 1, "L2-PES1-15", "L2-PES1-15"),
    (2, "general", "7.1.2.1", "CNS", "网络架构", 2, "L2-CNS1-01", "L2-CNS1-02"),
    (2, "general", "7.1.2.2", "CNS", "通信传输", 1, "L2-CNS1-03", "L2-CNS1-03"),
    (2, "general", "7.1.2.3", "CNS", "可信验证", 1, "L2-CNS1-04", "L2-CNS1-04"),
    (2, "general", "7.1.3.1", "ABS", "边界防护", 1, "L2-ABS1-01", "L2-ABS1-01"),
    (2, "general", "7.1.3.2", "ABS", "访问控制", 4, "L2-ABS1-02", "L2-ABS1-05"),
    (2, "general", "7.1.3.3", "ABS", "入侵防范", 1, "L2-ABS1-06", "L2-ABS1-06"),
    (2, "general", "7.1.3.4", "ABS", "恶意代码防范", 1, "L2-ABS1-07", "L2-ABS1-07"),
    (2, "general", "7.1.3.5", "ABS", "安全审计", 3, "L2-ABS1-08", "L2-ABS1-10"),
    (2, "general", "7.1.3.6", "ABS", "可信验证", 1, "L2-ABS1-11", "L2-ABS1-11"),
    (2, "general", "7.1.4.1", "CES", "身份鉴别", 3, "L2-CES1-01", "L2-CES1-03"),
    (2, "general", "7.1.4.2", "CES", "访问控制", 4, "L2-CES1-04", "L2-CES1-07"),
    (2, "general", "7.1.4.3", "CES", "安全审计", 3, "L2-CES1-08", "L2-CES1-10"),
    (2, "general", "7.1.4.4", "CES", "入侵防范", 5, "L2-CES1-11", "L2-CES1-15"),
    (2, "general", "7.1.4.5", "CES", "恶意代码防范", 1, "L2-CES1-16", "L2-CES1-16"),
    (2, "general", "7.1.4.6", "CES", "可信验证", 1, "L2-CES1-17", "L2-CES1-17"),
    (2, "general", "7.1.4.7", "CES", "数据完整性", 1, "L2-CES1-18", "L2-CES1-18"),
    (2, "general", "7.1.4.8", "CES", "数据备份恢复", 2, "L2-CES1-19", "L2-CES1-20"),
    (2, "general", "7.1.4.9", "CES", "剩余信息保护", 1, "L2-CES1-21", "L2-CES1-21"),
    (2, "general", "7.1.4.10", "CES", "个人信息保护", 2, "L2-CES1-22", "L2-CES1-23"),
    (2, "general", "7.1.5.1", "SMC", "系统管理", 2, "L2-SMC1-01", "L2-SMC1-02"),
    (2, "general", "7.1.5.2", "SMC", "审计管理", 2, "L2-SMC1-03", "L2-SMC1-04"),
    (2, "general", "7.1.6.1", "PSS", "安全策略", 1, "L2-PSS1-01", "L2-PSS1-01"),
    (2, "general", "7.1.6.2", "PSS", "管理制度", 2, "L2-PSS1-02", "L2-PSS1-03"),
    (2, "general", "7.1.6.3", "PSS", "制定和发布", 2, "L2-PSS1-04", "L2-PSS1-05"),
    (2, "general", "7.1.6.4", "PSS", "评审和修订", 1, "L2-PSS1-06", "L2-PSS1-06"),
    (2, "general", "7.1.7.1", "ORS", "岗位设置", 2, "L2-ORS1-01", "L2-ORS1-02"),
    (2, "general", "7.1.7.2", "ORS", "人员配备", 1, "L2-ORS1-03", "L2-ORS1-03"),
    (2, "general", "7.1.7.3", "ORS", "授权和审批", 2, "L2-ORS1-04", "L2-ORS1-05"),
    (2, "general", "7.1.7.4", "ORS", "沟通和合作", 3, "L2-ORS1-06", "L2-ORS1-08"),
    (2, "general", "7.1.7.5", "ORS", "审核和检查", 1, "L2-ORS1-09", "L2-ORS1-09"),
    (2, "general", "7.1.8.1", "HRS", "人员录用", 2, "L2-HRS1-01", "L2-HRS1-02"),
    (2, "general", "7.1.8.2", "HRS", "人员离岗", 1, "L2-HRS1-03", "L2-HRS1-03"),
    (2, "general", "7.1.8.3", "HRS", "安全意识教育和培训", 1, "L2-HRS1-04", "L2-HRS1-04"),
    (2, "general", "7.1.8.4", "HRS", "外部人员访问管理", 3, "L2-HRS1-05", "L2-HRS1-07"),
    (2, "general", "7.1.9.1", "CMS", "定级和备案", 4, "L2-CMS1-01", "L2-CMS1-04"),
    (2, "general", "7.1.9.2", "CMS", "安全方案设计", 3, "L2-CMS1-05", "L2-CMS1-07"),
    (2, "general", "7.1.9.3", "CMS", "产品采购和使用", 2, "L2-CMS1-08", "L2-CMS1-09"),
    (2, "general", "7.1.9.4", "CMS", "自行软件开发", 2, "L2-CMS1-10", "L2-CMS1-11"),
    (2, "general", "7.1.9.5", "CMS", "外包软件开发", 2, "L2-CMS1-12", "L2-CMS1-13"),
    (2, "general", "7.1.9.6", "CMS", "工程实施", 2, "L2-CMS1-14", "L2-CMS1-15"),
    (2, "general", "7.1.9.7", "CMS", "测试验收", 2, "L2-CMS1-16", "L2-CMS1-17"),
    (2, "general", "7.1.9.8", "CMS", "系统交付", 3, "L2-CMS1-18", "L2-CMS1-20"),
    (2, "general", "7.1.9.9", "CMS", "等级测评", 3, "L2-CMS1-21", "L2-CMS1-23"),
    (2, "general", "7.1.9.10", "CMS", "服务供应商选择", 2, "L2-CMS1-24", "L2-CMS1-25"),
    (2, "general", "7.1.10.1", "MMS", "环境管理", 3, "L2-MMS1-01", "L2-MMS1-03"),
    (2, "general", "7.1.10.2", "MMS", "资产管理", 1, "L2-MMS1-04", "L2-MMS1-04"),
    (2, "general", "7.1.10.3", "MMS", "介质管理", 2, "L2-MMS1-05", "L2-MMS1-06"),
    (2, "general", "7.1.10.4", "MMS", "设备维护管理", 2, "L2-MMS1-07", "L2-MMS1-08"),
    (2, "general", "7.1.10.5", "MMS", "漏洞和风险管理", 1, "L2-MMS1-09", "L2-MMS1-09"),
    (2, "general", "7.1.10.6", "MMS", "网络和系统安全管理", 5, "L2-MMS1-10", "L2-MMS1-14"),
    (2, "general", "7.1.10.7", "MMS", "恶意代码防范管理", 3, "L2-MMS1-15", "L2-MMS1-17"),
    (2, "general", "7.1.10.8", "MMS", "配置管理", 1, "L2-MMS1-18", "L2-MMS1-18"),
    (2, "general", "7.1.10.9", "MMS", "密码管理", 2, "L2-MMS1-19", "L2-MMS1-20"),
    (2, "general", "7.1.10.10", "MMS", "变更管理", 1, "L2-MMS1-21", "L2-MMS1-21"),
    (2, "general", "7.1.10.11", "MMS", "备份与恢复管理", 3, "L2-MMS1-22", "L2-MMS1-24"),
    (2, "general", "7.1.10.12", "MMS", "安全事件处置", 3, "L2-MMS1-25", "L2-MMS1-27"),
    (2, "general", "7.1.10.13", "MMS", "应急预案管理", 2, "L2-MMS1-28", "L2-MMS1-29"),
    (2, "general", "7.1.10.14", "MMS", "外包运维管理", 2, "L2-MMS1-30", "L2-MMS1-31"),
    (2, "cloud", "7.2.1.1", "PES", "基础设施位置", 1, "L2-PES2-01", "L2-PES2-01"),
    (2, "cloud", "7.2.2.1", "CNS", "网络架构", 3, "L2-CNS2-01", "L2-CNS2-03"),
    (2, "cloud", "7.2.3.1", "ABS", "访问控制", 2, "L2-ABS2-01", "L2-ABS2-02"),
    (2, "cloud", "7.2.3.2", "ABS", "入侵防范", 3, "L2-ABS2-03", "L2-ABS2-05"),
    (2, "cloud", "7.2.3.3", "ABS", "安全审计", 2, "L2-ABS2-06", "L2-ABS2-07"),
    (2, "cloud", "7.2.4.1", "CES", "访问控制", 2, "L2-CES2-01", "L2-CES2-02"),
    (2, "cloud", "7.2.4.2", "CES", "镜像和快照保护", 2, "L2-CES2-03", "L2-CES2-04"),
    (2, "cloud", "7.2.4.3", "CES", "数据完整性和保密性", 3, "L2-CES2-05", "L2-CES2-07"),
    (2, "cloud", "7.2.4.4", "CES", "数据备份恢复", 2, "L2-CES2-08", "L2-CES2-09"),
    (2, "cloud", "7.2.4.5", "CES", "剩余信息保护", 2, "L2-CES2-10", "L2-CES2-11"),
    (2, "cloud", "7.2.5.1", "CMS", "云服务商选择", 4, "L2-CMS2-01", "L2-CMS2-04"),
    (2, "cloud", "7.2.5.2", "CMS", "供应链管理", 2, "L2-CMS2-05", "L2-CMS2-06"),
    (2, "cloud", "7.2.6.1", "MMS", "云计算环境管理", 1, "L2-MMS2-01", "L2-MMS2-01"),
]

# Same file, section 5: high-risk guide case → (L3 clause, control point, lowest level, scope) (source S3).
HIGH_RISK_CASES = {
    "6.1.1.1": ("8.1.1.2", "物理访问控制", 3, "general"),
    "6.1.2.1": ("8.1.1.5", "防火", 3, "general"),
    "6.1.3.1": ("8.1.1.9", "电力供应", 3, "business_continuity"),
    "6.1.3.2": ("8.1.1.9", "电力供应", 4, "business_continuity"),
    "6.2.1.1": ("8.1.2.1", "网络架构", 3, "business_continuity"),
    "6.2.1.2": ("8.1.2.1", "网络架构", 2, "general"),
    "6.2.1.3": ("8.1.2.1", "网络架构", 3, "business_continuity"),
    "6.2.2.1": ("8.1.2.2", "通信传输", 3, "general"),
    "6.3.1.1": ("8.1.3.1", "边界防护", 2, "general"),
    "6.3.1.2": ("8.1.3.1", "边界防护", 3, "general"),
    "6.3.2.1": ("8.1.3.2", "访问控制", 2, "general"),
    "6.3.3.1": ("8.1.3.3", "入侵防范", 2, "general"),
    "6.3.3.2": ("8.1.3.3", "入侵防范", 3, "general"),
    "6.3.3.3": ("8.1.3.3", "入侵防范", 3, "critical_industry"),
    "6.4.1.1": ("8.1.4.1", "身份鉴别", 2, "general"),
    "6.4.1.2": ("8.1.4.1", "身份鉴别", 2, "general"),
    "6.4.1.3": ("8.1.4.1", "身份鉴别", 3, "general"),
    "6.4.2.1": ("8.1.4.2", "访问控制", 2, "general"),
    "6.4.2.2": ("8.1.4.2", "访问控制", 3, "general"),
    "6.4.3.1": ("8.1.4.4", "入侵防范", 2, "general"),
    "6.4.3.2": ("8.1.4.4", "入侵防范", 2, "general"),
    "6.4.3.3": ("8.1.4.4", "入侵防范", 2, "general"),
    "6.4.4.1": ("8.1.4.5", "恶意代码防范", 2, "general"),
    "6.4.5.1": ("8.1.4.8", "数据保密性", 3, "general"),
    "6.4.5.2": ("8.1.4.8", "数据保密性", 3, "general"),
    "6.4.6.1": ("8.1.4.9", "数据备份恢复", 3, "general"),
    "6.4.6.2": ("8.1.4.9", "数据备份恢复", 3, "business_continuity"),
    "6.4.6.3": ("8.1.4.9", "数据备份恢复", 4, "business_continuity"),
    "6.4.7.1": ("8.1.4.11", "个人信息保护", 2, "general"),
    "6.4.7.2": ("8.1.4.11", "个人信息保护", 2, "general"),
    "6.5.1.1": ("8.1.5.4", "集中管控", 3, "general"),
    "6.5.1.2": ("8.1.5.4", "集中管控", 3, "general"),
    "6.6.1.1": ("8.1.6.2", "管理制度", 3, "general"),
    "6.7.1.1": ("8.1.7.1", "岗位设置", 3, "general"),
    "6.8.1.1": ("8.1.8.4", "外部人员访问管理", 2, "general"),
    "6.9.1.1": ("8.1.9.3", "产品采购和使用", 2, "general"),
    "6.9.2.1": ("8.1.9.5", "外包软件开发", 3, "general"),
    "6.9.3.1": ("8.1.9.7", "测试验收", 3, "general"),
    "6.9.4.1": ("8.1.9.9", "等级测评", 3, "general"),
    "6.9.4.2": ("8.1.9.9", "等级测评", 3, "general"),
    "6.10.1.1": ("8.1.10.13", "应急预案管理", 2, "general"),
    "6.10.1.2": ("8.1.10.13", "应急预案管理", 3, "general"),
    "7.1.1.1": ("8.2.1.1", "物理位置选择", 2, "cloud_platform"),
    "7.2.1.1": ("8.2.2.1", "网络架构", 2, "cloud_platform"),
    "7.2.1.2": ("8.2.2.1", "网络架构", 2, "cloud_platform"),
    "7.2.1.3": ("8.2.2.1", "网络架构", 4, "cloud_platform"),
    "7.2.1.4": ("8.2.2.1", "网络架构", 2, "cloud_platform"),
    "7.3.1.1": ("8.2.3.1", "访问控制", 2, "cloud_any"),
    "7.3.2.1": ("8.2.3.2", "入侵防范", 3, "cloud_platform"),
    "7.4.1.1": ("8.2.4.4", "镜像和快照保护", 3, "cloud_platform"),
    "7.4.2.1": ("8.2.4.5", "数据完整性和保密性", 2, "cloud_platform"),
    "7.4.3.1": ("8.2.4.6", "数据备份恢复", 2, "cloud_customer"),
    "7.4.3.2": ("8.2.4.6", "数据备份恢复", 2, "cloud_platform"),
    "7.4.4.1": ("8.2.4.7", "剩余信息保护", 2, "cloud_platform"),
    "7.5.1.1": ("8.2.5.1", "集中管控", 3, "cloud_platform"),
    "7.6.1.1": ("8.2.6.1", "云服务商选择", 2, "cloud_customer"),
    "7.6.2.1": ("8.2.6.2", "供应链管理", 3, "cloud_platform"),
    "7.7.1.1": ("8.2.7.1", "云计算环境管理", 2, "cloud_platform"),
}
L4_ONLY = {case for case, (_, _, level, _) in HIGH_RISK_CASES.items() if level == 4}


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_catalog(CATALOG_DIR, known_checks=REGISTRY.keys())


def test_reference_table_is_complete() -> None:
    assert len(REFERENCE) == 168  # 71 + 16 control points at level 3, 68 + 13 at level 2
    totals: dict[tuple[int, str], int] = {}
    for level, scenario, *_, count, _first, _last in REFERENCE:
        totals[(level, scenario)] = totals.get((level, scenario), 0) + count
    assert totals == {(3, "general"): 211, (3, "cloud"): 46, (2, "general"): 135, (2, "cloud"): 29}


@pytest.mark.parametrize(
    ("level", "scenario", "clause", "family", "control_point", "count", "first", "last"),
    REFERENCE,
    ids=[f"L{r[0]}-{r[2]}" for r in REFERENCE],
)
def test_control_point_matches_reference(
    catalog, level, scenario, clause, family, control_point, count, first, last
) -> None:  # type: ignore[no-untyped-def]
    reqs = [r for r in catalog.requirements[level] if r.clause == clause]
    assert len(reqs) == count
    assert {(r.family, r.scenario, r.control_point) for r in reqs} == {(family, scenario, control_point)}
    assert (reqs[0].unit, reqs[-1].unit) == (first, last)
    letters = [r.letter for r in reqs]
    assert letters == ([""] if count == 1 else [chr(ord("a") + i) for i in range(count)])


def test_catalog_has_no_control_point_outside_the_reference(catalog) -> None:  # type: ignore[no-untyped-def]
    known = {(row[0], row[2]) for row in REFERENCE}
    assert {(r.level, r.clause) for level in (2, 3) for r in catalog.requirements[level]} == known


def test_totals_per_level(catalog) -> None:  # type: ignore[no-untyped-def]
    assert len(catalog.for_system(3, None)) == 211
    assert len(catalog.for_system(2, None)) == 135
    assert catalog.count(3, "cloud") == 46 and catalog.count(2, "cloud") == 29
    # the missing unit ids noted in the reference
    units = {r.unit for reqs in catalog.requirements.values() for r in reqs}
    assert "L3-CES1-16" not in units and "L3-CMS2-06" not in units
    assert {"L3-CES1-15", "L3-CES1-17", "L3-CMS2-05", "L3-CMS2-07"} <= units


def test_cloud_extension_selection_by_role(catalog) -> None:  # type: ignore[no-untyped-def]
    customer = {r.unit for r in catalog.for_system(3, "customer")}
    platform = {r.unit for r in catalog.for_system(3, "platform")}
    assert "L3-PES2-01" in customer and "L3-PES2-01" in platform
    assert "L3-CNS2-04" in platform and "L3-CNS2-04" not in customer  # tenants setting their own policy: platform side
    assert "L3-CES2-14" in customer and "L3-CES2-14" not in platform  # local copy of backups: customer side
    assert not any(r.scenario == "cloud" for r in catalog.for_system(3, None))


def test_every_linked_check_is_registered_and_every_check_is_used(catalog) -> None:  # type: ignore[no-untyped-def]
    assert catalog.check_ids() == set(REGISTRY)


def test_high_risk_cases_match_the_guide(catalog) -> None:  # type: ignore[no-untyped-def]
    mapped: set[str] = set()
    for level in (2, 3):
        for req in catalog.requirements[level]:
            for hr in req.high_risk:
                assert hr.case in HIGH_RISK_CASES, f"{req.unit}: unknown case {hr.case}"
                l3_clause, control_point, lowest, scope = HIGH_RISK_CASES[hr.case]
                assert req.control_point == control_point or req.scenario == "cloud"
                assert hr.from_level >= lowest and hr.scope == scope, (req.unit, hr.case)
                if req.level == 3:
                    assert req.clause == l3_clause, (req.unit, hr.case)
                mapped.add(hr.case)
    assert mapped == set(HIGH_RISK_CASES) - L4_ONLY


def test_reference_examples_are_flagged(catalog) -> None:  # type: ignore[no-untyped-def]
    """The six worked examples of the reference's high-risk section."""
    expect = {
        "L3-CES1-01": "6.4.1.1",
        "L2-CES1-01": "6.4.1.1",
        "L3-CES1-21": "6.4.3.2",
        "L3-ABS1-10": "6.3.3.1",
        "L3-CES1-28": "6.4.5.2",
        "L3-CMS1-29": "6.9.4.1",
        "L3-PES2-01": "7.1.1.1",
    }
    for unit, case in expect.items():
        assert case in {hr.case for hr in catalog.by_unit(unit).high_risk}, unit


def test_summaries_are_bilingual_and_not_empty(catalog) -> None:  # type: ignore[no-untyped-def]
    for req in catalog.requirements[3]:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in req.summary.zh), req.unit
        assert req.summary.en.isascii(), req.unit


# --- load errors -------------------------------------------------------------------------------------------------


def _copy_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    for path in CATALOG_DIR.rglob("*.yaml"):
        target = root / path.relative_to(CATALOG_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return root


def _edit(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    header = "".join(
        line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if line.startswith("#")
    )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_error_names_file_item_and_field(tmp_path: Path) -> None:
    root = _copy_catalog(tmp_path)
    _edit(root / "general" / "ces.yaml", lambda d: d["control_points"][0]["items"][1].update(kind="automatic"))
    with pytest.raises(CatalogError) as err:
        load_catalog(root)
    text = str(err.value)
    assert "general/ces.yaml" in text and "身份鉴别" in text and "CES1.authentication.2" in text and "kind" in text


def test_error_on_unknown_check(tmp_path: Path) -> None:
    root = _copy_catalog(tmp_path)
    _edit(
        root / "general" / "ces.yaml",
        lambda d: d["control_points"][0]["items"][0].update(checks=["host.no_such_check"]),
    )
    with pytest.raises(CatalogError, match=r"CES1\.authentication\.1: checks: unknown check\(s\) host\.no_such_check"):
        load_catalog(root, known_checks=REGISTRY.keys())


def test_error_on_wrong_letters_and_duplicate_unit(tmp_path: Path) -> None:
    root = _copy_catalog(tmp_path)
    _edit(root / "general" / "pes.yaml", lambda d: d["control_points"][0]["items"][1]["refs"][3].update(letter="c"))
    with pytest.raises(CatalogError, match=r"(?s)pes\.yaml.*letters"):
        load_catalog(root)
    root = _copy_catalog(tmp_path / "again")
    _edit(
        root / "general" / "pes.yaml", lambda d: d["control_points"][1]["items"][1]["refs"][3].update(unit="L3-PES1-02")
    )
    with pytest.raises(CatalogError, match=r"not strictly increasing|already used"):
        load_catalog(root)


def test_error_on_manual_item_with_checks_and_bad_yaml(tmp_path: Path) -> None:
    root = _copy_catalog(tmp_path)
    _edit(root / "general" / "pss.yaml", lambda d: d["control_points"][0]["items"][0].update(checks=["soc.alert_sla"]))
    with pytest.raises(CatalogError, match=r"(?s)pss\.yaml.*PSS1\.policy\.1.*manual"):
        load_catalog(root)
    (root / "general" / "pss.yaml").write_text("family: [unclosed", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"pss\.yaml: not valid YAML"):
        load_catalog(root)


def test_unknown_level_is_refused(catalog) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CatalogError, match="level 4"):
        catalog.for_system(4, None)
