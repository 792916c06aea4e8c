"""Rule samples: raw log lines that must (or must not) make rules fire, kept as data beside the rules.

Each ``soc/rule_samples/NAME.yml`` belongs to ``soc/rules/NAME.yml``. A case lists raw lines (as a server would
send them); ``repeat`` copies every line N times with ``{i}`` (0…N-1) and ``{t:…}`` (``start`` + i × ``step_seconds``,
formatted with strftime codes, in Asia/Shanghai) filled in. The lines go through Yunshu's parsers, so a sample
proves the rule works on what the parsers really produce.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from soc.parsers import FORMATS, ParseContext, parse

SHANGHAI = ZoneInfo("Asia/Shanghai")
_INDEX = re.compile(r"\{i(?::([^}]*))?\}")
_TIME = re.compile(r"\{t:([^}]*)\}")
DEFAULT_START = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


class SampleCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    lines: list[str] = Field(min_length=1)
    format: str = "auto"
    repeat: int = Field(1, ge=1, le=10_000)
    start: datetime = DEFAULT_START
    step_seconds: float = Field(1.0, ge=0)
    expect: list[str] = []  # rule names or ids that must fire
    expect_not: list[str] = []  # rule names or ids that must not fire

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        return value

    def raw_lines(self) -> Iterator[str]:
        """The lines with ``{i}`` and ``{t:…}`` filled in, in order."""
        start = self.start if self.start.tzinfo else self.start.replace(tzinfo=SHANGHAI)
        for i in range(self.repeat):
            t = (start + timedelta(seconds=i * self.step_seconds)).astimezone(SHANGHAI)
            for line in self.lines:
                line = _INDEX.sub(lambda m, i=i: format(i, m.group(1) or ""), line)
                yield _TIME.sub(lambda m, t=t: t.strftime(m.group(1)), line)

    def events(self) -> Iterator[dict]:  # type: ignore[type-arg]
        """The parsed ECS events of the case (a line that does not parse raises, naming the case)."""
        ctx = ParseContext(now=self.start)
        for line in self.raw_lines():
            try:
                yield parse(line, self.format, ctx)
            except ValueError as exc:
                raise ValueError(f"sample {self.name!r}: line does not parse: {exc}: {line[:120]}") from None


class SampleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cases: list[SampleCase] = Field(min_length=2)

    @field_validator("cases")
    @classmethod
    def _both_kinds(cls, cases: list[SampleCase]) -> list[SampleCase]:
        if not any(c.expect for c in cases) or not any(c.expect_not for c in cases):
            raise ValueError("a sample file needs at least one positive (expect) and one negative (expect_not) case")
        return cases


def load_samples(path: Path) -> SampleFile:
    """Read and validate one sample file (pydantic names what is wrong)."""
    return SampleFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
