"""Repeat matching (重复诉求) with 1,000,000 tickets of a year in PostgreSQL: the time to match one new ticket, and what
matching costs a hand-over and an import. Target (issue 14): at most 5 ms per new ticket.

The tickets are generated in the database (``generate_series``, in a schema of their own), spread evenly over the
year before a Monday 10:00, with their keys as the bot writes them (SHA-256 of the normalised phone and place, computed
by PostgreSQL the same way as :func:`bot.domain.repeats._digest`) and their text's signature: 70 % from callers who
call once, 30 % from 20,000 frequent callers (each about every 7 days, so 4 of their tickets lie within any 30 days);
80 % with an address among 50,000 buildings (each about every 18 days), with one of ten texts, so that the same place
has the same matter only now and then.

1. **Matching**: 1,000 new tickets (a third from frequent callers, half with an address), each matched alone as a
   hand-over would match it (:meth:`bot.services.repeats.RepeatMatcher.before_insert`: the indexes' look-ups and the
   decision), p50 and p99. Every match is checked against a count PostgreSQL makes itself (the tickets of the same
   phone within the window), so no figure counts work that was not done.
2. **A hand-over**: ``TicketService.upsert`` of one new ticket (routing, deadlines, audit, repeat pairs, commit),
   with repeats on and off, alternately, p50 and p99.
3. **An import**: batches of 1,000 history rows (``source="import"``, dispatched over the year), on and off.

Off still writes the keys (and their indexes): what it leaves out is the matching. Against the import without the
keys at all, see the import benchmark (``bench/run.py import``) before and after.

Run: ``python bench/bench_repeats.py [--quick]`` (quick: 100,000 tickets).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, percentile, pg_available, pg_schema, print_table  # noqa: E402
from bot.domain.clock import TZ, FrozenClock  # noqa: E402
from bot.domain.repeats import signature  # noqa: E402
from bot.domain.ticket import TicketInput  # noqa: E402
from bot.domain.workcal import WorkCalendar  # noqa: E402
from bot.services.repeats import RepeatMatcher  # noqa: E402
from bot.services.tickets import TicketService  # noqa: E402
from config.loader import load_config  # noqa: E402
from config.model import BotConfig  # noqa: E402
from store.core import Store  # noqa: E402
from store.db import create_engine, migrate  # noqa: E402

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=TZ)
YEAR = timedelta(days=365)
FREQUENT = 20_000  # callers with a ticket about every week
BUILDINGS = 50_000
TARGET_MS = 5.0
TEXTS = [
    ("环卫", "小区门口垃圾桶满溢，垃圾清运不及时，气味很大"),
    ("环卫", "道路上有大量落叶和生活垃圾，无人清扫"),
    ("市容景观", "店招一角脱落，随时可能掉落，存在安全隐患"),
    ("市容景观", "路口流动摊贩占道经营，影响通行"),
    ("社区绿化", "小区树木枝叶过密遮挡窗户，影响采光"),
    ("社区绿化", "绿化带内杂草丛生，蚊虫很多"),
    ("公园", "公园内健身器材损坏，存在安全隐患"),
    ("环卫", "公厕保洁不到位，地面积水，洗手池堵塞"),
    ("市容景观", "楼道内有人堆放杂物，影响消防通道"),
    ("工地渣土", "夜间渣土车运输噪音扰民，路面撒漏"),
]


def _phone(n: int) -> str:
    return f"139{n:08d}"


async def load_year(engine: AsyncEngine, count: int) -> float:
    """``count`` tickets of the year before NOW, with their repeat keys (see the module's docstring); seconds."""
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        indexes = (
            await conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND tablename = 'tickets' AND indexname LIKE 'ix_%'"
                )
            )
        ).all()
        for name, _ in indexes:
            await conn.execute(text(f'DROP INDEX "{name}"'))
        await conn.execute(
            text(
                """
                INSERT INTO tickets (ticket_no, kind, category, content, address, citizen_phone, unit_code, state,
                    evaluation, return_count, redispatch_count, rehandle_count, cycle, is_repeat, is_media,
                    satisfaction, dispatched_at, received_at, updated_at, source, payload_hash, version, extra,
                    repeat_phone, repeat_address, repeat_signature, repeat_count)
                SELECT 'Y' || lpad(g::text, 8, '0'), 'regular', (CAST(:cats AS text[]))[1 + (g / 3) % 10],
                    (CAST(:texts AS text[]))[1 + (g / 3) % 10] || '（' || g || '）', s.address, s.phone, 'HW',
                    CASE WHEN s.at < CAST(:recent AS timestamptz) THEN 'closed' ELSE 'claimed' END,
                    'normal', 0, 0, 0, 1, false, false,
                    CASE WHEN s.at < CAST(:recent AS timestamptz) THEN 'satisfied' END,
                    s.at, s.at, s.at, 'import', md5(g::text), 1, '{}',
                    left(encode(sha256(convert_to('p:' || s.phone, 'UTF8')), 'hex'), 32),
                    CASE WHEN s.address IS NOT NULL
                         THEN left(encode(sha256(convert_to('a:' || s.address, 'UTF8')), 'hex'), 32) END,
                    (CAST(:signatures AS bytea[]))[1 + (g / 3) % 10],
                    1
                FROM generate_series(1, CAST(:n AS bigint)) AS g
                CROSS JOIN LATERAL (SELECT
                    CAST(:start AS timestamptz) + (g * CAST(:step AS double precision)) * interval '1 second' AS at,
                    '139' || lpad(CASE WHEN g % 10 < 3 THEN (g * 7919) % :frequent
                                       ELSE :frequent + g END::text, 8, '0') AS phone,
                    CASE WHEN g % 5 < 4 THEN '光明路' || ((g * 104729) % :buildings) || '号' END AS address
                ) AS s
                """
            ),
            {
                "n": count,
                "cats": [c for c, _ in TEXTS],
                "texts": [t for _, t in TEXTS],
                # the text's signature as the bot computes it (the number after it and the address say nothing)
                "signatures": [signature(c, None, t) for c, t in TEXTS],
                "start": NOW - YEAR,
                "step": YEAR.total_seconds() / count,
                "recent": NOW - timedelta(days=10),
                "frequent": FREQUENT,
                "buildings": BUILDINGS,
            },
        )
        for _, definition in indexes:
            await conn.execute(text(definition))
        await conn.execute(text("ANALYZE tickets"))
    return time.perf_counter() - started


