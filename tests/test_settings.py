"""Settings: defaults, then $YUNSHU_HOME/config.yaml (or YUNSHU_CONFIG), then YUNSHU_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import load_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("YUNSHU_CONFIG", "YUNSHU_DATABASE_URL", "YUNSHU_PORTAL__PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YUNSHU_HOME", str(tmp_path / "var"))
    return tmp_path / "var"


def test_defaults_live_under_home(home: Path) -> None:
    settings = load_settings()
    assert settings.home == home and home.is_dir()
    assert settings.db_url == f"sqlite:///{(home / 'yunshu.db').resolve()}"
    assert settings.portal.port == 8080 and settings.soc.syslog_port == 5514


def test_yaml_file_then_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir(parents=True)
    (home / "config.yaml").write_text("portal:\n  port: 9000\n  lockout_minutes: 30\nsoc:\n  mask_pii: false\n",
                                      encoding="utf-8")
    settings = load_settings()
    assert (settings.portal.port, settings.portal.lockout_minutes, settings.soc.mask_pii) == (9000, 30, False)
    monkeypatch.setenv("YUNSHU_PORTAL__PORT", "9100")
    assert load_settings().portal.port == 9100
    assert load_settings().portal.lockout_minutes == 30  # the file still applies to what env does not set


def test_explicit_config_path(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("database_url: postgresql+psycopg://u@127.0.0.1/x\n", encoding="utf-8")
    monkeypatch.setenv("YUNSHU_CONFIG", str(other))
    assert load_settings().db_url == "postgresql+psycopg://u@127.0.0.1/x"


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("portal:\n  port: 70000\n", "less than or equal to 65535"),
    ("soc:\n  retention_days: {general: 30}\n", "retention below 180 days"),
    ("portal:\n  lockout_threshold: zero\n", "valid integer"),
])
def test_bad_settings_named(home: Path, yaml_text: str, message: str) -> None:
    home.mkdir(parents=True)
    (home / "config.yaml").write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ValidationError, match=message):
        load_settings()
