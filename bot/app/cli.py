"""The bot's command line, ``hotline-bot`` once installed (``python run_bot.py`` in a checkout calls the same):
``hotline-bot --help`` lists every subcommand, ``hotline-bot COMMAND --help`` its arguments."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

import bot
from config.loader import ConfigError, load_config
from config.model import BotConfig
from config.settings import Settings

log = logging.getLogger("hotline_bot")


def _env_help() -> str:
    lines = ["environment variables:"]
    for field, var in Settings.ENV_VARS.items():
        default = Settings.model_fields[field].default
        shown = "" if default is None else f" (default: {default})"
        lines.append(f"  {var:<24} {field}{shown}")
    lines.append(f"  {'ENV_FILE':<24} the .env file to read (default: .env in the working directory; off: none)")
    lines.append(f"  {'REPORT_FONT':<24} a font file with Chinese glyphs for the report charts")
    lines.append("each may also come from NAME_FILE=path, a .env file or systemd's credentials (docs/configuration.md)")
    return "\n".join(lines)


def _load(settings: Settings, path: Path | None) -> BotConfig:
    return load_config(path or settings.config_path)


def _settings() -> Settings:
    return Settings.from_env()


class CalendarFileError(Exception):
    pass


def _calendar(config: BotConfig) -> Any:
    """The working-day calendar with the config's override file; a bad file is the user's error, not a crash."""
    from bot.app import build_calendar

    try:
        return build_calendar(config)
    except (OSError, ValueError) as exc:
        raise CalendarFileError(f"calendar.overrides_file: {exc}") from None


# --- subcommands -----------------------------------------------------------------------------------------


def _event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """The server's event loop: uvloop's when asked for and installed (it is not on Windows), else asyncio's."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed: the standard asyncio event loop serves")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import create_app
    from bot.logging import setup_logging

    settings = _settings()
    if args.host:
        settings = settings.model_copy(update={"host": args.host})
    if args.port:
        settings = settings.model_copy(update={"port": args.port})
    setup_logging(settings.log_format, settings.log_level)
    deployed = settings.sandbox == "off" or settings.wecom_given()
    if deployed and args.config is None and not settings.config_given:
        # without it a deployment would silently run the sandbox's made-up organisation
        message = (
            "BOT_CONFIG is not set: a bot with WeCom settings (or SANDBOX=off) needs its own configuration "
            "(BOT_CONFIG=/etc/hotline-bot/config.yaml, or serve --config FILE; see docs/configuration.md)"
        )
        log.critical("cannot start: no configuration")
        print(f"cannot start hotline-bot: {message}", file=sys.stderr)
        return 2
    config = _load(settings, args.config)
    log.info(
        "starting hotline-bot",
        extra={
            "version": bot.version(),
            "config": str(args.config or settings.config_path),
            "database": settings.database_url_redacted,
            "redis": bool(settings.redis_url),
            "wecom": "configured" if settings.wecom_configured else "not configured",
        },
    )
    if settings.sandbox == "off" and not settings.wecom_configured:
        log.warning(
            "WeCom is not configured and the sandbox is off: tickets are taken and deadlines kept, but no push, "
            "reminder or answer reaches anyone; set the app's or the robot's credentials (docs/configuration.md)"
        )
    # sandbox=True: with no WeCom settings, a fake WeCom and the /sandbox/ page (bot/sandbox)
    app = create_app(settings, config, calendar=_calendar(config), sandbox=True)
    app.on_startup.append(_freeze_startup_objects)
    app.on_shutdown.append(_stopping)
    try:
        loop = _event_loop(settings.event_loop)
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            # the start's last line, once the port is bound
            print=lambda _: log.info("listening on http://%s:%d", settings.host, settings.port),
            access_log=None,
            loop=loop,
        )
    except (OSError, DBAPIError) as exc:
        # an unreachable database or a port in use: say which, without a traceback
        log.critical("cannot start: %s", exc.__class__.__name__, extra={"error": str(exc).splitlines()[0]})
        print(f"cannot start hotline-bot: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    log.info("stopped")
    return 0


async def _stopping(_app: Any) -> None:
    log.info("stopping: no new connections; the work under way finishes")


async def _freeze_startup_objects(_app: object) -> None:
    """Moves everything allocated at start (modules, config, calendar tables) out of the garbage collector's sight:
    its full collections then scan only what requests allocate, which keeps them from stalling requests."""
    gc.collect()
    gc.freeze()


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings()
    path = args.file or settings.config_path
    config = load_config(path)
    _calendar(config)
    print(f"{path}: OK — {len(config.units)} units, {len(config.members)} members, {len(config.routing)} routing rules")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from store.db import head_revision, migrate_sync_url, pending_sql, revision_of

    settings = _settings()
    if args.sql:
        try:
            current, sql = pending_sql(settings.database_url)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"-- database {settings.database_url_redacted}: at {current or 'no revision'}, head {head_revision()}")
        print(sql or "-- nothing to do: the database is at the head")
        return 0
    if args.current:
        print(f"{revision_of(settings.database_url) or 'none'} (head: {head_revision()})")
        return 0
    migrate_sync_url(settings.database_url)
    print(f"database {settings.database_url_redacted} is up to date (revision {head_revision()})")
    return 0