def _new(i: int, at: datetime, prefix: str) -> TicketInput:
    """A new ticket: a third from the frequent callers, the rest from new ones; half with an address."""
    category, content = TEXTS[i % len(TEXTS)]
    phone = _phone((i * 7919) % FREQUENT) if i % 3 == 0 else _phone(FREQUENT + 5_000_000 + i)
    written = f"{phone[:3]} {phone[3:7]} {phone[7:]}" if i % 2 else f"+86-{phone}"  # written otherwise
    return TicketInput(
        ticket_no=f"{prefix}{i:07d}",
        content=content + "，请尽快处理",
        category=category,
        citizen_name="王先生",
        citizen_phone=written,
        address=f"光明路{(i * 104729) % BUILDINGS}号{(i % 20) + 1}0{i % 4 + 1}室" if i % 2 == 0 else None,
        dispatched_at=at,
    )


def _row(matcher: RepeatMatcher, item: TicketInput) -> dict[str, Any]:
    assert item.dispatched_at is not None
    return {
        "ticket_no": item.ticket_no,
        "dispatched_at": item.dispatched_at,
        **matcher.keys(
            phone=item.citizen_phone,
            address=item.address,
            category=item.category,
            title=item.title,
            content=item.content,
        ),
    }


async def _matching(store: Store, config: BotConfig, count: int) -> dict[str, Any]:
    """Each new ticket matched alone, in a read transaction of its own; checked against PostgreSQL's own count."""
    matcher = RepeatMatcher(config)
    times, found, checked = [], 0, 0
    window = config.repeats.window.natural()
    for i in range(count):
        row = _row(matcher, _new(i, NOW + timedelta(seconds=i), "M"))
        async with store.reading() as conn:
            began = time.perf_counter()
            await matcher.before_insert(conn, [row])
            times.append((time.perf_counter() - began) * 1000)
            same_phone = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM tickets WHERE repeat_phone = :key "
                        "AND dispatched_at BETWEEN :since AND :until"
                    ),
                    {"key": row["repeat_phone"], "since": row["dispatched_at"] - window, "until": row["dispatched_at"]},
                )
            ).scalar_one()
        earlier = row["repeat_count"] - 1
        if earlier < min(same_phone, 100) or (row["repeat_address"] is None and earlier != min(same_phone, 100)):
            raise RuntimeError(f"ticket {row['ticket_no']}: matched {earlier}, PostgreSQL counts {same_phone}")
        found += earlier > 0
        checked += 1
    return {"times": times, "found": found, "checked": checked}


