"""Receiving: WeCom's callbacks and the intelligent robot's long connection, into the inbox and the command router."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.app.leading import lead
from bot.app.resources import HTTP_SESSION
from bot.app.senders import OUTBOX, push_channels, rate_limiter
from bot.domain.events import EnterChat, InboundEvent
from bot.services.inbox import InboundProcessor
from bot.services.sinks import describe
from bot.web.keys import (
    AIBOT_LEADER,
    AIBOT_LEADER_TASK,
    AIBOT_LINK,
    CLOCK,
    CONFIG,
    DUTY,
    LIVENESS,
    SETTINGS,
    STORE,
    TICKETS,
    WECOM_INBOUND,
)
from bot.wecom.callbacks import WECOM_CALLBACKS
from bot.wecom.longconn import AIBOT_CONNECTION, AibotLongConnection, EventHook
from bot.wecom.parse import AIBOT_SOURCE, read_stored
from handlers.router import CommandRouter
from notifiers.aibot_ws import welcome_body
from notifiers.replies import ReplyOutbox
from store.leader import Leader

log = logging.getLogger(__name__)


async def run_wecom_inbound(app: web.Application) -> AsyncIterator[None]:
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
        channels=push_channels(app[SETTINGS]),
        board_url=app[SETTINGS].public_url,
        send=ReplyOutbox(
            app[STORE],
            push_channels(app[SETTINGS]),
            wake=lambda: app[OUTBOX].wake() if OUTBOX in app else None,
            outbox=lambda: app.get(OUTBOX),
        ),
        limiter=rate_limiter(app),
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


# kicked off the robot by a newer connection: try again after this long. When it was one of our own processes taking
# over, the guard (the leadership) keeps the old one away; an outsider with the same credentials takes turns with us
AIBOT_KICKED_RETRY = 60.0


async def run_aibot_long_connection(app: web.Application) -> AsyncIterator[None]:
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
        connection.on_event = aibot_welcome(connection, welcome)
    app[AIBOT_CONNECTION] = connection
    app[AIBOT_LINK] = connection  # what the readiness probe reads of it
    app[AIBOT_LEADER] = leader
    task = asyncio.create_task(lead(leader, connection.run), name="aibot-leader")
    app[AIBOT_LEADER_TASK] = task
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await connection.close()  # what was received is stored (a few seconds' grace) before the inbox closes


def aibot_welcome(connection: AibotLongConnection, text: str) -> EventHook:
    """The long connection's event hook: the welcome for an ``enter_chat`` (``aibot_respond_welcome_msg``, which
    WeCom takes once, within 5 s). A welcome that fails is logged, never raised."""

    async def on_event(event: InboundEvent, req_id: str) -> None:
        if not isinstance(event, EnterChat) or not req_id:
            return
        try:
            await connection.respond_welcome(req_id, welcome_body(text))
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
