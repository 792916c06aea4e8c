"""Drill reports: JSON (the score) and printable HTML (zh-CN first, with English), with the JSON's SHA-256."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

_ENV = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                   autoescape=select_autoescape(["html"]))


def report_json(result: dict[str, Any]) -> str:
    """The canonical JSON form (sorted keys), the one the digest is taken of."""
    return json.dumps(result, ensure_ascii=False, sort_keys=True, indent=2)


def report_digest(result: dict[str, Any]) -> str:
    return hashlib.sha256(report_json(result).encode("utf-8")).hexdigest()


def report_html(result: dict[str, Any]) -> str:
    return _ENV.get_template("report.html").render(r=result, digest=report_digest(result),
                                                   generated=datetime.now(UTC).isoformat(timespec="seconds"))
