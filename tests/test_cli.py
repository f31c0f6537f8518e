"""The command line: help, config checking, migrations, the outbox, start-up refusals — no tracebacks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import bot
import run_bot

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("DATABASE_URL", "BOT_CONFIG", "REDIS_URL", "HOTLINE_INGEST_SECRET", "API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("BOT_CONFIG", str(ROOT / "config" / "sandbox.yaml"))


def test_the_installed_command_says_its_version_and_every_argument_has_help() -> None:
    import argparse
    import subprocess
    import sys

    from bot.app.cli import build_parser

    script = Path(sys.executable).parent / "hotline-bot"  # the console command pip installs beside the interpreter
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("hotline-bot 0.")
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    described = {c.dest: c.help for c in subcommands._choices_actions}
    for name, parser in subcommands.choices.items():
        assert described.get(name), f"{name} has no one-line description"
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_the_version_is_a_heading_of_the_changelog() -> None:
    """A release moves the CHANGELOG's "Unreleased" under its version, which pyproject.toml carries and the tag
    (vX.Y.Z) names: the installed version is always one the CHANGELOG describes."""
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    headings = [line[3:].strip() for line in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
                if line.startswith("## ")]  # fmt: skip
    assert headings[0] == "Unreleased"
    assert version in headings
    assert bot.version() == version  # installed from this checkout (make install)


def test_a_deployment_whose_configuration_is_named_in_its_env_file_is_not_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BOT_CONFIG from the .env file counts as given (the check is not of the environment alone): serve goes on to
    read it, and reports that it does not exist."""
    monkeypatch.delenv("BOT_CONFIG")
    monkeypatch.setenv("WECOM_CORP_ID", "ww-production")
    env_file = tmp_path / "bot.env"
    env_file.write_text(f"BOT_CONFIG={tmp_path / 'office.yaml'}\n", encoding="utf-8")
    monkeypatch.setenv("ENV_FILE", str(env_file))
    code = run_bot.main(["serve"])
    err = capsys.readouterr().err
    assert "BOT_CONFIG is not set" not in err
    assert code != 0
    assert "office.yaml" in err


def test_a_deployment_does_not_start_without_its_own_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BOT_CONFIG")
    monkeypatch.setenv("WECOM_CORP_ID", "ww-production")  # WeCom configured: not the sandbox
    assert run_bot.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "BOT_CONFIG is not set" in err
    assert "Traceback" not in err
    monkeypatch.delenv("WECOM_CORP_ID")
    monkeypatch.setenv("SANDBOX", "off")
    assert run_bot.main(["serve"]) == 2


def test_help_lists_every_subcommand_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        run_bot.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for word in (
        "serve",
        "check-config",
        "migrate",
        "import",
        "ticket",
        "outbox",
        "purge",
        "DATABASE_URL",
        "HOTLINE_INGEST_SECRET",
    ):
        assert word in out


@pytest.mark.parametrize("name", ["sandbox.yaml", "example.yaml"])
def test_check_config_accepts_the_shipped_configs(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_bot.main(["check-config", str(ROOT / "config" / name)]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_config_reports_every_error_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (ROOT / "config" / "sandbox.yaml")
        .read_text(encoding="utf-8")
        .replace("head: chenjing", "head: lisi")
        .replace("  - unit: HW\n    categories: [环卫]", "  - unit: HWX\n    categories: [环卫]"),
        encoding="utf-8",
    )
    assert run_bot.main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert any("head" in line and "lisi" in line and ":" in line for line in lines)
    assert any("HWX" in line for line in lines)
    assert all(line.startswith(str(bad)) for line in lines[-2:])


def test_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("office:\n  name: x\n  unit: [unclosed\n", encoding="utf-8")
    assert run_bot.main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert str(bad) in err


def test_bad_holiday_override_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    overrides = tmp_path / "holidays.yaml"
    overrides.write_text('2027:\n  holidays: ["2027-02-30"]\n', encoding="utf-8")
    config = tmp_path / "bot.yaml"
    config.write_text(
        (ROOT / "config" / "sandbox.yaml").read_text(encoding="utf-8")
        + "\ncalendar:\n  overrides_file: holidays.yaml\n",
        encoding="utf-8",
    )
    assert run_bot.main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "calendar.overrides_file" in err
    assert "Traceback" not in err


def test_serve_refuses_an_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("office: {unit: NOPE}\n", encoding="utf-8")
    assert run_bot.main(["serve", "--config", str(bad)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_invalid_environment_is_reported(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BOT_PORT", "99999")
    assert run_bot.main(["check-config"]) == 2
    assert "BOT_PORT" in capsys.readouterr().err


def test_migrate_outbox_and_ticket(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_bot.main(["migrate"]) == 0
    assert run_bot.main(["migrate"]) == 0
    assert run_bot.main(["outbox"]) == 0
    assert "outbox: empty" in capsys.readouterr().out
    assert run_bot.main(["outbox", "replay"]) == 0
    assert run_bot.main(["ticket", "2026000000000"]) == 1
    assert "没有找到工单" in capsys.readouterr().err
    assert run_bot.main(["purge"]) == 0
    out = capsys.readouterr().out
    assert "deleted 0 inbox row(s) handled more than 90 days ago, 0 outbox message(s)" in out
    assert "0 notification record(s) older than 400 days" in out


@pytest.mark.parametrize(("setting", "on_uvloop"), [(None, True), ("uvloop", True), ("asyncio", False)])
def test_serve_runs_on_uvloop_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, on_uvloop: bool
) -> None:
    import uvloop
    from aiohttp import web

    served: list[object] = []

    def run_app(app: web.Application, *, loop: asyncio.AbstractEventLoop, **_kwargs: object) -> None:
        served.append(loop)
        loop.close()

    monkeypatch.setattr(web, "run_app", run_app)
    if setting is None:
        monkeypatch.delenv("EVENT_LOOP", raising=False)
    else:
        monkeypatch.setenv("EVENT_LOOP", setting)
    assert run_bot.main(["serve"]) == 0
    assert [isinstance(loop, uvloop.Loop) for loop in served] == [on_uvloop]
    assert all(isinstance(loop, asyncio.AbstractEventLoop) for loop in served)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_migrate_shows_a_dba_the_sql_first_and_the_current_revision(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert run_bot.main(["migrate", "--current"]) == 0
    assert capsys.readouterr().out.startswith("none (head: 0016)")
    assert run_bot.main(["migrate", "--sql"]) == 0
    sql = capsys.readouterr().out
    assert "CREATE TABLE tickets" in sql
    assert "UPDATE alembic_version SET version_num='0016'" in sql
    assert run_bot.main(["migrate", "--current"]) == 0  # --sql changed nothing
    assert capsys.readouterr().out.startswith("none")
    assert run_bot.main(["migrate"]) == 0
    assert "revision 0016" in capsys.readouterr().out
    assert run_bot.main(["migrate", "--sql"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_migrate_sql_is_for_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_bot.main(["migrate", "--sql"]) == 2
    assert "PostgreSQL" in capsys.readouterr().err
