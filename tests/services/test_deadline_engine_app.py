"""The deadline engine as the application runs it: APScheduler's job ticks (while this process leads) and the
reminder reaches the (fake) WeCom through the outbox; and with two processes on PostgreSQL, one ticks, the other
takes over when it dies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import OUTBOX, EngineJob, create_app
from bot.domain.clock import TZ, FrozenClock
from bot.domain.ticket import TicketInput
from bot.domain.workcal import WorkCalendar
from bot.sandbox.web import SANDBOX
from bot.services.channels import Channels
from bot.services.deadline_engine import DeadlineEngine
from bot.services.duty import DutyService
from bot.services.tickets import TicketService
from bot.web.keys import DEADLINE_ENGINE, DEADLINE_LEADER, DEADLINE_SCHEDULER, TICKETS
from config.model import BotConfig
from config.settings import Settings
from notifiers.rows import EngineRows
from store.core import Store
from store.db import create_engine, migrate
from store.leader import Leader
from tests.store.test_leader import Ticker, terminate_holder


async def test_the_apps_scheduler_ticks_and_the_reminder_reaches_wecom(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    app = create_app(settings_for(sqlite_url), sandbox_config, clock=clock, run_workers=True, sandbox=True)
    client = await aiohttp_client(app)
    app = client.app
    await app[TICKETS].upsert([TicketInput(ticket_no="2026112300777", content="店招松动 存在坠落风险")])
    await app[DEADLINE_LEADER].leading.wait()  # SQLite: this process leads
    health = await (await client.get("/healthz")).json()
    assert health["checks"]["deadline_engine"]["status"] == "ok"

    clock.set(datetime(2026, 11, 23, 21, 0, tzinfo=TZ))  # half of the accept deadline
    engine = app[DEADLINE_ENGINE]
    engine.ticked.clear()
    # the interval job, run now rather than in nags.tick_seconds (nothing sleeps)
    app[DEADLINE_SCHEDULER].get_job("deadline-engine").modify(next_run_time=datetime.now(UTC))
    await asyncio.wait_for(engine.ticked.wait(), 10)
    assert engine.ticks == 1
    fake = app[SANDBOX].fake
    for _ in range(200):  # bounded; the worker the tick woke may deliver first, leases keep it to once
        if fake.messages_to(chatid="sandbox-srjg"):
            break
        await app[OUTBOX].run_once()
        await asyncio.sleep(0.01)  # the woken worker's send is a real HTTP round trip to the fake
    [delivered] = fake.messages_to(chatid="sandbox-srjg")
    content = delivered.body["markdown"]["content"]
    assert "【时限提醒】市容景观所" in content
    assert "2026112300777" in content


async def hold() -> None:
    """A leader's work: to hold the lock until cancelled (the engine's job asks the leader before each tick)."""
    await asyncio.Event().wait()


async def test_one_process_ticks_another_takes_over_when_it_dies(
    database_url: str,
    sandbox_config: BotConfig,
    calendar: WorkCalendar,
    clock: FrozenClock,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the lock is PostgreSQL's; on SQLite the one process always leads")
    name = f"deadline-engine-{uuid.uuid4().hex}"
    engines = [create_engine(database_url), create_engine(database_url)]
    await migrate(engines[0])
    stores = [Store(e) for e in engines]
    tickers = [Ticker(), Ticker()]
    leaders = [Leader(e, name, sleep=t.sleep) for e, t in zip(engines, tickers, strict=True)]
    jobs = [
        EngineJob(
            DeadlineEngine(
                s,
                sandbox_config,
                calendar,
                clock,
                duty=DutyService(s, sandbox_config, clock),
                rows=EngineRows(sandbox_config, Channels(app=True)),
            ),
            leader,
            clock,
        )
        for s, leader in zip(stores, leaders, strict=True)
    ]
    await TicketService(stores[0], sandbox_config, calendar, clock).upsert(
        [TicketInput(ticket_no="T1", content="店招松动")]
    )
    tasks = [asyncio.create_task(leaders[0].run(hold))]
    try:
        await leaders[0].leading.wait()
        tasks.append(asyncio.create_task(leaders[1].run(hold)))
        await tickers[1].waiting.wait()  # the second process found the lock taken: standing by
        clock.set(datetime(2026, 11, 23, 21, 0, tzinfo=TZ))
        first = await jobs[0].run()
        assert first is not None
        assert first.messages == 1
        assert await jobs[1].run() is None  # not the leader: no tick

        # the first process dies: its session, and the lock, end; the second takes over at its next try
        await terminate_holder(engines[1], leaders[0].key)
        tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)
        await tickers[1].tick()
        assert leaders[1].leading.is_set()
        clock.set(datetime(2026, 11, 24, 7, 0, tzinfo=TZ))
        second = await jobs[1].run()
        assert second is not None
        assert second.messages == 1
        assert await jobs[0].run() is None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for engine in engines:
            await engine.dispose()
