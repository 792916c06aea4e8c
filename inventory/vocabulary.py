"""Controlled vocabularies and the GB/T 22240 grading matrix, loaded from ``vocabulary.yaml``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, model_validator

VOCABULARY_FILE = Path(__file__).with_name("vocabulary.yaml")


class Term(BaseModel):
    code: str
    zh: str
    en: str
    aliases: list[str] = Field(default_factory=list)


class Enum(BaseModel):
    title: dict[str, str]
    source: str | None = None
    values: list[Term]

    def codes(self) -> list[str]:
        return [t.code for t in self.values]


class GradingMatrix(BaseModel):
    source: str
    levels: dict[str, dict[str, int]]


class Vocabulary(BaseModel):
    enums: dict[str, Enum]
    grading_matrix: GradingMatrix

    @model_validator(mode="after")
    def _matrix_uses_known_codes(self) -> Vocabulary:
        objects = set(self.enums["grading_object"].codes())
        degrees = set(self.enums["grading_degree"].codes())
        if set(self.grading_matrix.levels) != objects:
            raise ValueError("grading_matrix objects differ from enum grading_object")
        for row in self.grading_matrix.levels.values():
            if set(row) != degrees:
                raise ValueError("grading_matrix degrees differ from enum grading_degree")
        return self

    def normalise(self, enum: str, value: object) -> str:
        """Map a code or any label/alias (case-insensitive) to its code; raise ValueError naming the choices."""
        text = str(value).strip()
        for term in self.enums[enum].values:
            names = [term.code, term.zh, term.en, *term.aliases]
            if any(text.casefold() == n.casefold() for n in names):
                return term.code
        choices = ", ".join(f"{t.code} ({t.zh})" for t in self.enums[enum].values)
        raise ValueError(f"'{text}' is not a valid {enum}; expected one of: {choices}")

    def label(self, enum: str, code: object, lang: str = "zh-CN") -> str:
        """Display label of a code in the given language (the code itself when unknown)."""
        for term in self.enums[enum].values:
            if term.code == str(code):
                return term.en if lang.startswith("en") else term.zh
        return str(code)

    def grade(self, object_code: str, degree_code: str) -> int:
        """The level of one grading record (GB/T 22240-2020)."""
        return self.grading_matrix.levels[object_code][degree_code]


@cache
def vocabulary() -> Vocabulary:
    """The validated vocabulary (read once)."""
    return Vocabulary.model_validate(yaml.safe_load(VOCABULARY_FILE.read_text(encoding="utf-8")))
