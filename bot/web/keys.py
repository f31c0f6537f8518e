"""Typed keys for what the application holds (aiohttp ``AppKey``): the settings, the clock, the store and the
services. A key whose value belongs to an adapter lives with it (``bot.wecom.callbacks.WECOM_CALLBACKS``,
``bot.wecom.longconn.AIBOT_CONNECTION``, ``notifiers.keys.PUSHES``, ``bot.web.metrics.METRICS``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from bot.domain.clock import Clock
from bot.domain.workcal import WorkCalendar
from config.model import BotConfig
from config.settings import Settings

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.services.deadline_engine import DeadlineEngine
    from bot.services.duty import DutyService
    from bot.services.inbox import InboundProcessor
    from bot.services.ingest import IngestBatcher
    from bot.services.tickets import TicketService
    from store.core import Store
    from store.leader import Leader
    from store.liveness import Liveness

SETTINGS = web.AppKey("settings", Settings)
CONFIG = web.AppKey("config", BotConfig)
CLOCK = web.AppKey("clock", Clock)
CALENDAR = web.AppKey("calendar", WorkCalendar)
STORE: web.AppKey[Store] = web.AppKey("store")
LIVENESS: web.AppKey[Liveness] = web.AppKey("liveness")  # this process's id and lock; the database's outages
TICKETS: web.AppKey[TicketService] = web.AppKey("tickets")
INGEST: web.AppKey[IngestBatcher] = web.AppKey("ingest")
DUTY: web.AppKey[DutyService] = web.AppKey("duty")  # who is on duty: the roster and its takeovers
REDIS: web.AppKey[Any] = web.AppKey("redis")  # redis.asyncio.Redis, or None without REDIS_URL
# the inbox of WeCom's callbacks and long connection, present when one of them is configured
WECOM_INBOUND: web.AppKey[InboundProcessor] = web.AppKey("wecom_inbound")


class LinkStatus(Protocol):
    """What the readiness probe reads of a long connection."""

    @property
    def state(self) -> str: ...

    @property
    def subscribed(self) -> bool: ...


# the intelligent robot's long connection as the probe sees it, when configured, and the election of the one process
# that holds it
AIBOT_LINK: web.AppKey[LinkStatus] = web.AppKey("aibot_link")
AIBOT_LEADER: web.AppKey[Leader] = web.AppKey("aibot_leader")
AIBOT_LEADER_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("aibot_leader_task")  # done: the election stopped
# the deadline engine, its scheduler (a tick every nags.tick_seconds) and the election of the one process that ticks
DEADLINE_ENGINE: web.AppKey[DeadlineEngine] = web.AppKey("deadline_engine")
DEADLINE_SCHEDULER: web.AppKey[AsyncIOScheduler] = web.AppKey("deadline_scheduler")
DEADLINE_LEADER: web.AppKey[Leader] = web.AppKey("deadline_leader")
DEADLINE_LEADER_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("deadline_leader_task")
