"""The classification schemes (``schemes.yaml``): codes shared with the register's vocabulary, ordered levels."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inventory.vocabulary import vocabulary

SCHEMES_FILE = Path(__file__).with_name("schemes.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelText(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Scheme(_Strict):
    source: str = Field(min_length=1)
    order: list[str] = Field(min_length=2)
    levels: dict[str, LevelText]

    @model_validator(mode="after")
    def _order_covers_levels(self) -> Scheme:
        if sorted(self.order) != sorted(self.levels):
            raise ValueError(f"order {self.order} and levels {sorted(self.levels)} differ")
        return self

    def rank(self, code: str) -> int:
        """Position of ``code`` from least (0) to most protected."""
        return self.order.index(code)

    def highest(self, codes: list[str]) -> str:
        return max(codes, key=self.rank)


class Schemes(_Strict):
    data_class: Scheme
    public_data_level: Scheme

    @model_validator(mode="after")
    def _codes_match_register(self) -> Schemes:
        for name in ("data_class", "public_data_level"):
            register_codes = set(vocabulary().enums[name].codes())
            ours = set(getattr(self, name).order)
            if ours != register_codes:
                raise ValueError(f"{name} codes {sorted(ours)} differ from the register's {sorted(register_codes)}")
        return self


def load_schemes(path: Path = SCHEMES_FILE) -> Schemes:
    """Read and validate the schemes file; errors name the file and the field."""
    try:
        return Schemes.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path.name}: {problems}") from None


@cache
def default_schemes() -> Schemes:
    return load_schemes()
