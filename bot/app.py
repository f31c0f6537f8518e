"""The application factory: ``create_app(settings, config)`` wires store, services, workers and routes.

Resources live in ``cleanup_ctx`` and are released in reverse order on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.domain.clock import Clock, SystemClock
from bot.domain.events import EnterChat, InboundEvent
from bot.domain.workcal import CalendarOverrides, WorkCalendar
from bot.hotline import api as hotline_api
from bot.hotline import openapi
from bot.hotline.syncback import HotlineSyncSender
from bot.services import retention
from bot.services.deadline_engine import DeadlineEngine, TickResult
from bot.services.duty import DutyService
from bot.services.inbox import InboundProcessor, describe
from bot.services.ingest import IngestBatcher
from bot.services.retention import Purged
from bot.services.tickets import SYNC_CHANNEL, TicketService
from bot.web import ops
from bot.web.errors import error_middleware
from bot.web.keys import (
    AIBOT_LEADER,
    AIBOT_LEADER_TASK,
    AIBOT_LINK,
    CALENDAR,
    CLOCK,
    CONFIG,
    DEADLINE_ENGINE,
    DEADLINE_LEADER,
    DEADLINE_LEADER_TASK,
    DEADLINE_SCHEDULER,
    DUTY,
    INGEST,
    LIVENESS,
    REDIS,
    SETTINGS,
    STORE,
    TICKETS,
    WECOM_INBOUND,
)
from bot.web.ops import METRICS
from bot.web.protocol import PROTOCOL_LOG
from bot.wecom import callbacks as wecom_callbacks
from bot.wecom.callbacks import WECOM_CALLBACKS
from bot.wecom.client import ResponseUrlClient, WebhookClient, WeComClient
from bot.wecom.longconn import AIBOT_CONNECTION, AibotLongConnection, EventHook
from bot.wecom.parse import AIBOT_SOURCE, read_stored
from bot.wecom.tokens import MemoryTokenStore, RedisTokenStore, TokenStore
from config.model import BotConfig
from config.settings import Settings
from handlers.replies import Channels
from handlers.router import CommandRouter
from notifiers import notices
from notifiers.aibot_ws import AIBOT_WS, AibotWsSender
from notifiers.keys import PUSHES
from notifiers.outbox import OutboxWorker, Sender
from notifiers.pushes import Pusher
from notifiers.ratelimit import FallbackRateLimiter, MemoryRateLimiter, RateLimiter, RedisRateLimiter
from notifiers.wecom import AIBOT_CARD_UPDATE, AibotCardUpdateSender, wecom_senders
from store.core import Store
from store.db import create_engine, migrate
from store.leader import Leader
from store.liveness import Liveness, process_id
from store.redis import create_redis

log = logging.getLogger(__name__)

HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
OUTBOX = web.AppKey("outbox", OutboxWorker)
OUTBOX_STOP_GRACE = 15.0  # seconds; a pass is at most 10 sends, each bounded by its client's timeouts
DIGEST_CHECK = 60.0  # seconds between looks for a digest period that has begun (flush is a no-op otherwise)
RETENTION_EVERY = 3600.0  # seconds between purges of what is past its retention (config: retention)
RETENTION_FIRST = 300.0  # the first purge, this long after start (a process restarted hourly still purges)
RATE_LIMITER = web.AppKey[RateLimiter]("rate_limiter")


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
        middlewares=[ops.metrics_middleware, error_middleware],
        client_max_size=config.hotline.max_body_bytes,
        handler_args={"logger": PROTOCOL_LOG},  # a malformed request is one WARNING line, not a traceback
    )
    app[SETTINGS] = settings
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    app[CALENDAR] = calendar or build_calendar(config)
    app[METRICS] = ops.Metrics()
    if sandbox:  # the WeCom sandbox, when no WeCom is configured: its fake's credentials from here on
        from bot.sandbox.web import attach as attach_sandbox  # only when it is on: production never loads it

        settings = attach_sandbox(app, settings, config)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_http_session)
    app.cleanup_ctx.append(_pushes)
    callbacks = wecom_callbacks.configured(settings)
    if callbacks:
        app[WECOM_CALLBACKS] = callbacks
        app.add_routes(wecom_callbacks.routes_for(callbacks))
    if callbacks or settings.aibot_long_connection:
        app.cleanup_ctx.append(_wecom_inbound)
    if settings.aibot_long_connection:
        app.cleanup_ctx.append(_aibot_long_connection)  # after the inbox it feeds, before the outbox that uses it
    if run_workers:
        app.cleanup_ctx.append(_outbox_worker)
        app.cleanup_ctx.append(_deadline_engine)  # after the outbox it wakes: stopped before it
    app.add_routes(hotline_api.routes)
    app.add_routes(ops.routes)
    app.add_routes(openapi.routes)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS].database_url)
    await migrate(engine)
    store = Store(engine)
    app[STORE] = store
    # this process's id (the lease owner of its inbox and outbox rows) and its liveness lock (store.liveness)
    liveness = Liveness(engine, process_id())
    await liveness.start()
    app[LIVENESS] = liveness
    app[TICKETS] = TicketService(store, app[CONFIG], app[CALENDAR], app[CLOCK], sync_url=app[CONFIG].hotline.sync_url)
    app[INGEST] = IngestBatcher(app[TICKETS])
    app[DUTY] = DutyService(store, app[CONFIG], app[CLOCK])
    yield
    await app[INGEST].close()
    await liveness.close()
    await store.close()
    await engine.dispose()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis_url
    client = create_redis(url) if url else None
    app[REDIS] = client
    yield
    if client is not None:
        await client.aclose()


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    session = aiohttp.ClientSession()
    app[HTTP_SESSION] = session
    yield
    await session.close()


async def _outbox_worker(app: web.Application) -> AsyncIterator[None]:
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
    senders.update(_wecom_senders(app))
    liveness = app[LIVENESS]
    worker = OutboxWorker(
        app[STORE],
        senders,
        app[CLOCK],
        owner=liveness.owner,
        liveness=liveness,
        on_unsure=app[METRICS].unsure_send,
    )
    app[OUTBOX] = worker
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


def push_channels(settings: Settings) -> notices.Channels:
    """What the bot's own messages (pushes, reminders) can be sent through in this deployment (the outbox's senders
    serve the same channels)."""
    return notices.Channels(app=_app_credentials(settings), aibot_ws=settings.aibot_long_connection)


async def _pushes(app: web.Application) -> AsyncIterator[None]:
    """Pushes into the work groups (:mod:`notifiers.pushes`): the pusher follows every ticket change in its
    transaction (a hook of the ticket service) and wakes the outbox after the commit. Its digests are flushed by the
    scheduler of :func:`_deadline_engine` (with run_workers), in the one process that runs the engine."""
    pusher = Pusher(
        app[STORE],
        app[CONFIG],
        app[CLOCK],
        push_channels(app[SETTINGS]),
        duty=app[DUTY],
        wake=lambda: app[OUTBOX].wake() if OUTBOX in app else None,
    )
    app[PUSHES] = pusher
    app[TICKETS].add_hook(pusher)
    yield


def _wecom_senders(app: web.Application) -> dict[str, Sender]:
    """WeCom's channels for the outbox. Limits and access tokens are shared through Redis when it is configured,
    so several bot processes together still keep to WeCom's per-member and per-robot limits. Without app
    credentials only the robot channels (webhook, response_url) are served; app messages stay queued."""
    settings, redis, session, clock = app[SETTINGS], app[REDIS], app[HTTP_SESSION], app[CLOCK]
    base = settings.wecom_api_base
    limiter = _rate_limiter(app)
    app_client = None
    if settings.wecom_corp_id and settings.wecom_app_secret and settings.wecom_app_agent_id:
        seconds = lambda: clock.now().timestamp()  # noqa: E731 - the clients take a float clock
        tokens: TokenStore = RedisTokenStore(redis, clock=seconds) if redis is not None else MemoryTokenStore()
        app_client = WeComClient(
            session,
            base_url=base,
            corp_id=settings.wecom_corp_id,
            secret=settings.wecom_app_secret,
            agent_id=int(settings.wecom_app_agent_id),
            tokens=tokens,
            clock=seconds,
        )
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


def _rate_limiter(app: web.Application) -> RateLimiter:
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


def _app_credentials(settings: Settings) -> bool:
    """Whether the self-built app can send (corp id, secret, agent id): messages to any member."""
    return bool(settings.wecom_corp_id and settings.wecom_app_secret and settings.wecom_app_agent_id)


async def _wecom_inbound(app: web.Application) -> AsyncIterator[None]:
    """WeCom callbacks accepted by the routes are processed here, after their answer; rows a crash left pending
    are recovered in the background at start."""
    sources: set[str] = set()
    if WECOM_CALLBACKS in app:
        callbacks = app[WECOM_CALLBACKS]
        sources.update(callbacks)
    if app[SETTINGS].aibot_long_connection:
        sources.add(AIBOT_SOURCE)
    router = CommandRouter(
        service=app[TICKETS],
        config=app[CONFIG],
        clock=app[CLOCK],
        channels=Channels(app=_app_credentials(app[SETTINGS]), aibot_ws=app[SETTINGS].aibot_long_connection),
        wake=lambda: app[OUTBOX].wake() if OUTBOX in app else None,
        outbox=lambda: app.get(OUTBOX),
        limiter=_rate_limiter(app),
        duty=app[DUTY],
    )
    liveness = app[LIVENESS]
    processor = InboundProcessor(
        app[STORE],
        router,
        app[CLOCK],
        sources=sorted(sources),
        read=read_stored,
        owner=liveness.owner,
        liveness=liveness,
    )
    app[WECOM_INBOUND] = processor
    processor.start()
    yield
    await processor.close()


# a tick under way at shutdown may finish (its batch commits) for this long before it is cancelled (and rolled back)
ENGINE_STOP_GRACE = 10.0


class EngineJob:
    """The scheduler's job: a tick of the deadline engine at the app's clock, only while this process leads (one
    engine at a time). A tick still running when the next is due is not doubled (the scheduler's max_instances=1
    too); at shutdown the tick under way may finish."""

    def __init__(self, engine: DeadlineEngine, leader: Leader, clock: Clock) -> None:
        self.engine = engine
        self.leader = leader
        self.clock = clock
        self._running: asyncio.Task[TickResult | None] | None = None

    async def run(self) -> TickResult | None:
        if self._running is not None and not self._running.done():
            return None
        if not await self.leader.holds():
            return None
        self._running = asyncio.create_task(self._tick(), name="deadline-tick")
        return await asyncio.shield(self._running)

    async def _tick(self) -> TickResult | None:
        try:
            return await self.engine.tick(self.clock.now())
        except Exception:  # the next tick tries again: nothing was committed of a tick that failed
            log.exception("deadline engine: the tick failed; the next one tries again")
            return None

    async def close(self, grace: float = ENGINE_STOP_GRACE) -> None:
        task = self._running
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _deadline_engine(app: web.Application) -> AsyncIterator[None]:
    """The deadline engine (:mod:`bot.services.deadline_engine`), ticked by APScheduler every ``nags.tick_seconds``,
    the pushes' digest flush and the hourly retention purge, in the one process that holds the ``deadline-engine`` lock
    (:class:`store.leader.Leader`: a PostgreSQL advisory lock; on SQLite the process leads). When that process dies,
    another takes over at its next try (within seconds). The messages go through the outbox, which a tick wakes."""
    config, settings = app[CONFIG], app[SETTINGS]
    channels = push_channels(settings)
    engine = DeadlineEngine(
        app[STORE],
        config,
        app[CALENDAR],
        app[CLOCK],
        duty=app[DUTY],
        channels=channels,
        wake=lambda: app[OUTBOX].wake() if OUTBOX in app else None,
    )
    leader = Leader(app[STORE].engine, "deadline-engine")
    job = EngineJob(engine, leader, app[CLOCK])
    scheduler = AsyncIOScheduler()
    scheduler.add_job(
        job.run,
        "interval",
        seconds=config.nags.tick_seconds,
        id="deadline-engine",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
    )
    scheduler.add_job(
        partial(_flush_digests, app[PUSHES], leader),
        "interval",
        seconds=DIGEST_CHECK,
        id="digest-flush",
        coalesce=True,
        max_instances=1,
    )
    scheduler.add_job(
        partial(_purge, app[STORE], config, app[CLOCK], leader),
        "interval",
        seconds=RETENTION_EVERY,
        next_run_time=datetime.now(UTC) + timedelta(seconds=RETENTION_FIRST),
        id="retention",
        coalesce=True,
        max_instances=1,
    )
    app[DEADLINE_ENGINE] = engine
    app[DEADLINE_LEADER] = leader
    app[DEADLINE_SCHEDULER] = scheduler
    task = asyncio.create_task(_lead(leader, _hold), name="deadline-leader")
    app[DEADLINE_LEADER_TASK] = task
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0)  # the scheduler shuts down in the loop's next step
    await job.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _flush_digests(pusher: Pusher, leader: Leader) -> None:
    """Every :data:`DIGEST_CHECK` seconds, in the process that runs the engine: the digests of a period that has
    begun (a no-op otherwise)."""
    if not await leader.holds():
        return
    try:
        await pusher.flush()
    except Exception:
        log.exception("digest flush failed; trying again at the next check")


async def _purge(store: Store, config: BotConfig, clock: Clock, leader: Leader) -> Purged | None:
    """Every :data:`RETENTION_EVERY` seconds, in the process that runs the engine: what is past its retention goes
    (:mod:`bot.services.retention`)."""
    if not await leader.holds():
        return None
    try:
        return await retention.purge(store, config.retention, clock.now())
    except Exception:
        log.exception("retention: the purge failed; trying again at the next run")
        return None


async def _hold() -> None:
    """The leader's work: to hold the lock until cancelled (the scheduler's job asks the leader before each tick)."""
    await asyncio.Event().wait()


# kicked off the robot by a newer connection: try again after this long. When it was one of our own processes taking
# over, the guard (the leadership) keeps the old one away; an outsider with the same credentials takes turns with us
AIBOT_KICKED_RETRY = 60.0


async def _aibot_long_connection(app: web.Application) -> AsyncIterator[None]:
    """The intelligent robot's long connection (WECOM_AIBOT_BOT_ID and WECOM_AIBOT_SECRET): callbacks arrive over a
    WebSocket the bot opens and go through the inbox like the callback URL's; the outbox pushes through it. WeCom
    keeps one connection per robot, so of several bot processes only the leader (:class:`store.leader.Leader`, a
    PostgreSQL advisory lock) connects; another takes over when it dies. The connection asks the leader before
    every (re)connect and subscribe, so an old leader does not kick the new one; kicked all the same, it tries again
    after :data:`AIBOT_KICKED_RETRY`. ``office.welcome_text`` answers an ``enter_chat``, as in callback mode."""
    settings = app[SETTINGS]
    bot_id = settings.wecom_aibot_bot_id or ""
    leader = Leader(app[STORE].engine, f"aibot-long-connection:{bot_id}")
    connection = AibotLongConnection(
        app[HTTP_SESSION],
        bot_id=bot_id,
        secret=settings.wecom_aibot_secret or "",
        url=settings.wecom_aibot_ws_url,
        inbound=app[WECOM_INBOUND],
        clock=app[CLOCK],
        kicked_retry=AIBOT_KICKED_RETRY,
        may_connect=leader.holds,
    )
    welcome = app[CONFIG].office.welcome_text
    if welcome:
        connection.on_event = _aibot_welcome(connection, welcome)
    app[AIBOT_CONNECTION] = connection
    app[AIBOT_LINK] = connection  # what the readiness probe reads of it
    app[AIBOT_LEADER] = leader
    task = asyncio.create_task(_lead(leader, connection.run), name="aibot-leader")
    app[AIBOT_LEADER_TASK] = task
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await connection.close()  # what was received is stored (a few seconds' grace) before the inbox closes


def _aibot_welcome(connection: AibotLongConnection, text: str) -> EventHook:
    """The long connection's event hook: the welcome for an ``enter_chat`` (``aibot_respond_welcome_msg``, which
    WeCom takes once, within 5 s). A welcome that fails is logged, never raised."""

    async def on_event(event: InboundEvent, req_id: str) -> None:
        if not isinstance(event, EnterChat) or not req_id:
            return
        try:
            await connection.respond_welcome(req_id, {"msgtype": "text", "text": {"content": text}})
        except Exception as exc:
            log.warning(
                "aibot %s: welcome not sent for %s: %s: %s",
                connection.bot_id,
                describe(event),
                type(exc).__name__,
                exc,
                extra={"dedup_key": event.dedup_key},
            )

    return on_event


async def _lead(leader: Leader, work: Callable[[], Awaitable[None]]) -> None:
    """Takes part in ``leader``'s election until cancelled. If it ends otherwise, /healthz reports it."""
    try:
        await leader.run(work)
    except Exception:
        log.exception("%s stopped: this process no longer takes part in the election; restart it", leader.name)
    else:
        log.error("%s stopped: this process no longer takes part in the election; restart it", leader.name)
