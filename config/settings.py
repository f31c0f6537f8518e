"""Deployment values (database, Redis, WeCom credentials, listen address), read with pydantic-settings from, in
this order: the environment; a file named by ``<NAME>_FILE`` (a secret a container or systemd passes as a file);
a ``.env`` file in the working directory; a file named ``<NAME>`` in systemd's credentials directory
(``$CREDENTIALS_DIRECTORY``, ``LoadCredential=``) or in ``/run/secrets`` (Docker's and Compose's secrets).

Nothing is read at import time: call :meth:`Settings.from_env`. Secrets never show in repr/str.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasGenerator, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config.durations import Duration
from config.loader import ConfigError, ConfigIssue, describe_error

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_URL_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:)([^@]*)@")


def redact_url(url: str) -> str:
    """'postgresql+asyncpg://bot:s3cret@db/hotline' -> 'postgresql+asyncpg://bot:***@db/hotline'."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def normalize_database_url(url: str) -> str:
    """Rewrite to the async drivers the bot uses: sqlite -> sqlite+aiosqlite, postgres -> asyncpg."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("must be a URL such as sqlite:///data/hotline.db or postgresql://user:password@host/db")
    scheme = scheme.lower()
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return f"postgresql+asyncpg://{rest}"
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return f"sqlite+aiosqlite://{rest}"
    if scheme.startswith(("postgres", "sqlite")):
        raise ValueError(f'unsupported driver "{scheme}": the bot uses asyncpg / aiosqlite; drop the "+driver"')
    raise ValueError(f'unsupported database "{scheme}": use sqlite:/// or postgresql://')


# each setting and the variable it is read from
ENV_VARS: dict[str, str] = {
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "config_path": "BOT_CONFIG",
    "host": "BOT_HOST",
    "port": "BOT_PORT",
    "body_timeout": "HTTP_BODY_TIMEOUT",
    "wecom_api_base": "WECOM_API_BASE",
    "wecom_corp_id": "WECOM_CORP_ID",
    "wecom_app_agent_id": "WECOM_APP_AGENT_ID",
    "wecom_app_secret": "WECOM_APP_SECRET",
    "wecom_app_token": "WECOM_APP_TOKEN",
    "wecom_app_aes_key": "WECOM_APP_AES_KEY",
    "wecom_aibot_token": "WECOM_AIBOT_TOKEN",
    "wecom_aibot_aes_key": "WECOM_AIBOT_AES_KEY",
    "wecom_aibot_bot_id": "WECOM_AIBOT_BOT_ID",
    "wecom_aibot_secret": "WECOM_AIBOT_SECRET",
    "wecom_aibot_ws_url": "WECOM_AIBOT_WS_URL",
    "wecom_oauth_url": "WECOM_OAUTH_URL",
    "wecom_sso_url": "WECOM_SSO_URL",
    "board_secret": "BOARD_SECRET",
    "public_url": "PUBLIC_URL",
    "hotline_ingest_secret": "HOTLINE_INGEST_SECRET",
    "api_token": "API_TOKEN",
    "metrics_token": "METRICS_TOKEN",
    "hotline_ingest_secret_previous": "HOTLINE_INGEST_SECRET_PREVIOUS",
    "api_token_previous": "API_TOKEN_PREVIOUS",
    "log_format": "LOG_FORMAT",
    "log_level": "LOG_LEVEL",
    "event_loop": "EVENT_LOOP",
    "sandbox": "SANDBOX",
    "sandbox_demo_every": "SANDBOX_DEMO_EVERY",
    "sandbox_robot": "SANDBOX_ROBOT",
}


SECRETS_DIRS = ("/run/secrets",)  # Docker's and Compose's secrets; systemd's $CREDENTIALS_DIRECTORY comes first
ENV_FILE = ".env"  # in the working directory; ENV_FILE=/path names another, ENV_FILE=off reads none


def _env_file(environ: Mapping[str, str]) -> Path | None:
    """The .env file to read: ``ENV_FILE``'s, else ``.env`` in the working directory; None when it is off or there
    is no such file. One that exists but cannot be read is a mistake, said as one."""
    given = (environ.get("ENV_FILE") or "").strip()
    if given.lower() in ("off", "none", "no"):
        return None
    path = Path(given or ENV_FILE)
    try:
        if not path.is_file():
            if given:
                raise ConfigError("environment", [ConfigIssue("ENV_FILE", f"{given} is not a file")])
            return None
        with path.open("rb"):
            pass
    except OSError as exc:
        issue = ConfigIssue("ENV_FILE", f"cannot read {path}: {exc.__class__.__name__}")
        raise ConfigError("environment", [issue]) from None
    return path


def _secrets_dirs(environ: Mapping[str, str]) -> list[str]:
    """The directories of files named after settings, the one read last winning: /run/secrets, then systemd's."""
    found = [*SECRETS_DIRS, environ.get("CREDENTIALS_DIRECTORY") or ""]
    return [d for d in found if d and Path(d).is_dir()]


