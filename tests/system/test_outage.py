"""PostgreSQL and Redis stopped under a running bot process, and started again: servers of
the test's own (never the shared ones), the bot as a real process, the office's traffic over real HTTP.

While PostgreSQL is down the bot refuses what it cannot store with 503 ``store_unavailable`` (never a 500, never a
traceback per request), says once that the database went away and once that it came back, and is live but not
ready; while Redis is down it keeps accepting and sending (ready, reported degraded). Nothing accepted is lost.
The figures of a 30 s outage of each: ``bench/outage_run.py``."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.procs import BotProcess, OwnPostgres, OwnRedis, Sent, Traffic, WeComSide, wait_for

OUTAGE_REQUESTS = 6  # of each kind, sent while the server is down
# the log's two lines, in whatever words: "the database went away", "the database is back"
DOWN_WORDS = re.compile(r"database.*(unavailable|unreachable|down|went away|gone|lost)", re.IGNORECASE)
BACK_WORDS = re.compile(r"database.*(back|again|restored|recovered|reachable|available)", re.IGNORECASE)


@pytest.fixture
async def bot(
    own_postgres: tuple[OwnPostgres, str], own_redis: OwnRedis, wecom: WeComSide, tmp_path: Path
) -> AsyncIterator[BotProcess]:
    process = BotProcess(tmp_path, {**wecom.env(), "DATABASE_URL": own_postgres[1], "REDIS_URL": own_redis.url})
    process.start()
    try:
        await process.ready()
        yield process
    finally:
        await process.stop()


def missing(traffic: Traffic) -> list[str]:
    return traffic.tally().lost(traffic.tickets, traffic.commands)


async def all_delivered(traffic: Traffic, within: float) -> float:
    return await wait_for(
        lambda: not missing(traffic), within=within, what="every push and answer", detail=lambda: missing(traffic)
    )


async def health(traffic: Traffic, path: str) -> tuple[int, str]:
    assert traffic.session is not None
    async with traffic.session.get(traffic.bot.base + path) as response:
        return response.status, await response.text()


async def one_attempt_each(traffic: Traffic, numbers: range) -> list[Sent]:
    """A hand-over and a command for each of ``numbers``, each sent once (all at once)."""
    handovers = [traffic.handover(n, attempts=1) for n in numbers]
    commands = [traffic.command(n, n, attempts=1) for n in numbers]
    return list(await asyncio.gather(*handovers, *commands))


async def send_again_until_accepted(traffic: Traffic, refused: list[Sent]) -> None:
    """What was refused is sent again, as the platform and WeCom do."""
    await asyncio.gather(
        *(traffic.handover(s.n) if s.kind == "handover" else traffic.command(s.n, s.n) for s in refused)
    )


def log_lines(bot: BotProcess, since: int) -> list[str]:
    return bot.log()[since:].splitlines()


async def test_postgresql_stopped_under_traffic_is_a_503_and_nothing_accepted_is_lost(
    bot: BotProcess, wecom: WeComSide, own_postgres: tuple[OwnPostgres, str]
) -> None:
    server = own_postgres[0]
    async with Traffic(bot, wecom) as traffic:
        await asyncio.gather(*(traffic.handover(n) for n in range(2)), *(traffic.command(n, n) for n in range(2)))
        await all_delivered(traffic, within=15)

        mark = len(bot.log())
        await server.stop()
        during = await one_attempt_each(traffic, range(2, 2 + OUTAGE_REQUESTS))
        live, ready = await health(traffic, "/livez"), await health(traffic, "/readyz")
        await server.start()
        started = time.monotonic()
        refused = [s for s in during if s.accepted_at is None]
        await send_again_until_accepted(traffic, refused)  # accepted again once the database is back
        back = time.monotonic() - started
        await all_delivered(traffic, within=15)

        def came_back() -> list[str]:
            lines = log_lines(bot, mark)
            return [line for line in lines if BACK_WORDS.search(line) and not DOWN_WORDS.search(line)]

        # the watch that logs the return asks the database every second: requests may be accepted before it says so
        await wait_for(lambda: bool(came_back()), within=5, what="the log saying the database is back")
        lines = log_lines(bot, mark)

        answered = {(s.kind, s.statuses[0], s.codes[0] if s.codes else None) for s in during}
        assert answered <= {("handover", 503, "store_unavailable"), ("command", 503, "store_unavailable")}, answered
        assert not any("Traceback" in line for line in lines)
        went_away = [line for line in lines if DOWN_WORDS.search(line)]
        assert len(went_away) == 1, went_away  # once, however many requests met the outage
        assert len(came_back()) == 1, came_back()
        assert (live[0], ready[0]) == (200, 503)
        assert (await health(traffic, "/readyz"))[0] == 200
        assert back < 15
        tally = traffic.tally()
        assert tally.lost(traffic.tickets, traffic.commands) == []
        assert tally.duplicated() == [], {t: [x[:80] for x in v] for t, v in tally.pushes.items()}


async def test_redis_stopped_under_traffic_degrades_but_the_bot_keeps_accepting_and_sending(
    bot: BotProcess, wecom: WeComSide, own_redis: OwnRedis
) -> None:
    async with Traffic(bot, wecom) as traffic:
        await asyncio.gather(*(traffic.handover(n) for n in range(2)), *(traffic.command(n, n) for n in range(2)))
        await all_delivered(traffic, within=15)

        mark = len(bot.log())
        own_redis.stop()
        during = await one_attempt_each(traffic, range(2, 2 + OUTAGE_REQUESTS))
        delivered_in = await all_delivered(traffic, within=10)
        live, ready = await health(traffic, "/livez"), await health(traffic, "/readyz")
        assert delivered_in < 10  # sent under the local limit, not backing off until Redis returns
        own_redis.start()
        await wait_for(lambda: _undegraded(traffic), within=15, what="the shared limit again")
        await one_attempt_each(traffic, range(2 + OUTAGE_REQUESTS, 4 + OUTAGE_REQUESTS))
        await all_delivered(traffic, within=15)
        lines = log_lines(bot, mark)

        assert {s.statuses[0] for s in during} <= {200, 201}, [s.statuses for s in during]
        assert live[0] == 200
        assert ready[0] == 200
        assert json.loads(ready[1])["checks"]["redis"]["status"] == "degraded", ready
        assert len([line for line in lines if "Traceback" in line]) <= 1
        tally = traffic.tally()
        assert tally.duplicated() == [], {t: [x[:80] for x in v] for t, v in tally.pushes.items()}


async def _undegraded(traffic: Traffic) -> bool:
    """Redis is ok again (the whole status may still be degraded for another reason: the calendar, at the machine's
    real date)."""
    status, body = await health(traffic, "/readyz")
    return status == 200 and json.loads(body)["checks"]["redis"]["status"] == "ok"
