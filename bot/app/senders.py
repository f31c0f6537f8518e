"""Sending: the outbox worker and its channels (the hotline's sync-back, WeCom's), the pushes into the work groups,
and the one rate limiter they share."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web

from bot.app.resources import HTTP_SESSION
from bot.services.channels import Channels
from bot.services.ratelimit import FallbackRateLimiter, MemoryRateLimiter, RateLimiter, RedisRateLimiter
from bot.web.keys import (
    CLOCK,
    CONFIG,
    DUTY,
    LIVENESS,
    REDIS,
    SETTINGS,
    STORE,
    TICKETS,
)
from bot.web.metrics import METRICS
from bot.wecom.client import ResponseUrlClient, WebhookClient, WeComClient
from bot.wecom.longconn import AIBOT_CONNECTION
from bot.wecom.tokens import MemoryTokenStore, RedisTokenStore, TokenStore
from config.settings import Settings
from notifiers.aibot_ws import AIBOT_WS, AibotWsSender
from notifiers.hotline import SYNC_CHANNEL, HotlineSyncSender
from notifiers.keys import PUSHES
from notifiers.outbox import OutboxWorker, Sender
from notifiers.pushes import Pusher
from notifiers.reviews import ReviewNotices
from notifiers.wecom import AIBOT_CARD_UPDATE, AibotCardUpdateSender, wecom_senders
from store import deployment as deployment_repo
from store.core import Store

log = logging.getLogger(__name__)


OUTBOX = web.AppKey("outbox", OutboxWorker)
OUTBOX_STOP_GRACE = 15.0  # seconds; a pass is at most 10 sends, each bounded by its client's timeouts
RATE_LIMITER = web.AppKey[RateLimiter]("rate_limiter")
WECOM_APP_CLIENT = web.AppKey[WeComClient | None]("wecom_app_client")  # the self-built app (wecom_app_client)


async def run_outbox_worker(app: web.Application) -> AsyncIterator[None]:
    senders: dict[str, Sender] = {}
    secret = app[SETTINGS].hotline_ingest_secret
    if app[CONFIG].hotline.sync_url and secret is not None:
        senders[SYNC_CHANNEL] = HotlineSyncSender(
            app[HTTP_SESSION],
            secret.get_secret_value(),
            app[CLOCK],
            timeout=app[CONFIG].hotline.sync_timeout_seconds,
        )
    elif app[CONFIG].hotline.sync_url:
        # the changes stay queued: they go out once a process with the secret runs
        log.warning("hotline.sync_url is set but HOTLINE_INGEST_SECRET is not: sync-back is paused")
    senders.update(wecom_channel_senders(app))
    liveness = app[LIVENESS]
    worker = OutboxWorker(
        app[STORE],
        senders,
        app[CLOCK],
        owner=liveness.owner,
        liveness=liveness,
        on_unsure=app[METRICS].unsure_send,
        on_sent=app[METRICS].sent_one,
        on_error=app[METRICS].send_failed,
    )
    app[OUTBOX] = worker
    # what a command-line import addresses its pushes to: the channels this outbox sends through
    await record_channels(app[STORE], push_channels(app[SETTINGS]), app[CLOCK].now())
    task = asyncio.create_task(worker.run_forever(), name="outbox")
    yield
    # let a pass under way finish (its sends recorded) rather than cut it off; cancel only if it hangs
    worker.stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), OUTBOX_STOP_GRACE)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def push_channels(settings: Settings) -> Channels:
    """What the bot's own messages (pushes, reminders) can be sent through in this deployment (the outbox's senders
    serve the same channels)."""
    return Channels(app=app_credentials(settings), aibot_ws=settings.aibot_long_connection)


CHANNELS_FACT = "channels"


async def record_channels(store: Store, channels: Channels, at: datetime) -> None:
    """Tells the other processes on the database which channels this serving bot's outbox sends through."""
    async with store.transaction() as conn:
        await deployment_repo.record(conn, CHANNELS_FACT, dataclasses.asdict(channels), at=at)


async def serving_channels(store: Store, settings: Settings) -> Channels:
    """The channels a push written by this process should be addressed to: those the serving bot's outbox sends
    through (it recorded them at its start), whatever this process's own environment has; this process's own when
    no bot has served on the database yet (a command-line import beside a serving bot, say, whose environment
    lacks the WeCom credentials)."""
    async with store.reading() as conn:
        recorded = await deployment_repo.read(conn, CHANNELS_FACT)
    if recorded is None:
        return push_channels(settings)
    known = {f.name for f in dataclasses.fields(Channels)}
    return Channels(**{k: bool(v) for k, v in recorded.items() if k in known})


