"""config/settings.py: settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError
from config.settings import Settings


def test_settings_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite+aiosqlite:///data/hotline.db"
    assert settings.is_sqlite
    assert settings.redis_url is None
    assert settings.config_path == Path("config/sandbox.yaml")
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.wecom_api_base == "https://qyapi.weixin.qq.com"
    assert not settings.wecom_configured
    assert settings.log_format == "json"
    assert settings.log_level == "INFO"


def test_settings_env_vars_cover_every_field() -> None:
    assert set(Settings.ENV_VARS) == set(Settings.model_fields)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://bot:pw@db:5432/hotline", "postgresql+asyncpg://bot:pw@db:5432/hotline"),
        ("postgres://bot:pw@db/hotline", "postgresql+asyncpg://bot:pw@db/hotline"),
        ("postgresql+asyncpg://bot@db/hotline", "postgresql+asyncpg://bot@db/hotline"),
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("sqlite+aiosqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
    ],
)
def test_database_url_rewriting(url: str, expected: str) -> None:
    settings = Settings.from_env({"DATABASE_URL": url})
    assert settings.database_url == expected
    assert settings.is_sqlite == expected.startswith("sqlite")


@pytest.mark.parametrize("url", ["mysql://x/y", "postgresql+psycopg2://x/y", "data/hotline.db"])
def test_bad_database_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DATABASE_URL": url})
    assert [i.path for i in caught.value.issues] == ["DATABASE_URL"]


def test_settings_values() -> None:
    settings = Settings.from_env(
        {
            "BOT_PORT": " 9000 ",
            "BOT_HOST": "0.0.0.0",
            "BOT_CONFIG": "config/example.yaml",
            "REDIS_URL": "redis://localhost:6379/0",
            "WECOM_API_BASE": "http://127.0.0.1:9999/",
            "WECOM_CORP_ID": "ww123",
            "WECOM_AIBOT_TOKEN": "tok",
            "LOG_FORMAT": "TEXT",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.port == 9000
    assert settings.host == "0.0.0.0"
    assert settings.config_path == Path("config/example.yaml")
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.wecom_api_base == "http://127.0.0.1:9999"
    assert settings.wecom_configured
    assert settings.log_format == "text"
    assert settings.log_level == "DEBUG"


def test_empty_values_count_as_unset() -> None:
    settings = Settings.from_env({"BOT_PORT": "", "REDIS_URL": "  ", "API_TOKEN": "", "DATABASE_URL": ""})
    assert settings.port == 8080
    assert settings.redis_url is None
    assert settings.api_token is None
    assert settings.is_sqlite


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1", "80.5"])
def test_invalid_port_names_the_variable(port: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BOT_PORT": port})
    assert [i.path for i in caught.value.issues] == ["BOT_PORT"]
    assert caught.value.report().startswith("environment: BOT_PORT: must be a port number between 1 and 65535")


def test_several_env_errors_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BOT_PORT": "x", "LOG_FORMAT": "xml", "LOG_LEVEL": "LOUD", "REDIS_URL": "localhost:6379"})
    assert {i.path for i in caught.value.issues} == {"BOT_PORT", "LOG_FORMAT", "LOG_LEVEL", "REDIS_URL"}


def test_from_env_reads_os_environ_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_PORT", "8123")
    assert Settings.from_env().port == 8123
    monkeypatch.setenv("BOT_PORT", "8124")
    assert Settings.from_env().port == 8124


def test_secrets_are_hidden() -> None:
    secrets = {
        "HOTLINE_INGEST_SECRET": "ingest-s3cret",
        "API_TOKEN": "api-s3cret",
        "WECOM_APP_SECRET": "app-s3cret",
        "WECOM_APP_TOKEN": "apptok-s3cret",
        "WECOM_APP_AES_KEY": "aes-s3cret",
        "WECOM_AIBOT_TOKEN": "aibot-s3cret",
        "WECOM_AIBOT_AES_KEY": "aibotaes-s3cret",
        "DATABASE_URL": "postgresql://bot:db-s3cret@db/hotline",
        "REDIS_URL": "redis://:redis-s3cret@localhost:6379/0",
    }
    settings = Settings.from_env({**secrets, "WECOM_CORP_ID": "ww1"})
    for shown in (repr(settings), str(settings)):
        assert "s3cret" not in shown
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "api-s3cret"
    assert settings.wecom_app_secret == "app-s3cret"
    assert "db-s3cret" in settings.database_url
    assert settings.database_url_redacted == "postgresql+asyncpg://bot:***@db/hotline"
    assert settings.wecom_configured


def test_bad_url_errors_do_not_echo_passwords() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DATABASE_URL": "mysql://bot:db-s3cret@db/x"})
    assert "s3cret" not in caught.value.report()


def test_event_loop_setting() -> None:
    assert Settings.from_env({}).event_loop == "uvloop"
    assert Settings.from_env({"EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"EVENT_LOOP": "trio"})
    assert [i.path for i in caught.value.issues] == ["EVENT_LOOP"]


# -- where the values come from: the environment, <NAME>_FILE, .env, the secrets directories ----------------------


def test_a_secret_from_a_file_named_by_its_file_variable(tmp_path: Path) -> None:
    secret = tmp_path / "wecom_app_secret"
    secret.write_text("s3cret-from-a-file\n", encoding="utf-8")  # as `echo … > file` leaves it
    settings = Settings.from_env({"WECOM_APP_SECRET_FILE": str(secret), "WECOM_CORP_ID": "ww1"})
    assert settings.wecom_app_secret == "s3cret-from-a-file"
    assert settings.wecom_configured


def test_a_value_and_its_file_both_set_or_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("t", encoding="utf-8")
    with pytest.raises(ConfigError) as both:
        Settings.from_env({"API_TOKEN": "a", "API_TOKEN_FILE": str(secret)})
    assert [(i.path, i.message) for i in both.value.issues] == [
        ("API_TOKEN_FILE", "API_TOKEN is set too: set one of them")
    ]
    with pytest.raises(ConfigError) as missing:
        Settings.from_env({"API_TOKEN_FILE": str(tmp_path / "nowhere")})
    assert missing.value.issues[0].path == "API_TOKEN_FILE"
    assert "cannot read" in missing.value.issues[0].message
    # a value read from a file is checked as the variable's own would be
    secret.write_text("short", encoding="utf-8")
    with pytest.raises(ConfigError) as short:
        Settings.from_env({"BOARD_SECRET_FILE": str(secret)})
    assert short.value.issues[0].path == "BOARD_SECRET"


def test_the_process_reads_the_environment_then_files_then_dotenv_then_the_secrets_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in Settings.ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(f"{var}_FILE", raising=False)
    monkeypatch.delenv("ENV_FILE")  # the working directory's .env, as a deployment reads it
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "# the deployment's values\nBOT_PORT=8090\nLOG_LEVEL=debug\nAPI_TOKEN=from-dotenv\n"
        "POSTGRES_PASSWORD=compose-only\n",  # another program's: ignored
        encoding="utf-8",
    )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "HOTLINE_INGEST_SECRET").write_text("from-systemd", encoding="utf-8")
    (credentials / "API_TOKEN").write_text("from-systemd-too", encoding="utf-8")
    metrics = tmp_path / "metrics-token"
    metrics.write_text("from-a-file", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv("LOG_LEVEL", "warning")
    monkeypatch.setenv("METRICS_TOKEN_FILE", str(metrics))

    settings = Settings.from_env()
    assert settings.port == 8090  # .env
    assert settings.log_level == "WARNING"  # the environment over .env
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "from-dotenv"
    assert settings.hotline_ingest_secret is not None
    assert settings.hotline_ingest_secret.get_secret_value() == "from-systemd"
    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value() == "from-a-file"

    (tmp_path / ".env").write_text("BOT_PORT=eighty\n", encoding="utf-8")
    with pytest.raises(ConfigError) as bad:
        Settings.from_env()
    assert [i.path for i in bad.value.issues] == ["BOT_PORT"]


def test_the_credentials_directory_wins_over_run_secrets_and_env_file_names_or_turns_off_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in Settings.ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    docker, systemd = tmp_path / "run-secrets", tmp_path / "credentials"
    for folder, token in ((docker, "from-docker"), (systemd, "from-systemd")):
        folder.mkdir()
        (folder / "API_TOKEN").write_text(token, encoding="utf-8")
        (folder / "METRICS_TOKEN").write_text(token, encoding="utf-8")
    (docker / "API_TOKEN_PREVIOUS").write_text("only-in-docker", encoding="utf-8")
    monkeypatch.setattr("config.settings.SECRETS_DIRS", (str(docker),))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(systemd))
    monkeypatch.setenv("METRICS_TOKEN", "from-the-environment")
    settings = Settings.from_env()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "from-systemd"
    assert settings.api_token_previous is not None
    assert settings.api_token_previous.get_secret_value() == "only-in-docker"
    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value() == "from-the-environment"

    elsewhere = tmp_path / "deployment.env"
    elsewhere.write_text("BOT_PORT=8099\nBOT_CONFIG=/etc/hotline-bot/config.yaml\n", encoding="utf-8")
    monkeypatch.setenv("ENV_FILE", str(elsewhere))
    settings = Settings.from_env()
    assert (settings.port, settings.config_given) == (8099, True)
    monkeypatch.setenv("ENV_FILE", "off")
    assert (Settings.from_env().port, Settings.from_env().config_given) == (8080, False)
    monkeypatch.setenv("ENV_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(ConfigError) as missing:
        Settings.from_env()
    assert [i.path for i in missing.value.issues] == ["ENV_FILE"]
