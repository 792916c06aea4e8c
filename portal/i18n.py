"""UI text in zh-CN (default) and English, from ``i18n/*.yaml``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

I18N_DIR = Path(__file__).with_name("i18n")
LANGUAGES = ("zh-CN", "en")


@cache
def catalog(lang: str) -> dict[str, str]:
    data = yaml.safe_load((I18N_DIR / f"{lang}.yaml").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"i18n/{lang}.yaml must map keys to strings")
    return data


def check_catalogs() -> None:
    """Every language must define the same keys as zh-CN."""
    base = set(catalog("zh-CN"))
    for lang in LANGUAGES[1:]:
        missing = base ^ set(catalog(lang))
        if missing:
            raise ValueError(f"i18n/{lang}.yaml and zh-CN.yaml differ in keys: {sorted(missing)}")


def translator(lang: str):  # type: ignore[no-untyped-def]
    """A ``t(key, **fmt)`` function for templates."""
    texts = catalog(lang if lang in LANGUAGES else "zh-CN")

    def t(key: str, **fmt: object) -> str:
        text = texts.get(key, key)
        return text.format(**fmt) if fmt else text

    return t
