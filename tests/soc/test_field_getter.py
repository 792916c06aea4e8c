"""Field paths in events (compiler.FieldGetter): nested objects, flat dotted keys, lists of objects, any mapping."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from soc.detect.compiler import MISSING, FieldGetter, field_getter

CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("a", {"a": 1}, 1),
    ("a", {}, MISSING),
    ("a.b", {"a": {"b": 1}}, 1),
    ("a.b", {"a.b": 2}, 2),
    ("a.b", {"a": {"b": 1}, "a.b": 2}, 1),  # the nested object first
    ("a.b", {"a": "text", "a.b": 5}, 5),
    ("a.b", {"a": [{"b": 1}, {"x": 0}, {"b": [2, 3]}]}, [1, 2, 3]),
    ("a.b", {"a": {"c": 1}}, MISSING),
    ("a.b", {"a": "text"}, MISSING),
    ("a.b.c", {"a": {"b": {"c": 1}}}, 1),
    ("a.b.c", {"a": {"b": {"c": None}}}, None),
    ("a.b.c", {"a.b.c": 2, "a": {"b": {"c": 1}}}, 2),  # the flat key first
    ("a.b.c", {"a": {"b.c": 3}}, 3),
    ("a.b.c", {"a": {"b": [{"c": 1}, {"c": 2}]}}, [1, 2]),
    ("a.b.c", {"a": [{"b": {"c": 1}}, {"b": {"c": 4}}]}, [1, 4]),
    ("a.b.c", {"a": {"b": "x"}}, MISSING),
    ("a.b.c", {"a": {"x": 1}}, MISSING),
    ("a.b.c", {}, MISSING),
    ("a.b.c.d", {"a": {"b": {"c": {"d": "deep"}}}}, "deep"),
    ("a.b.c.d", {"a": {"b": {"c.d": "flat below"}}}, "flat below"),
]


@pytest.mark.parametrize(("path", "event", "expected"), CASES)
@pytest.mark.parametrize("mapping", [dict, OrderedDict])
def test_field_paths(path: str, event: dict[str, Any], expected: Any, mapping: type) -> None:
    """Plain dicts take the fast paths, other mappings (a dict subclass here) the general one: the same values."""
    wrapped = mapping(event)
    assert FieldGetter(path).get(wrapped) == expected
    assert field_getter(path)(wrapped) == expected
