"""``create_app(settings, config)``: the composition root, wiring store, services, workers and routes.

Resources live in ``cleanup_ctx`` and are released in reverse order on shutdown.
"""

from __future__ import annotations

from aiohttp import web

from bot.app.inbound import run_aibot_long_connection, run_wecom_inbound
from bot.app.resources import open_database, open_http_session, open_redis
from bot.app.scheduler import run_deadline_engine
from bot.app.senders import app_credentials, open_wecom_app, run_outbox_worker, run_pushes, userid_for_code
from bot.board import setup as setup_board
from bot.domain.clock import Clock, SystemClock
from bot.domain.workcal import CalendarOverrides, WorkCalendar
from bot.hotline import api as hotline_api
from bot.hotline import imports_api, openapi, reports_api
from bot.web import metrics, ops
from bot.web.errors import error_middleware
from bot.web.keys import (
    CALENDAR,
    CLOCK,
    CONFIG,
    SETTINGS,
)
from bot.web.metrics import METRICS
from bot.web.protocol import PROTOCOL_LOG
from bot.wecom import callbacks as wecom_callbacks
from bot.wecom.callbacks import WECOM_CALLBACKS
from config.model import BotConfig
from config.settings import Settings


def build_calendar(config: BotConfig) -> WorkCalendar:
    path = config.calendar.overrides_file
    overrides = CalendarOverrides.load(config.base_dir / path) if path else CalendarOverrides.empty()
    return WorkCalendar(overrides)


def create_app(
    settings: Settings,
    config: BotConfig,
    *,
    clock: Clock | None = None,
    calendar: WorkCalendar | None = None,
    run_workers: bool = True,
    sandbox: bool = False,
) -> web.Application:
    app = web.Application(
        middlewares=[ops.request_context, metrics.metrics_middleware, error_middleware],
        client_max_size=config.hotline.max_body_bytes,
        handler_args={"logger": PROTOCOL_LOG},  # a malformed request is one WARNING line, not a traceback
    )
    app[SETTINGS] = settings
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    app[CALENDAR] = calendar or build_calendar(config)
    app[METRICS] = metrics.Metrics(app)
    app.on_response_prepare.append(ops.answer_request_id)
    if sandbox:  # the WeCom sandbox, when no WeCom is configured: its fake's credentials from here on
        from bot.sandbox.web import attach as attach_sandbox  # only when it is on: production never loads it

        settings = attach_sandbox(app, settings, config)
    app.cleanup_ctx.append(open_database)
    app.cleanup_ctx.append(open_redis)
    app.cleanup_ctx.append(open_http_session)
    app.cleanup_ctx.append(open_wecom_app)  # the self-built app's client: the outbox's and the board's sign-in
    app.cleanup_ctx.append(run_pushes)
    callbacks = wecom_callbacks.configured(settings)
    if callbacks:
        app[WECOM_CALLBACKS] = callbacks
        app.add_routes(wecom_callbacks.routes_for(callbacks))
    if callbacks or settings.aibot_long_connection:
        app.cleanup_ctx.append(run_wecom_inbound)
    if settings.aibot_long_connection:
        app.cleanup_ctx.append(run_aibot_long_connection)  # after the inbox it feeds, before the outbox that uses it
    if run_workers:
        app.cleanup_ctx.append(run_outbox_worker)
        app.cleanup_ctx.append(run_deadline_engine)  # after the outbox it wakes: stopped before it
    app.add_routes(hotline_api.routes)
    imports_api.setup(app)  # POST /api/imports
    app.add_routes(reports_api.routes)  # GET /api/reports
    app.add_routes(ops.routes)
    app.add_routes(metrics.routes)
    app.add_routes(openapi.routes)
    # the board (/board/): signing in needs the app's credentials (the sandbox's fake ones, under make run)
    sign_in = (lambda code: userid_for_code(app, code)) if app_credentials(settings) else None
    setup_board(app, settings, sign_in)
    return app