async def _with_store(settings: Settings, body: Callable[[Any], Awaitable[int]]) -> int:
    """``body`` given a :class:`store.core.Store` on the configured database, migrated first; disposed of after."""
    from store.core import Store
    from store.db import create_engine, migrate

    engine = create_engine(settings.database_url)
    store = Store(engine)
    try:
        await migrate(engine)
        return await body(store)
    finally:
        await store.dispose()


async def _with_service(settings: Settings, config: BotConfig, body: Callable[[Any], Awaitable[int]]) -> int:
    from bot.app import serving_channels, sync_back
    from bot.domain.clock import SystemClock
    from bot.services.duty import DutyService
    from bot.services.tickets import TicketService
    from notifiers.pushes import Pusher

    async def with_service(store: Any) -> int:
        clock = SystemClock()
        service = TicketService(store, config, _calendar(config), clock, sync_back=sync_back(config))
        # an import pushes what is new (pushes.import in the config); the serving bot's outbox sends it, through the
        # channels it has (recorded in the database), whatever this process's environment has
        channels = await serving_channels(store, settings)
        service.add_hook(Pusher(store, config, clock, channels, duty=DutyService(store, config, clock)))
        return await body(service)

    return await _with_store(settings, with_service)


def cmd_import(args: argparse.Namespace) -> int:
    from bot.hotline.importer import ImportFormatError, ImportInterrupted, import_file

    settings = _settings()
    config = _load(settings, args.config)

    def announce(line: str) -> None:  # the columns ignored: said once, before the progress bar
        print(line, flush=True)

    async def body(service: Any) -> int:
        try:
            report = await import_file(
                args.file,
                service,
                config,
                batch_size=args.batch_size,
                dry_run=args.dry_run,
                progress=not args.quiet,
                sheet=args.sheet,
                announce=announce,
            )
        except ImportFormatError as exc:
            print(f"无法导入 {args.file}: {exc}", file=sys.stderr)
            return 2
        except ImportInterrupted as exc:
            print(exc.message(), file=sys.stderr)
            return 1
        notice = report.notice()
        for line in report.lines(limit=args.show_errors):
            if line != notice:
                print(line)
        return 1 if report.errors else 0

    if not args.file.exists():
        print(f"文件不存在: {args.file}", file=sys.stderr)
        return 2
    return asyncio.run(_with_service(settings, config, body))


def cmd_ticket(args: argparse.Namespace) -> int:
    from bot.services.tickets import TicketNotFound

    settings = _settings()
    config = _load(settings, args.config)

    async def body(service: Any) -> int:
        try:
            detail = await service.get(args.ticket_no)
        except TicketNotFound as exc:
            print(exc.message, file=sys.stderr)
            return 1
        print(
            json.dumps(
                {
                    "ticket": detail.ticket,
                    "deadlines": detail.deadlines,
                    "history": detail.history,
                    "notifications": detail.notifications,
                },
                ensure_ascii=False,
                indent=2,
                default=str,
            )
        )
        return 0

    return asyncio.run(_with_service(settings, config, body))


