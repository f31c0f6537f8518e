"""The outage run: PostgreSQL, then Redis, stopped for 30 s under a bot process's steady traffic.

A PostgreSQL and a Redis of the run's own (``tests/procs.py``: own data directory, own ports; never the shared
servers), ``run_bot.py serve`` against them and the fake WeCom (served here), and an office sending a hand-over and
a member's ``/查`` every ``1/rate`` seconds, each sent again every second until the bot accepts it (as the platform and
WeCom retry). For each outage: the answers the bot gave (by status and error code), how long replies (pushes and
answers) took from the first attempt compared with before the outage, what was lost, and the bot's log (tracebacks).

    python bench/outage_run.py [--outage 30] [--rate 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from tests.procs import (  # noqa: E402
    BotProcess,
    OwnPostgres,
    OwnRedis,
    Traffic,
    WeComSide,
    median,
    sandbox_config,
    system_config,
    temporary_directory,
    wait_for,
)

BEFORE, AFTER = 5.0, 15.0  # seconds of traffic before the outage and after it
RETRY_EVERY = 1.0  # seconds between attempts of a request the bot did not accept


async def phase(
    name: str, bot: BotProcess, wecom: WeComSide, stop: object, start: object, outage: float, rate: float
) -> dict[str, object]:
    log_mark = len(bot.log())
    async with Traffic(bot, wecom, prefix=name[:2].upper(), retry_every=RETRY_EVERY) as traffic:
        tasks: list[asyncio.Task[object]] = []
        n = 0
        begin = time.monotonic()
        stopped = restarted = None
        while time.monotonic() - begin < BEFORE + outage + AFTER:
            elapsed = time.monotonic() - begin
            if stopped is None and elapsed >= BEFORE:
                await stop()  # type: ignore[operator]
                stopped = time.time()
            if restarted is None and elapsed >= BEFORE + outage:
                await start()  # type: ignore[operator]
                restarted = time.time()
            tasks.append(asyncio.create_task(traffic.handover(n, within=300)))
            tasks.append(asyncio.create_task(traffic.command(n, n, within=300)))
            n += 1
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: not traffic.tally().lost(traffic.tickets, traffic.commands), within=120, what="all")
        tally = traffic.tally()
        answered: Counter[str] = Counter()
        for record in traffic.sent:
            for status, code in zip(record.statuses, [*record.codes, None], strict=False):
                answered[f"{status} {code}" if code else str(status)] += 1
        assert stopped is not None
        assert restarted is not None

        def delays(during: bool) -> list[float]:
            out = []
            for record in traffic.sent:
                in_outage = stopped <= record.started_at <= restarted
                if in_outage != during:
                    continue
                if record.kind == "command":
                    at = tally.answers.get(record.key)
                    if at:
                        out.append(min(at) - record.started_at)
                elif record.key in tally.pushed_at:
                    out.append(tally.pushed_at[record.key] - record.started_at)
            return out

        normal, hit = delays(False), delays(True)
        log = bot.log()[log_mark:]
        return {
            "outage": f"{name} stopped {outage:g} s",
            "requests sent (attempts)": sum(answered.values()),
            "answered": dict(answered.most_common()),
            "replies before/after: median s": round(median(normal), 2),
            "replies sent during the outage: median s": round(median(hit), 2),
            "replies sent during the outage: max s": round(max(hit), 2) if hit else None,
            "lost": len(tally.lost(traffic.tickets, traffic.commands)),
            "lost, the first": tally.lost(traffic.tickets, traffic.commands)[:6],
            "duplicated": len(tally.duplicated()),
            "marked resends": tally.marked(),
            "log lines with a traceback": log.count("Traceback"),
        }


EXTRA_MEMBERS = 60  # handlers per unit: a member may send 10 commands a minute (the flood limit)


async def run(outage: float, rate: float) -> list[dict[str, object]]:
    with temporary_directory("hotline-outage-") as tmp:
        postgres, redis = OwnPostgres(), OwnRedis()
        await postgres.start()
        redis.start()
        admin = create_async_engine(postgres.url, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text('CREATE DATABASE "outage"'))
        await admin.dispose()
        config = system_config(tmp, extra_members=EXTRA_MEMBERS)
        wecom = WeComSide(sandbox_config(config))
        await wecom.start()
        url = postgres.url.rsplit("/", 1)[0] + "/outage"
        bot = BotProcess(tmp, {**wecom.env(), "DATABASE_URL": url, "REDIS_URL": redis.url}, config=config)
        bot.start()
        try:
            await bot.ready()
            figures = [await phase("postgresql", bot, wecom, postgres.stop, postgres.start, outage, rate)]

            async def redis_stop() -> None:
                redis.stop()

            async def redis_start() -> None:
                redis.start()

            figures.append(await phase("redis", bot, wecom, redis_stop, redis_start, outage, rate))
            return figures
        finally:
            await bot.stop()
            await wecom.stop()
            redis.stop()
            postgres.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage", type=float, default=30.0, help="seconds each server is down")
    parser.add_argument("--rate", type=float, default=2.0, help="hand-overs (and as many commands) a second")
    args = parser.parse_args()
    # the fake WeCom's server logs each request a killed bot left half-sent: expected here, not news
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    for figures in asyncio.run(run(args.outage, args.rate)):
        for name, value in figures.items():
            print(f"{name:<42} {value}")  # noqa: T201
        print()  # noqa: T201


if __name__ == "__main__":
    main()