async def _hand_overs(store: Store, config: BotConfig, count: int) -> dict[str, list[float]]:
    """One new ticket per ``upsert``, repeats on and off alternately (the same kind of ticket each)."""
    off = config.model_copy(update={"repeats": config.repeats.model_copy(update={"enabled": False})})
    clock = FrozenClock(NOW + timedelta(hours=2))
    services = {
        "on": TicketService(store, config, WorkCalendar(), clock),
        "off": TicketService(store, off, WorkCalendar(), clock),
    }
    times: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(count):
        for name, service in services.items():
            item = _new(i, clock.now(), f"H{name}")
            began = time.perf_counter()
            await service.upsert([item])
            times[name].append((time.perf_counter() - began) * 1000)
        clock.advance(seconds=1)
    return times


async def _imports(store: Store, config: BotConfig, batches: int) -> dict[str, list[float]]:
    """Batches of 1,000 history rows dispatched over the year, repeats on and off alternately; seconds each."""
    off = config.model_copy(update={"repeats": config.repeats.model_copy(update={"enabled": False})})
    clock = FrozenClock(NOW + timedelta(hours=3))
    services = {
        "on": TicketService(store, config, WorkCalendar(), clock),
        "off": TicketService(store, off, WorkCalendar(), clock),
    }
    times: dict[str, list[float]] = {"on": [], "off": []}
    step = YEAR / 1000
    for b in range(batches):
        for name, service in services.items():
            batch = [_new(b * 1000 + i, NOW - YEAR + step * i, f"I{name}") for i in range(1000)]
            began = time.perf_counter()
            await service.upsert(batch, source="import")
            times[name].append(time.perf_counter() - began)
    return times


async def run(quick: bool = False) -> list[dict[str, Any]]:
    if not pg_available():
        return [{"benchmark": "repeat matching", "value": "-", "unit": "", "note": "PostgreSQL not reachable"}]
    config = load_config(ROOT / "config" / "example.yaml")
    count = 100_000 if quick else 1_000_000
    new, hand_overs, batches = (300, 100, 2) if quick else (1000, 300, 5)
    async with pg_schema() as url:
        engine = create_engine(url)
        try:
            await migrate(engine)
            load_s = await load_year(engine, count)
            store = Store(engine)
            await _matching(store, config, 50)  # warm-up: connections, statements, caches
            matched = await _matching(store, config, new)
            handed = await _hand_overs(store, config, hand_overs)
            imported = await _imports(store, config, batches)
        finally:
            await engine.dispose()
    p50, p99 = percentile(matched["times"], 50), percentile(matched["times"], 99)
    on, off = handed["on"], handed["off"]
    imp_on, imp_off = statistics.median(imported["on"]), statistics.median(imported["off"])
    return [
        {
            "benchmark": f"repeat matching: one new ticket among {count:,} of a year (PostgreSQL), p50",
            "value": p50,
            "unit": "ms",
            "note": f"{new} tickets, {matched['found']} found repeats, each checked; loaded in {load_s:.0f} s",
        },
        {
            "benchmark": f"repeat matching: one new ticket among {count:,} of a year (PostgreSQL), p99",
            "value": p99,
            "unit": "ms",
            "note": f"target ≤ {TARGET_MS:.0f} ms; {'met' if p99 <= TARGET_MS else 'MISSED'}; "
            f"max {max(matched['times']):.1f} ms",
        },
        {
            "benchmark": f"a hand-over of one new ticket among {count:,} (PostgreSQL), repeats on / off, p50",
            "value": f"{percentile(on, 50):.1f} / {percentile(off, 50):.1f}",
            "unit": "ms",
            "note": f"p99 {percentile(on, 99):.1f} / {percentile(off, 99):.1f} ms; {hand_overs} each, alternately",
        },
        {
            "benchmark": f"an import batch of 1,000 history rows among {count:,} (PostgreSQL), repeats on / off",
            "value": f"{imp_on * 1000:.0f} / {imp_off * 1000:.0f}",
            "unit": "ms",
            "note": f"median of {batches}; matching adds {100 * (imp_on / imp_off - 1):+.0f} %",
        },
    ]


if __name__ == "__main__":
    print_table(asyncio.run(run(quick="--quick" in sys.argv)))