def cmd_outbox(args: argparse.Namespace) -> int:
    from bot.domain.clock import SystemClock
    from store import outbox as outbox_repo

    settings = _settings()

    async def body(store: Any) -> int:
        if args.action == "replay":
            async with store.transaction() as conn:
                count = await outbox_repo.replay(conn, args.ids or None, at=SystemClock().now())
            print(f"{count} message(s) queued again")
            return 0
        async with store.reading() as conn:
            counts = await outbox_repo.outbox_counts(conn)
            dead = await outbox_repo.dead_letters(conn)
        print("outbox: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if counts else "outbox: empty")
        for row in dead:
            print(f"  dead #{row['id']} {row['channel']} → {row['destination']}: {row['last_error']}")
        return 0

    return asyncio.run(_with_store(settings, body))


def cmd_purge(args: argparse.Namespace) -> int:
    from bot.domain.clock import SystemClock
    from bot.services.retention import purge

    settings = _settings()
    config = _load(settings, args.config)

    async def body(store: Any) -> int:
        purged = await purge(store, config.retention, SystemClock().now())
        kept = config.retention
        print(
            f"deleted {purged.inbox} inbox row(s) handled more than {kept.inbox_days} days ago, "
            f"{purged.outbox} outbox message(s) sent more than {kept.outbox_days} days ago and "
            f"{purged.notifications} notification record(s) older than {kept.notifications_days} days"
        )
        return 0

    return asyncio.run(_with_store(settings, body))


# --- the parser ------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotline-bot",
        description="hotline-bot: 12345 hotline tickets into WeCom work groups.",
        epilog=_env_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {bot.version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the bot (HTTP API, callbacks, workers)")
    serve.add_argument("--config", type=Path, help="the YAML config (default: $BOT_CONFIG)")
    serve.add_argument("--host", help="listen address (default: $BOT_HOST)")
    serve.add_argument("--port", type=int, help="listen port (default: $BOT_PORT)")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate a config file and report every error")
    check.add_argument("file", nargs="?", type=Path, help="the YAML config (default: $BOT_CONFIG)")
    check.set_defaults(func=cmd_check_config)

    migrate = sub.add_parser("migrate", help="apply database migrations ($DATABASE_URL) and exit")
    shown = migrate.add_mutually_exclusive_group()
    shown.add_argument(
        "--sql", action="store_true", help="print the SQL the migration would run (PostgreSQL), change nothing"
    )
    shown.add_argument("--current", action="store_true", help="print the database's revision and the head's")
    migrate.set_defaults(func=cmd_migrate)

    imp = sub.add_parser("import", help="import tickets from an .xlsx or .csv export (idempotent)")
    imp.add_argument("file", type=Path, help="the platform's export: .xlsx, .xls, .ods, .csv or .tsv")
    imp.add_argument("--config", type=Path, help="the YAML config (default: $BOT_CONFIG)")
    imp.add_argument("--sheet", help="worksheet name (default: the first)")
    imp.add_argument("--dry-run", action="store_true", help="validate every row, write nothing")
    imp.add_argument("--batch-size", type=_positive, default=1000, help="rows a transaction (default: 1000)")
    imp.add_argument("--show-errors", type=int, default=50, help="how many bad rows to list")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=cmd_import)

    ticket = sub.add_parser("ticket", help="show a ticket with its deadlines, history and notifications (JSON)")
    ticket.add_argument("ticket_no", help="the ticket's number (工单编号)")
    ticket.add_argument("--config", type=Path, help="the YAML config (default: $BOT_CONFIG)")
    ticket.set_defaults(func=cmd_ticket)

    outbox = sub.add_parser("outbox", help="show the outbox and its dead letters, or replay them")
    outbox.add_argument(
        "action", choices=["show", "replay"], nargs="?", default="show", help="show (default) or replay dead letters"
    )
    outbox.add_argument("ids", nargs="*", type=int, help="replay only these message ids")
    outbox.set_defaults(func=cmd_outbox)

    purge = sub.add_parser(
        "purge", help="delete handled inbox rows, sent outbox messages and notification records past their retention"
    )
    purge.add_argument("--config", type=Path, help="the YAML config, for its retention: (default: $BOT_CONFIG)")
    purge.set_defaults(func=cmd_purge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    except CalendarFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (OSError, DBAPIError) as exc:
        # an unreachable database, a path that cannot be written: say what, not a traceback
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
