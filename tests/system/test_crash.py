"""The bot as a real process, killed while it sends and started again: what the fake WeCom received is counted.
Nothing accepted may be lost, nothing doubled except resends marked ``【补发】``, and the member's answer may not wait
for a dead process's five-minute lease. The big run is ``bench/crash_run.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store import outbox as outbox_repo
from store.core import Store
from store.db import create_engine
from tests.procs import BotProcess, Traffic, WeComSide, wait_for

SLOW_LANDS = 3.0  # seconds: a send that reaches WeCom after its sender died (the answer is lost with the process)
SLOW_NEVER = 60.0  # seconds: a send whose fate stays unknown for the whole test (it lands only after it)
TAKEOVER = 15.0  # a dead process's rows are taken over within this long of its death


@pytest.fixture
async def bot(bot_database_url: str, wecom: WeComSide, tmp_path: Path) -> AsyncIterator[BotProcess]:
    process = BotProcess(tmp_path, {**wecom.env(), "DATABASE_URL": bot_database_url})
    process.start()
    try:
        await process.ready()
        yield process
    finally:
        await process.stop()


async def outbox_settled(database_url: str) -> bool:
    """No message left to send (queued, leased or waiting for a retry): what the bot will send, it has sent."""
    engine = create_engine(database_url)
    store = Store(engine)
    try:
        async with store.reading() as conn:
            counts = await outbox_repo.outbox_counts(conn)
    finally:
        await engine.dispose()
    return not any(counts.get(status, 0) for status in counts if status not in ("sent", "dead", "void"))


def missing(traffic: Traffic) -> list[str]:
    return traffic.tally().lost(traffic.tickets, traffic.commands)


async def traffic_round(traffic: Traffic, numbers: range) -> None:
    """Hands over each ticket and asks for it in its group, all at once; returns once the bot accepted each."""
    await asyncio.gather(*(traffic.handover(n) for n in numbers))
    await asyncio.gather(*(traffic.command(n, n) for n in numbers))


async def test_a_restart_under_traffic_loses_nothing_and_doubles_nothing(
    bot: BotProcess, wecom: WeComSide, bot_database_url: str
) -> None:
    """SIGTERM while members and the platform keep sending (the harness itself, and the graceful path)."""
    async with Traffic(bot, wecom) as traffic:
        first = asyncio.create_task(traffic_round(traffic, range(0, 6)))
        await wait_for(lambda: len(traffic.tally().answers) >= 1, within=15, what="a first answer")
        await bot.stop()
        bot.start()
        await bot.ready()
        await first
        await traffic_round(traffic, range(6, 8))
        await wait_for(lambda: not missing(traffic), within=20, what="all", detail=lambda: missing(traffic))
        await wait_for(lambda: outbox_settled(bot_database_url), within=10, what="the outbox to settle")
        tally = traffic.tally()
        assert tally.lost(traffic.tickets, traffic.commands) == []
        assert tally.duplicated() == []
        assert "Traceback" not in bot.log()


async def test_a_bot_killed_while_it_sends_answers_within_seconds_and_marks_its_resends(
    bot: BotProcess, wecom: WeComSide, bot_database_url: str
) -> None:
    fake = wecom.fake
    async with Traffic(bot, wecom) as traffic:
        await traffic_round(traffic, range(0, 4))
        await wait_for(lambda: not missing(traffic), within=15, what="round 1", detail=lambda: missing(traffic))

        # the next pushes and answers reach WeCom late (the first of each) or not within the test (the second)
        paths = ("/cgi-bin/appchat/send", "/cgi-bin/aibot/response")
        for path in paths:
            fake.inject("slow", path=path, delay=SLOW_LANDS)
            fake.inject("slow", path=path, delay=SLOW_NEVER)
        before = {path: fake.stats[path].requests for path in paths}
        await traffic_round(traffic, range(4, 6))
        await wait_for(
            lambda: all(fake.stats[p].requests >= before[p] + 2 for p in paths), within=15, what="sends in flight"
        )
        killed_at = await bot.kill()  # both sends of each channel in flight, their outcome unknown to anyone
        waiting = [c for c in traffic.commands if c not in traffic.tally().answers]
        assert waiting  # members wait for answers the dead process owed them

        bot.start()
        await bot.ready()
        await traffic_round(traffic, range(6, 8))  # and the restarted bot takes new work meanwhile
        await wait_for(
            lambda: not missing(traffic),
            within=max(1.0, killed_at + TAKEOVER + 2 - time.time()),
            what="every push and answer after the kill",
            detail=lambda: missing(traffic),
        )
        # the send that reached WeCom after its sender died has landed too: any double shows now
        await wait_for(lambda: time.time() > killed_at + SLOW_LANDS + 0.5, within=SLOW_LANDS + 1, what="landing")
        await wait_for(lambda: outbox_settled(bot_database_url), within=10, what="the outbox to settle")

        tally = traffic.tally()
        assert tally.lost(traffic.tickets, traffic.commands) == []
        assert tally.duplicated() == []  # a push seen twice is a marked resend
        assert tally.marked() >= 1  # the push whose fate stayed unknown was sent again, marked
        delays = [min(tally.answers[c]) - killed_at for c in waiting]
        assert max(delays) <= TAKEOVER, f"answers came {sorted(delays)} s after the kill"
