"""The app's shared resources, each a ``cleanup_ctx``: the database with the services on it, Redis, the HTTP
session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot.services.duty import DutyService
from bot.services.ingest import IngestBatcher
from bot.services.tickets import TicketService
from bot.web.keys import (
    CALENDAR,
    CLOCK,
    CONFIG,
    DUTY,
    INGEST,
    LIVENESS,
    REDIS,
    SETTINGS,
    STORE,
    TICKETS,
)
from config.model import BotConfig
from notifiers.hotline import HotlineSync
from store.core import Store
from store.db import create_engine, migrate
from store.liveness import Liveness, process_id
from store.redis import create_redis

HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)


async def open_database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS].database_url)
    await migrate(engine)
    store = Store(engine)
    app[STORE] = store
    # this process's id (the lease owner of its inbox and outbox rows) and its liveness lock (store.liveness)
    liveness = Liveness(engine, process_id())
    await liveness.start()
    app[LIVENESS] = liveness
    app[TICKETS] = TicketService(store, app[CONFIG], app[CALENDAR], app[CLOCK], sync_back=sync_back(app[CONFIG]))
    app[INGEST] = IngestBatcher(app[TICKETS])
    app[DUTY] = DutyService(store, app[CONFIG], app[CLOCK])
    yield
    await app[INGEST].close()
    await liveness.close()
    await store.dispose()


async def open_redis(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis_url
    client = create_redis(url) if url else None
    app[REDIS] = client
    yield
    if client is not None:
        await client.aclose()


async def open_http_session(app: web.Application) -> AsyncIterator[None]:
    session = aiohttp.ClientSession()
    app[HTTP_SESSION] = session
    yield
    await session.close()


def sync_back(config: BotConfig) -> HotlineSync | None:
    """The ticket service's sync-back to the hotline platform, when a sync URL is configured."""
    return HotlineSync(config.hotline.sync_url) if config.hotline.sync_url else None
