"""The scheduler (APScheduler) of the process that leads: deadline engine ticks, digest flushes, the scheduled reports,
retention purges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app.leading import hold, lead
from bot.app.senders import OUTBOX, push_channels
from bot.domain.clock import Clock
from bot.services import retention
from bot.services.apart import Apart
from bot.services.deadline_engine import DeadlineEngine, TickResult
from bot.services.retention import Purged
from bot.web.keys import (
    CALENDAR,
    CLOCK,
    CONFIG,
    DEADLINE_ENGINE,
    DEADLINE_LEADER,
    DEADLINE_LEADER_TASK,
    DEADLINE_SCHEDULER,
    DUTY,
    SETTINGS,
    STORE,
)
from config.model import BotConfig
from notifiers.keys import PUSHES
from notifiers.pushes import Pusher
from notifiers.reports import ScheduledReports
from notifiers.rows import EngineRows
from store.core import Store
from store.leader import Leader

log = logging.getLogger(__name__)


REPORTS_CHECK = 60.0  # seconds between looks for a scheduled report whose time has come
DIGEST_CHECK = 60.0  # seconds between looks for a digest period that has begun (flush is a no-op otherwise)
RETENTION_EVERY = 3600.0  # seconds between purges of what is past its retention (config: retention)
RETENTION_FIRST = 300.0  # the first purge, this long after start (a process restarted hourly still purges)
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


async def run_deadline_engine(app: web.Application) -> AsyncIterator[None]:
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
        rows=EngineRows(config, channels),
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
        partial(flush_digests, app[PUSHES], leader),
        "interval",
        seconds=DIGEST_CHECK,
        id="digest-flush",
        coalesce=True,
        max_instances=1,
    )
    scheduler.add_job(
        partial(purge_if_leader, app[STORE], config, app[CLOCK], leader),
        "interval",
        seconds=RETENTION_EVERY,
        next_run_time=datetime.now(UTC) + timedelta(seconds=RETENTION_FIRST),
        id="retention",
        coalesce=True,
        max_instances=1,
    )
    # the 通报's chart is drawn in a process beside this one, started at the first 通报 (bot.services.apart)
    apart = Apart()
    reports = ScheduledReports(
        app[STORE],
        config,
        app[CALENDAR],
        app[CLOCK],
        channels,
        wake=lambda: app[OUTBOX].wake() if OUTBOX in app else None,
        apart=apart,
    )
    scheduler.add_job(
        partial(queue_reports, reports, leader),
        "interval",
        seconds=REPORTS_CHECK,
        id="reports",
        coalesce=True,
        max_instances=1,
    )
    app[DEADLINE_ENGINE] = engine
    app[DEADLINE_LEADER] = leader
    app[DEADLINE_SCHEDULER] = scheduler
    task = asyncio.create_task(lead(leader, hold), name="deadline-leader")
    app[DEADLINE_LEADER_TASK] = task
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0)  # the scheduler shuts down in the loop's next step
    await job.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await apart.close()


async def flush_digests(pusher: Pusher, leader: Leader) -> None:
    """Every :data:`DIGEST_CHECK` seconds, in the process that runs the engine: the digests of a period that has
    begun (a no-op otherwise)."""
    if not await leader.holds():
        return
    try:
        await pusher.flush()
    except Exception:
        log.exception("digest flush failed; trying again at the next check")


async def queue_reports(reports: ScheduledReports, leader: Leader) -> list[str]:
    """Every :data:`REPORTS_CHECK` seconds, in the process that runs the engine: the scheduled reports whose time has
    come (:mod:`notifiers.reports`; a no-op otherwise)."""
    if not await leader.holds():
        return []
    try:
        return await reports.run()
    except Exception:
        log.exception("reports: a scheduled report failed; trying again at the next check")
        return []


async def purge_if_leader(store: Store, config: BotConfig, clock: Clock, leader: Leader) -> Purged | None:
    """Every :data:`RETENTION_EVERY` seconds, in the process that runs the engine: what is past its retention goes
    (:mod:`bot.services.retention`)."""
    if not await leader.holds():
        return None
    try:
        return await retention.purge(store, config.retention, clock.now())
    except Exception:
        log.exception("retention: the purge failed; trying again at the next run")
        return None
