"""``check-config`` (and ``serve``) refuse bad values by quoting them, but never the credentials of a URL: a password
in a URL-valued setting, or a key in its query, is masked in what they print."""

from __future__ import annotations

from pathlib import Path

import pytest

import run_bot
from config.loader import ConfigError, load_config_text

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "S3cretPass"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("DATABASE_URL", "BOT_CONFIG", "REDIS_URL", "WECOM_API_BASE", "WECOM_AIBOT_WS_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("BOT_CONFIG", str(ROOT / "config" / "sandbox.yaml"))


YAML_CASES = {
    "a URL with a password": ("sync_url", f"ftp://hotline:{SECRET}@sync.example.gov.cn/state", "ftp://hotline:***@"),
    "a password holding an @": ("sync_url", f"sftp://hotline:{SECRET}@x@sync.example/", "sftp://hotline:***@sync"),
    "a key in the query": ("sync_url", f"ftp://sync.example/push?key={SECRET}&v=1", "?key=***&v=1"),
    "a URL where a number goes": ("sync_timeout_seconds", f"https://u:{SECRET}@h", "https://u:***@h"),
}


@pytest.mark.parametrize("case", list(YAML_CASES))
def test_check_config_masks_credentials_in_a_refused_yaml_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    field, value, shown = YAML_CASES[case]
    config = tmp_path / "bot.yaml"
    sandbox = (ROOT / "config" / "sandbox.yaml").read_text(encoding="utf-8")
    config.write_text(f'{sandbox}\nhotline:\n  {field}: "{value}"\n', encoding="utf-8")
    assert run_bot.main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"hotline.{field}" in err
    assert shown in err
    assert SECRET not in err


ENV_CASES = {
    "WECOM_API_BASE": f"ftp://corp:{SECRET}@qyapi.example",
    "WECOM_AIBOT_WS_URL": f"https://bot:{SECRET}@openws.example",
    "REDIS_URL": f"http://:{SECRET}@cache:6379/0",
    "DATABASE_URL": f"mysql://bot:{SECRET}@db/hotline",
}


@pytest.mark.parametrize("var", list(ENV_CASES))
def test_check_config_masks_credentials_in_a_refused_environment_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], var: str
) -> None:
    monkeypatch.setenv(var, ENV_CASES[var])
    assert run_bot.main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert var in err
    assert SECRET not in err


def test_the_issue_itself_holds_no_credential() -> None:
    """Whatever prints or logs a ConfigError (its issues, its str) sees the masked value."""
    sandbox = (ROOT / "config" / "sandbox.yaml").read_text(encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config_text(f'{sandbox}\nhotline:\n  sync_url: "ftp://u:{SECRET}@h"\n')
    assert SECRET not in str(caught.value)
    assert all(SECRET not in issue.message for issue in caught.value.issues)
    assert 'invalid URL "ftp://u:***@h"' in str(caught.value)