class Settings(BaseSettings):
    # every field read under its variable's name (ENV_VARS); a .env file may hold other names (a compose file's)
    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        alias_generator=AliasGenerator(validation_alias=lambda name: ENV_VARS[name]),
        populate_by_name=True,
        env_ignore_empty=True,
        case_sensitive=True,
    )

    database_url: str = "sqlite+aiosqlite:///data/hotline.db"
    redis_url: str | None = None  # None = no Redis; in-process fallbacks
    config_path: Path = Path("config/sandbox.yaml")
    host: str = "127.0.0.1"
    port: int = 8080
    # a request body (a WeCom callback, a hand-over) must arrive within this many seconds, or it is answered 408
    body_timeout: float = Field(default=10, gt=0, le=300)
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    wecom_corp_id: str | None = None
    wecom_app_agent_id: str | None = None
    # WeCom secrets stay plain str (wechatpy wants str) but are left out of repr.
    wecom_app_secret: str | None = Field(default=None, repr=False)
    wecom_app_token: str | None = Field(default=None, repr=False)
    wecom_app_aes_key: str | None = Field(default=None, repr=False)
    wecom_aibot_token: str | None = Field(default=None, repr=False)
    wecom_aibot_aes_key: str | None = Field(default=None, repr=False)
    # the intelligent robot's long connection (on when BotID and Secret are both set)
    wecom_aibot_bot_id: str | None = None
    wecom_aibot_secret: str | None = Field(default=None, repr=False)
    wecom_aibot_ws_url: str = "wss://openws.work.weixin.qq.com"
    # the board (bot.board): signing in through WeCom's web authorisation (in WeCom's browser) or its QR login
    # (a desktop browser); the session cookie's key (any long random text; several processes share it); the URL
    # people reach the bot at, for the sign-in's redirect_uri and the links in pushes (behind a proxy: its URL)
    wecom_oauth_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    wecom_sso_url: str = "https://login.work.weixin.qq.com/wwlogin/sso/login"
    board_secret: SecretStr | None = None
    public_url: str | None = None
    hotline_ingest_secret: SecretStr | None = None
    api_token: SecretStr | None = None
    metrics_token: SecretStr | None = None  # /metrics only for "Authorization: Bearer <token>" when set
    # the secret and the token being replaced, accepted beside the new ones while the callers switch (rotation)
    hotline_ingest_secret_previous: SecretStr | None = None
    api_token_previous: SecretStr | None = None
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    # uvloop (libuv) where it is installed, as it is on Linux and macOS: a faster event loop for the server, the
    # WeCom client and asyncpg; "asyncio" keeps the standard library's
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # the WeCom sandbox (bot/sandbox): auto = on when no WeCom setting is given, on a loopback BOT_HOST only;
    # public = also on another host (anyone reaching the port can act as any member); off = never
    sandbox: Literal["auto", "off", "public"] = "auto"
    sandbox_demo_every: timedelta | None = None  # inject a demo ticket this often (SANDBOX_DEMO_EVERY=5m)
    # how the sandbox's work groups reach the bot: the intelligent robot's long connection (cards with buttons, as
    # in production with it) or its callback URL (pushes into app chats, as markdown)
    sandbox_robot: Literal["long_connection", "callback"] = "long_connection"

    ENV_VARS: ClassVar[dict[str, str]] = ENV_VARS

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(rediss?|unix)://", value.strip(), re.I):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value.strip() if value is not None else None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> int:
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= 65535:
            raise ValueError(f'must be a port number between 1 and 65535 (got "{value}")')
        return int(text)

    @field_validator("wecom_api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f'must be an http(s) URL (got "{value}")')
        return value

    @field_validator("wecom_oauth_url", "wecom_sso_url")
    @classmethod
    def _sign_in_url(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"^https?://[^/\s]+/\S*$", value):
            raise ValueError(f'must be an http(s) URL (got "{value}")')
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+$", value):  # the board and its links are at /board/ under it
            raise ValueError(
                f'must be the http(s) URL people reach the bot at, e.g. https://hotline.example.gov.cn (got "{value}")'
            )
        return value

    @field_validator("board_secret")
    @classmethod
    def _board_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters of random text (openssl rand -base64 32)")
        return value

    @field_validator("wecom_aibot_ws_url")
    @classmethod
    def _aibot_ws_url(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"^wss?://[^/\s]+", value, re.I):
            raise ValueError(f'must be a ws:// or wss:// URL (got "{value}")')
        return value

    @field_validator("wecom_aibot_bot_id", "wecom_aibot_secret")
    @classmethod
    def _stripped(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None

    @field_validator("wecom_app_agent_id")
    @classmethod
    def _agent_id(cls, value: str | None) -> str | None:
        if value is not None and not value.strip().isdigit():
            raise ValueError(f'must be the numeric AgentId of the WeCom app (got "{value}")')
        return value.strip() if value is not None else None

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("json", "text"):
            return value.strip().lower()
        raise ValueError(f'must be "json" or "text" (got "{value}")')

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        level = "WARNING" if level == "WARN" else level
        if level not in _LOG_LEVELS:
            raise ValueError(f'must be one of {", ".join(_LOG_LEVELS)} (got "{value}")')
        return level

    @field_validator("sandbox", mode="before")
    @classmethod
    def _sandbox(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("auto", "off", "public"):
            return value.strip().lower()
        raise ValueError(f'must be "auto", "off" or "public" (got "{value}")')

    @field_validator("sandbox_robot", mode="before")
    @classmethod
    def _sandbox_robot(cls, value: Any) -> Any:
        text = value.strip().lower().replace("-", "_") if isinstance(value, str) else value
        if text in ("long_connection", "callback"):
            return text
        raise ValueError(f'must be "long_connection" or "callback" (got "{value}")')

    @field_validator("sandbox_demo_every", mode="before")
    @classmethod
    def _sandbox_demo_every(cls, value: Any) -> Any:
        if value is None or isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        if text in ("", "0", "off"):
            return None
        try:
            duration = Duration.parse(text)
            return duration.natural()
        except ValueError:
            raise ValueError(f'must be a duration such as 5m, 1h or 1d, or "off" (got "{value}")') from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            FileVariables(settings_cls, os.environ),
            dotenv_settings,
            file_secret_settings,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of this process (``environ`` None: the environment, ``<NAME>_FILE`` files, ``.env``, the
        secrets directories), or of exactly ``environ`` and the files its ``<NAME>_FILE`` variables name. Empty
        values count as unset.

        Raises ConfigError naming each invalid variable.
        """
        try:
            if environ is None:
                secrets = _secrets_dirs(os.environ)
                return cls(_env_file=_env_file(os.environ), _secrets_dir=secrets or None)  # type: ignore[call-arg]
            values = {
                var: raw for var in cls.ENV_VARS.values() if (raw := environ.get(var)) is not None and raw.strip()
            }
            return cls.model_validate({**FileVariables(cls, environ)(), **values})
        except ValidationError as exc:
            issues = []
            for error in exc.errors(include_url=False):
                loc, message = describe_error(error)
                name = str(loc[0]) if loc else ""
                issues.append(ConfigIssue(cls.ENV_VARS.get(name, name), message))
            raise ConfigError("environment", issues) from None

    @property
    def config_given(self) -> bool:
        """Whether ``BOT_CONFIG`` was given, from any source (else the sandbox's configuration is the default)."""
        return "config_path" in self.model_fields_set

    def wecom_given(self) -> list[str]:
        """The WeCom settings given (env var names): every ``wecom_*`` setting that is not its default (a credential,
        an API base or another endpoint of one's own). With none, ``serve`` may run the sandbox; with any, it is a
        deployment, and needs its own configuration."""
        given = []
        for field, var in self.ENV_VARS.items():
            if not field.startswith("wecom_"):
                continue
            value = getattr(self, field, None)
            if value not in (None, "") and value != type(self).model_fields[field].default:
                given.append(var)
        return given

    @property
    def wecom_configured(self) -> bool:
        """A way to talk to WeCom: a corp id with an app secret or intelligent-robot token, or the robot's long
        connection (BotID and Secret)."""
        return self.aibot_long_connection or bool(
            self.wecom_corp_id and (self.wecom_app_secret or self.wecom_aibot_token)
        )

    @property
    def aibot_long_connection(self) -> bool:
        """The intelligent robot's long connection is on: its BotID and Secret are both set."""
        return bool(self.wecom_aibot_bot_id and self.wecom_aibot_secret)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def database_url_redacted(self) -> str:
        """The database URL with its password masked, for logs."""
        return redact_url(self.database_url)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name in ("database_url", "redis_url") and isinstance(value, str):
                yield name, redact_url(value)
            else:
                yield name, value


class FileVariables(PydanticBaseSettingsSource):
    """``<NAME>_FILE=/path``: the setting ``<NAME>`` is the file's content, its final line break dropped (how Docker
    images and systemd's ``LoadCredential=`` pass a secret without putting it in the environment). Setting both
    ``<NAME>`` and ``<NAME>_FILE`` is a mistake, and so is a file that cannot be read."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads them all

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        issues: list[ConfigIssue] = []
        for var in ENV_VARS.values():
            path = (self.environ.get(f"{var}_FILE") or "").strip()
            if not path:
                continue
            if (self.environ.get(var) or "").strip():
                issues.append(ConfigIssue(f"{var}_FILE", f"{var} is set too: set one of them"))
                continue
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                issues.append(ConfigIssue(f"{var}_FILE", f"cannot read {path}: {exc.__class__.__name__}"))
                continue
            text = text.removesuffix("\n").removesuffix("\r")
            if text.strip():
                values[var] = text
        if issues:
            raise ConfigError("environment", issues)
        return values
