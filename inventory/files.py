"""Reading and writing register files (YAML or CSV) as rows that remember their line number."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECTIONS = {"departments": "department", "networks": "network", "systems": "system", "hosts": "host"}

CSV_COLUMNS: dict[str, list[str]] = {
    "department": ["code", "name", "name_en", "parent"],
    "network": ["code", "name", "zone", "department"],
    "prefix": ["cidr", "network", "purpose"],
    "system": [
        "id", "name", "department", "owner", "mlps_level",
        "grading_info_object", "grading_info_degree", "grading_service_object", "grading_service_degree",
        "data_class", "public_data_level", "hosting", "network_stack", "network_zone", "status", "last_activity",
        "depends_on",
    ],
    "host": ["name", "system", "ipv4", "ipv6", "os", "role"],
}
CSV_HEADER = ["kind", *dict.fromkeys(c for cols in CSV_COLUMNS.values() for c in cols)]
LIST_SEPARATOR = ";"
"""Separates the items of a list column in CSV (``depends_on``: ``SYS-A;SYS-B``)."""


class FileFormatError(ValueError):
    """The file as a whole cannot be read (syntax, encoding, layout)."""


@dataclass
class RawRow:
    """One record as read from a file, before validation."""

    kind: str
    line: int
    data: dict[str, Any]
    field_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, loc: str | None) -> int:
        """The line of a (dotted) field, or of the nearest enclosing field, or of the record."""
        while loc:
            if loc in self.field_lines:
                return self.field_lines[loc]
            loc = loc.rpartition(".")[0]
        return self.line


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records the line of every mapping under the key ``__line__``.

    Aliases are refused: a register file never needs them, and nested aliases can expand a few hundred
    bytes into gigabytes ("billion laughs").
    """

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        mapping["__lines__"] = {
            self.construct_object(k, deep=True): k.start_mark.line + 1 for k, _ in node.value
        }
        return mapping


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".csv":
        return "csv"
    raise FileFormatError(f"{path.name}: unknown file type '{suffix}' (expected .yaml, .yml or .csv)")


def read_rows(path: Path, fmt: str | None = None) -> list[RawRow]:
    """Read a register file into rows; raise FileFormatError when the file cannot be parsed."""
    fmt = fmt or detect_format(path)
    if path.is_dir():
        raise FileFormatError(f"{path.name} is a directory, not a register file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_yaml(text) if fmt == "yaml" else parse_csv(text)


def parse_yaml(text: str) -> list[RawRow]:
    try:
        doc = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise FileFormatError(f"YAML syntax error: {exc}") from None
    if not isinstance(doc, dict):
        raise FileFormatError("the YAML file must be a mapping with departments/networks/systems/hosts lists")
    doc.pop("__line__", None)
    doc.pop("__lines__", None)
    unknown = sorted(str(k) for k in set(doc) - set(SECTIONS))
    if unknown:
        raise FileFormatError(f"unknown top-level keys: {', '.join(unknown)}; "
                              f"expected {', '.join(SECTIONS)}")
    rows: list[RawRow] = []
    for section, kind in SECTIONS.items():
        items = doc.get(section) or []
        if not isinstance(items, list):
            raise FileFormatError(f"'{section}' must be a list")
        for item in items:
            if not isinstance(item, dict):
                raise FileFormatError(f"'{section}' holds a {type(item).__name__}, expected mappings")
            line = item["__line__"]
            prefixes = item.pop("prefixes", None) if kind == "network" else None
            rows.append(RawRow(kind, line, _without_lines(item), _field_lines(item)))
            for prefix in prefixes or []:
                if not isinstance(prefix, dict):
                    raise FileFormatError(f"line {line}: prefixes must be mappings with cidr and purpose")
                data = {**_without_lines(prefix), "network": item.get("code")}
                rows.append(RawRow("prefix", prefix["__line__"], data, _field_lines(prefix)))
    return rows


def _field_lines(mapping: dict[str, Any], prefix: str = "") -> dict[str, int]:
    lines = {f"{prefix}{k}": n for k, n in mapping.get("__lines__", {}).items() if not str(k).startswith("__")}
    for key, value in mapping.items():
        if isinstance(value, dict) and key not in ("__lines__",):
            lines.update(_field_lines(value, f"{prefix}{key}."))
    return lines


def _without_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_lines(v) for k, v in value.items() if k not in ("__line__", "__lines__")}
    if isinstance(value, list):
        return [_without_lines(v) for v in value]
    return value


