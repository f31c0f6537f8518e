"""One tick of the deadline engine with 1,000,000 open tickets in PostgreSQL, 100 deadlines of them due, against the
same tick with 10,000 open tickets: the tick reads only what is due (an index range on ``next_due_at``), so its time
must not grow with the open tickets. Targets (issue 5): at most 50 ms, and at most 2x the 10,000-ticket tick.

The tickets are generated in the database (``generate_series``, in a schema of their own): each with its accept,
first-contact, return-window and handling deadlines as the bot plans them, every ``next_due_at`` in the future
except for the 100 due ones, a typical tick's mix: 50 reminders (accept at 50 %), 16 overdue accept deadlines (each
counted as a miss, two per unit: no flag), 14 overdue handling deadlines and 20 escalations to the unit heads; half
the tickets claimed. The real :class:`DeadlineEngine` ticks at a fixed time (a Monday 10:00, inside the service
window), with the example config's eight units. Before each timed tick the 100 rows are put back as they were and
the outbox, the notifications record and the misses emptied; every tick must advance all 100, queue its messages and
record who was told, so the figure cannot count work that was not done. The median of several ticks is reported,
after one untimed warm-up tick.

Run: ``python bench/bench_engine.py [--quick]`` (quick: 2,000 and 100,000 tickets).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, drop_for_load, pg_available, pg_schema, print_table  # noqa: E402
from bot.domain.clock import TZ, FrozenClock  # noqa: E402
from bot.domain.workcal import WorkCalendar  # noqa: E402
from bot.services.channels import Channels  # noqa: E402
from bot.services.deadline_engine import DeadlineEngine  # noqa: E402
from bot.services.duty import DutyService  # noqa: E402
from config.loader import load_config  # noqa: E402
from config.model import BotConfig  # noqa: E402
from notifiers.rows import EngineRows  # noqa: E402
from store.core import Store  # noqa: E402
from store.db import create_engine, migrate  # noqa: E402

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=TZ)  # a working Monday, inside the window, outside quiet hours
DUE = 100
ROUNDS = 9
TARGET_MS = 50.0
TARGET_RATIO = 2.0


def _ts(at: datetime) -> str:
    return at.isoformat()


async def load_open_tickets(
    engine: AsyncEngine, count: int, config: BotConfig, *, now: datetime = NOW, due: int = DUE
) -> list[int]:
    """``count`` open tickets with their deadlines, generated in the database; ``due`` of their deadlines due at
    ``now`` (see the module's docstring for the mix). Returns the due deadlines' ids."""
    units = [u.code for u in config.units]
    handlers = [u.members[-1] for u in config.units]
    monday = now.replace(hour=9, minute=0)
    params = {
        "n": count,
        "units": units,
        "handlers": handlers,
        "k": len(units),
        "dispatched": monday - timedelta(hours=1),
        "accept_due": monday + timedelta(days=1),
        "handle_due": monday + timedelta(days=7),
        "window_due": monday + timedelta(days=2),
        "soon": now + timedelta(hours=1),
    }
    async with engine.begin() as conn:
        remake = await drop_for_load(conn, ("tickets", "deadlines"), postgres=True)
        await conn.execute(
            text(
                """
                INSERT INTO tickets (ticket_no, kind, content, unit_code, handler_userid, state, evaluation,
                    return_count, redispatch_count, rehandle_count, cycle, is_repeat, is_media, dispatched_at,
                    received_at, updated_at, source, payload_hash, version, extra)
                SELECT 'B' || lpad(g::text, 8, '0'), 'regular',
                    '第' || g || '号诉求：店招松动，存在坠落风险，请尽快处理。王先生 139' || lpad(g::text, 8, '0'),
                    (CAST(:units AS text[]))[1 + g % :k],
                    CASE WHEN g % 2 = 0 THEN (CAST(:handlers AS text[]))[1 + g % :k] END,
                    CASE WHEN g % 2 = 0 THEN 'claimed' ELSE 'dispatched' END,
                    'normal', 0, 0, 0, 1, false, false, :dispatched, :dispatched, :dispatched, 'api', md5(g::text), 1,
                    '{}'
                FROM generate_series(1, :n) AS g
                """
            ),
            params,
        )
        # the bot's deadlines for each ticket, every next look in the future (spread over the coming days)
        await conn.execute(
            text(
                """
                INSERT INTO deadlines (ticket_id, name, cycle, policy, started_at, due_at, status, met_at,
                    next_due_at, stage)
                SELECT t.id, d.name, 1, d.policy, :dispatched, d.due_at, 'open', NULL,
                    CASE WHEN d.name = 'return_window' THEN NULL
                         ELSE CAST(:soon AS timestamptz) + (t.id % 5000) * interval '1 minute' END,
                    0
                FROM tickets t CROSS JOIN (VALUES
                    ('accept', '1wd', CAST(:accept_due AS timestamptz)),
                    ('first_contact', '1wd', CAST(:accept_due AS timestamptz)),
                    ('return_window', '2wd', CAST(:window_due AS timestamptz)),
                    ('handle', '5wd', CAST(:handle_due AS timestamptz))
                ) AS d(name, policy, due_at)
                """
            ),
            params,
        )
        for statement in remake:
            await conn.execute(text(statement))
        await conn.execute(text("ANALYZE tickets"))
        await conn.execute(text("ANALYZE deadlines"))
    return await _make_due(engine, count, config, now, due)


async def _make_due(engine: AsyncEngine, count: int, config: BotConfig, now: datetime, due: int) -> list[int]:
    """Puts ``due`` deadlines, of tickets spread over the table, in the state the mix wants (module docstring)."""
    if due == 0:
        return []
    step = max(1, count // due)
    units = len(config.units)
    # spread over the table, and over the units in turn (two missed accept deadlines per unit: no flag)
    numbers = [f"B{i * step + units - (i * step) % units + i % units:08d}" for i in range(due)]
    friday = now - timedelta(days=3)  # 2026-11-20
    kinds: list[tuple[str, str, datetime, datetime, int, datetime]] = []
    for i in range(due):
        if i < 50:  # accept at 50 %: started Friday 20:00 (4 working hours), due Monday 20:00; 50 % at Monday 08:00
            start = friday.replace(hour=20)
            kinds.append(("accept", "1wd", start, now.replace(hour=20), 0, now.replace(hour=8)))
        elif i < 66:  # accept overdue: started Friday 09:30, due Monday 09:30
            start = friday.replace(hour=9, minute=30)
            kinds.append(("accept", "1wd", start, now.replace(hour=9, minute=30), 3, now.replace(hour=9, minute=30)))
        elif i < 80:  # handling overdue at 09:45
            start = now.replace(hour=9, minute=45) - timedelta(days=7)
            kinds.append(("handle", "5wd", start, now.replace(hour=9, minute=45), 3, now.replace(hour=9, minute=45)))
        else:  # handling overdue since 08:00: level 2 (the unit heads) at 10:00
            start = now.replace(hour=8) - timedelta(days=7)
            kinds.append(("handle", "5wd", start, now.replace(hour=8), 4, now))
    ids = []
    async with engine.begin() as conn:
        for number, (name, policy, start, due_at, stage, next_due) in zip(numbers, kinds, strict=True):
            found = await conn.execute(
                text(
                    "UPDATE deadlines d SET policy = :policy, started_at = :start, due_at = :due, stage = :stage, "
                    "next_due_at = :next FROM tickets t WHERE t.id = d.ticket_id AND t.ticket_no = :no "
                    "AND d.name = :name RETURNING d.id"
                ),
                {
                    "policy": policy,
                    "start": start,
                    "due": due_at,
                    "stage": stage,
                    "next": next_due,
                    "no": number,
                    "name": name,
                },
            )
            ids.append(int(found.scalar_one()))
    return ids


async def _snapshot(engine: AsyncEngine, ids: list[int]) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, stage, next_due_at FROM deadlines WHERE id = ANY(:ids)"), {"ids": ids}
        )
        return [dict(r) for r in rows.mappings()]


async def _restore(engine: AsyncEngine, snapshot: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE deadlines d SET stage = s.stage, next_due_at = s.next_due_at FROM unnest("
                "CAST(:ids AS bigint[]), CAST(:stages AS integer[]), CAST(:nexts AS timestamptz[])) "
                "AS s(id, stage, next_due_at) WHERE d.id = s.id"
            ),
            {
                "ids": [r["id"] for r in snapshot],
                "stages": [r["stage"] for r in snapshot],
                "nexts": [r["next_due_at"] for r in snapshot],
            },
        )
        await conn.execute(text("DELETE FROM outbox"))
        await conn.execute(text("DELETE FROM notifications"))
        await conn.execute(text("DELETE FROM deadline_misses"))
        await conn.execute(text("DELETE FROM unit_miss_counts"))
    async with engine.connect() as conn:
        await conn.execute(text("CHECKPOINT"))  # the writes above must not be flushed during the timed tick


async def _measure(count: int, config: BotConfig, calendar: WorkCalendar) -> dict[str, Any]:
    async with pg_schema() as url:
        engine = create_engine(url)
        try:
            await migrate(engine)
            started = time.perf_counter()
            ids = await load_open_tickets(engine, count, config)
            load_s = time.perf_counter() - started
            snapshot = await _snapshot(engine, ids)
            store = Store(engine)
            clock = FrozenClock(NOW)
            ticker = DeadlineEngine(
                store,
                config,
                calendar,
                clock,
                duty=DutyService(store, config, clock),
                rows=EngineRows(config, Channels(app=True)),
            )
            times = []
            for round_ in range(ROUNDS + 1):
                await _restore(engine, snapshot)
                began = time.perf_counter()
                result = await ticker.tick(NOW)
                elapsed = (time.perf_counter() - began) * 1000
                if result.moved != DUE or result.raced or not result.messages or not result.told or result.misses != 16:
                    raise RuntimeError(f"the tick did not do the work: {result}")
                if round_:  # the first is a warm-up
                    times.append(elapsed)
            again = await ticker.tick(NOW)
            if again.due:
                raise RuntimeError(f"a second tick found work again: {again}")
            return {
                "count": count,
                "median": statistics.median(times),
                "times": times,
                "load_s": load_s,
                "messages": result.messages,
                "told": result.told,
            }
        finally:
            await engine.dispose()


async def run(quick: bool = False) -> list[dict[str, Any]]:
    if not pg_available():
        return [{"benchmark": "deadline engine tick", "value": "-", "unit": "", "note": "PostgreSQL not reachable"}]
    config = load_config(ROOT / "config" / "example.yaml")
    calendar = WorkCalendar()
    # the example's unit PHGS has no group this deployment reaches: said once per message, not per tick here
    logging.getLogger("notifiers.rows").setLevel(logging.ERROR)
    small, large = (2_000, 100_000) if quick else (10_000, 1_000_000)
    few = await _measure(small, config, calendar)
    many = await _measure(large, config, calendar)
    ratio = many["median"] / few["median"]
    spread = f"{min(many['times']):.1f}–{max(many['times']):.1f} ms"
    return [
        {
            "benchmark": f"deadline engine: one tick, {DUE} due of {small:,} open tickets (PostgreSQL)",
            "value": few["median"],
            "unit": "ms",
            "note": f"median of {ROUNDS}; {few['messages']} messages queued, {few['told']} notifications recorded",
        },
        {
            "benchmark": f"deadline engine: one tick, {DUE} due of {large:,} open tickets (PostgreSQL)",
            "value": many["median"],
            "unit": "ms",
            "note": f"median of {ROUNDS} ({spread}); target ≤ {TARGET_MS:.0f} ms; "
            f"{'met' if many['median'] <= TARGET_MS else 'MISSED'}; loaded in {many['load_s']:.0f} s",
        },
        {
            "benchmark": f"deadline engine: tick at {large:,} / at {small:,} open tickets",
            "value": ratio,
            "unit": "×",
            "note": f"target ≤ {TARGET_RATIO:.0f}×; {'met' if ratio <= TARGET_RATIO else 'MISSED'}",
        },
    ]


if __name__ == "__main__":
    print_table(asyncio.run(run(quick="--quick" in sys.argv)))