async def run_pushes(app: web.Application) -> AsyncIterator[None]:
    """Pushes into the work groups (:mod:`notifiers.pushes`) and the notices of a return's review
    (:mod:`notifiers.reviews`): both follow every ticket change in its transaction (hooks of the ticket service) and
    wake the outbox after the commit. Its digests are flushed by the
    scheduler of :func:`run_deadline_engine` (with run_workers), in the one process that runs the engine."""
    pusher = Pusher(
        app[STORE],
        app[CONFIG],
        app[CLOCK],
        push_channels(app[SETTINGS]),
        duty=app[DUTY],
        wake=lambda: app[OUTBOX].wake() if OUTBOX in app else None,
        board_url=app[SETTINGS].public_url,
    )
    app[PUSHES] = pusher
    app[TICKETS].add_hook(pusher)
    app[TICKETS].add_hook(
        ReviewNotices(
            app[CONFIG],
            app[CLOCK],
            push_channels(app[SETTINGS]),
            wake=lambda: app[OUTBOX].wake() if OUTBOX in app else None,
        )
    )
    yield


def wecom_channel_senders(app: web.Application) -> dict[str, Sender]:
    """WeCom's channels for the outbox. Limits and access tokens are shared through Redis when it is configured,
    so several bot processes together still keep to WeCom's per-member and per-robot limits. Without app
    credentials only the robot channels (webhook, response_url) are served; app messages stay queued."""
    settings, session, clock = app[SETTINGS], app[HTTP_SESSION], app[CLOCK]
    base = settings.wecom_api_base
    limiter = rate_limiter(app)
    app_client = wecom_app_client(app)
    senders = wecom_senders(
        limiter=limiter,
        clock=clock,
        app=app_client,
        appchat=app_client,
        webhook=WebhookClient(session, base_url=base),
        response_url=ResponseUrlClient(session, base_url=base),
    )
    if AIBOT_CONNECTION in app:
        senders[AIBOT_WS] = AibotWsSender(app[AIBOT_CONNECTION], limiter, clock)
        senders[AIBOT_CARD_UPDATE] = AibotCardUpdateSender(app[AIBOT_CONNECTION])
    return senders


def wecom_app_client(app: web.Application) -> WeComClient | None:
    """The self-built app's client (None without its credentials), made once the app has started (the sandbox's
    fake WeCom is listening by then) and shared: by the outbox's senders and the board's sign-in. Its access token
    is kept in Redis when Redis is configured, so that every bot process uses the same one."""
    if WECOM_APP_CLIENT not in app:
        settings, redis, clock = app[SETTINGS], app[REDIS], app[CLOCK]
        client = None
        if app_credentials(settings):
            assert settings.wecom_corp_id
            assert settings.wecom_app_secret
            assert settings.wecom_app_agent_id
            seconds = lambda: clock.now().timestamp()  # noqa: E731 - the clients take a float clock
            tokens: TokenStore = RedisTokenStore(redis, clock=seconds) if redis is not None else MemoryTokenStore()
            client = WeComClient(
                app[HTTP_SESSION],
                base_url=settings.wecom_api_base,
                corp_id=settings.wecom_corp_id,
                secret=settings.wecom_app_secret,
                agent_id=int(settings.wecom_app_agent_id),
                tokens=tokens,
                clock=seconds,
            )
        app[WECOM_APP_CLIENT] = client
    return app[WECOM_APP_CLIENT]


async def open_wecom_app(app: web.Application) -> AsyncIterator[None]:
    """Makes the self-built app's client at start (after the HTTP session, and the sandbox's fake WeCom)."""
    wecom_app_client(app)
    yield


async def userid_for_code(app: web.Application, code: str) -> str | None:
    """The board's sign-in: the member behind a web authorisation's code (bot.board.auth)."""
    client = wecom_app_client(app)
    if client is None:
        raise RuntimeError("no WeCom app credentials: nobody can sign in")
    return await client.userid_for_code(code)


def rate_limiter(app: web.Application) -> RateLimiter:
    """The app's one limiter, for WeCom's send limits and the commands' flood limit: Redis's (shared by every bot
    process) when Redis is configured, with this process's share of each limit while Redis is away; else this
    process's."""
    if RATE_LIMITER not in app:
        redis, liveness = app[REDIS], app[LIVENESS]
        app[RATE_LIMITER] = (
            FallbackRateLimiter(RedisRateLimiter(redis), lambda: liveness.processes)
            if redis is not None
            else MemoryRateLimiter()
        )
    return app[RATE_LIMITER]


def app_credentials(settings: Settings) -> bool:
    """Whether the self-built app can send (corp id, secret, agent id): messages to any member."""
    return bool(settings.wecom_corp_id and settings.wecom_app_secret and settings.wecom_app_agent_id)