def parse_csv(text: str) -> list[RawRow]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not header:
        raise FileFormatError("the CSV file is empty (no header row)")
    fixed_kind = None if "kind" in header else _kind_from_header(header)
    rows: list[RawRow] = []
    for record in reader:
        line = reader.line_num
        if not any((v or "").strip() for k, v in record.items() if k is not None) and None not in record:
            continue  # a blank row
        if None in record:
            raise FileFormatError(f"line {line}: more fields than the header has")
        kind = fixed_kind or (record.get("kind") or "").strip()
        columns = CSV_COLUMNS.get(kind)
        if columns is None:
            rows.append(RawRow(kind or "?", line, {"kind": kind}))
            continue
        data = {c: _cell(record.get(c)) for c in columns if c in record}
        extra = {k for k, v in record.items() if k not in columns and k != "kind" and _cell(v) is not None}
        data.update({k: record[k] for k in extra})
        rows.append(RawRow(kind, line, _system_row(data) if kind == "system" else data))
    return rows


def _cell(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _kind_from_header(header: list[str]) -> str:
    """The one record kind whose columns hold every header column (the narrowest if several do)."""
    columns = {c.strip() for c in header if c and c.strip()}
    fitting = [k for k, cols in CSV_COLUMNS.items() if columns <= set(cols) and set(cols[:2]) <= columns]
    if fitting:
        return min(fitting, key=lambda k: len(CSV_COLUMNS[k]))
    raise FileFormatError("the CSV header does not match one record kind; add a 'kind' column or use the columns "
                          "of one kind: " + "; ".join(f"{k}: {','.join(c)}" for k, c in CSV_COLUMNS.items()))


def _system_row(data: dict[str, Any]) -> dict[str, Any]:
    """A CSV system row in the record's shape: the grading nested, ``depends_on`` split into a list."""
    depends = data.pop("depends_on", None)
    if isinstance(depends, str):
        data["depends_on"] = [item.strip() for item in depends.split(LIST_SEPARATOR) if item.strip()]
    return _nest_grading(data)


def _nest_grading(data: dict[str, Any]) -> dict[str, Any]:
    keys = ("grading_info_object", "grading_info_degree", "grading_service_object", "grading_service_degree")
    values = [data.pop(k, None) for k in keys]
    data["grading"] = {
        "business_info": {"object": values[0], "degree": values[1]},
        "system_service": {"object": values[2], "degree": values[3]},
    }
    return data


def dump_yaml(doc: dict[str, list[dict[str, Any]]]) -> str:
    """YAML text of a register document (sections as in SECTIONS, prefixes nested in networks)."""
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)


def dump_csv(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """CSV text with a ``kind`` column and the union of all kinds' columns."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_HEADER, lineterminator="\n")
    writer.writeheader()
    for kind, data in rows:
        flat = dict(data)
        grading = flat.pop("grading", None)
        if grading:
            flat["grading_info_object"] = grading["business_info"]["object"]
            flat["grading_info_degree"] = grading["business_info"]["degree"]
            flat["grading_service_object"] = grading["system_service"]["object"]
            flat["grading_service_degree"] = grading["system_service"]["degree"]
        writer.writerow({"kind": kind, **{k: _csv_value(v) for k, v in flat.items()}})
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return LIST_SEPARATOR.join(str(v) for v in value)
    return value
