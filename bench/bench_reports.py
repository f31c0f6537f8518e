"""The reports over two years of an office's history: the bimonthly 通报 of all 200 units, as the scheduled report
makes it (the figures of the period, the period before and the year before, the chart rate's trend over 12 periods,
the tickets behind the figures, the chart and the workbook), and the report of one unit that ``/报表`` asks for
(figures only: no ticket lines, no trend).

Targets (issue 15): the whole bimonthly report at most 2 s with 1,000,000 tickets on PostgreSQL and with 100,000 on
SQLite; ``/报表`` for one unit p99 at most 300 ms with that history. The one-unit figure is the report service's
call; the chat command around it (parsing, rendering the markdown, the reply) adds little and is not measured here.

The history (bench/report_history.py says the mix) is generated in the database, in a schema of its own on PostgreSQL,
after migrating; its indexes are built after the load and the tables analysed. ``now`` is Monday 2026-11-02 10:00, the
first working day after 2026年9-10月, the period reported. The whole report is timed after one untimed warm-up, median
and max of several runs, made as the scheduler makes it (notifiers.reports.bulletin): the chart drawn in the process
apart as soon as the figures are counted (bot.services.apart; started by the warm-up, as the bot starts it at its
first 通报 and keeps it), then beside the workbook, written by libxlsxwriter where the machine has it (``make bench``
installs it; bot.messages.xlsx). Each of its parts is timed on its own too, in this process: the figures (with the
trend), the ticket lines, the chart, the workbook. One more run, not timed, records each SQL statement's time (the
slowest are named in the table). Every run checks the report: every unit's line, the tickets received as the database
counts them, a full trend, ticket lines, so no figure counts work that was not done.

The report reads the periods that ended more than a week ago from the counts kept of them (store.settled), as every
report but the first does; the first, which counts them and keeps them, is timed apart (the warm-up).

Run: ``python bench/bench_reports.py [--quick] [--on-time=900]`` (quick: 100,000 tickets on PostgreSQL, 20,000 on
SQLite; ``--on-time``: deadlines met on time in 1000, 970 by default, see bench/report_history.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, percentile, pg_available, pg_schema, print_table, sqlite_url  # noqa: E402
from bench.report_history import ON_TIME, generate, office_config  # noqa: E402
from bot.domain.bulk import collector_paused  # noqa: E402
from bot.domain.clock import TZ  # noqa: E402
from bot.domain.reports.periods import Period, PeriodKind, last_complete  # noqa: E402
from bot.domain.reports.report import Report  # noqa: E402
from bot.messages.reports import bulletin, chart  # noqa: E402
from bot.messages.workbook import workbook  # noqa: E402
from bot.messages.xlsx import engines  # noqa: E402
from bot.services.apart import Apart  # noqa: E402
from bot.services.reports import ReportService  # noqa: E402
from config.model import BotConfig  # noqa: E402
from notifiers.reports import bulletin as bulletin_report  # noqa: E402
from store import report_items  # noqa: E402
from store import reports as counts_repo  # noqa: E402
from store.core import Store  # noqa: E402
from store.db import create_engine, migrate  # noqa: E402
from store.models import tickets  # noqa: E402

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=TZ)  # Monday, the first working day after September–October
ROUNDS = 5  # whole reports timed, after one warm-up
ONE_UNIT_RUNS = 100
TARGET_WHOLE_S = 2.0
TARGET_ONE_UNIT_MS = 300.0


def renderers() -> dict[str, Callable[[Report], Any]]:
    """What the scheduled 通报 makes of the report besides its figures, each timed apart in this process: the chart
    (PNG), the workbook (.xlsx) and the two messages' text. The whole report makes them as the notifier does
    (notifiers.reports.bulletin: the chart in the process apart, from the figures, beside the workbook). Where the
    workbook is written by libxlsxwriter, it is also timed as XlsxWriter writes it, the engine of a machine without
    the library (bot.messages.xlsx)."""
    made: dict[str, Callable[[Report], Any]] = {"chart": chart, "workbook": workbook, "text": bulletin}
    if engines()[0] != "xlsxwriter":
        made["workbook in XlsxWriter"] = functools.partial(workbook, engine="xlsxwriter")
    return made


async def make_bulletin(service: ReportService, period: Period, apart: Apart) -> Report:
    """The 通报's report, files and text, as the scheduled report makes them."""
    report, png, xlsx = await bulletin_report(service, period, NOW, apart)
    if not png or not xlsx or not bulletin(report):
        raise RuntimeError("the 通报 lacks its chart, its workbook or its text")
    return report


@contextlib.contextmanager
def statement_times() -> Iterator[dict[str, list[float]]]:
    """Each report statement's times (seconds) while inside: the store's functions wrapped where the service finds
    them (module attributes), put back after."""
    times: dict[str, list[float]] = defaultdict(list)
    saved = []
    for module in (counts_repo, report_items):
        for name in ("deadline_counts", "received_counts", "reply_counts", "visit_counts", "audit_counts",
                     "late_deadlines", "return_entries", "unsatisfied_visits", "repeat_tickets"):  # fmt: skip
            if hasattr(module, name):
                original = getattr(module, name)
                saved.append((module, name, original))
                setattr(module, name, _timed(original, times[name]))
    try:
        yield times
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def _timed(function: Any, into: list[float]) -> Any:
    @functools.wraps(function)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - started)

    return wrapper


async def _received(store: Store, start: datetime, end: datetime) -> int:
    async with store.reading() as conn:
        c = tickets.c
        found = await conn.execute(select(func.count()).where(c.dispatched_at >= start, c.dispatched_at < end))
        return int(found.scalar_one())


def _check(report: Report, config: BotConfig, received: int, *, details: bool) -> None:
    problems = []
    if len(report.units) != len(config.units):
        problems.append(f"{len(report.units)} unit lines for {len(config.units)} units")
    if report.total.figures.counts.received != received:
        problems.append(f"received {report.total.figures.counts.received}, the database says {received}")
    if details:
        if len(report.trend) != 12 or any(r.den == 0 for _, r in report.trend):
            problems.append("the trend is not 12 periods with figures")
        if not (report.late and report.returns and report.visits and report.repeats):
            problems.append("a ticket list is empty")
    if problems:
        raise RuntimeError("the report is wrong: " + "; ".join(problems))


async def _measure(backend: str, url: str, count: int, config: BotConfig, on_time: int) -> list[dict[str, Any]]:
    engine = create_engine(url)
    apart = Apart()  # as the scheduler keeps one; started by the warm-up's 通报
    try:
        await migrate(engine)
        started = time.perf_counter()
        rows = await generate(engine, count, NOW, on_time=on_time)
        load_s = time.perf_counter() - started
        store = Store(engine)
        service = ReportService(store, config)
        period = last_complete(PeriodKind.BIMONTH, NOW)
        received = await _received(store, period.starts, period.ends)
        render = renderers()
        parts: dict[str, list[float]] = defaultdict(list)
        first = 0.0
        for round_ in range(ROUNDS + 1):
            began = time.perf_counter()
            report = await make_bulletin(service, period, apart)
            whole = time.perf_counter() - began
            for name, make in render.items():
                at = time.perf_counter()
                made = make(report)
                parts[name].append(time.perf_counter() - at)
                if not made:
                    raise RuntimeError(f"the {name} is empty")
            _check(report, config, received, details=True)
            at = time.perf_counter()
            _check(await service.report(period, now=NOW, details=False), config, received, details=False)
            parts["figures"].append(time.perf_counter() - at)
            at = time.perf_counter()
            with collector_paused():  # as the report reads and builds them
                async with store.reading() as conn:
                    await service._items(conn, period, NOW, None)
            parts["items"].append(time.perf_counter() - at)
            parts["whole"].append(whole)
            if round_ == 0:  # the warm-up: the first report, which counts the settled periods and keeps them
                first = whole
                parts.clear()
        with statement_times() as statements:
            await service.report(period, now=NOW)
        lines = len(report.late) + len(report.returns) + len(report.visits) + len(report.repeats)
        # the bot lets a report go once it is queued: a /报表 later does not walk its 35,000 ticket lines at each of
        # the garbage collector's full passes (kept here, they cost 250 ms a pass, one in twenty /报表 calls)
        del report
        gc.collect()
        codes = [u.code for u in config.units if u.code != config.office.unit]
        one = []
        for i in range(ONE_UNIT_RUNS + 1):
            code = codes[(i * 37) % len(codes)]
            at = time.perf_counter()
            mine = await service.report(period, now=NOW, units=[code], details=False, trend=False)
            if i:
                one.append((time.perf_counter() - at) * 1000)
            if len(mine.units) != 1 or mine.units[0].figures.counts.received == 0:
                raise RuntimeError(f"the report of {code} has no tickets")
    finally:
        await apart.close()
        await engine.dispose()
    whole = parts["whole"]
    slowest = sorted(((sum(v), k) for k, v in statements.items()), reverse=True)[:3]
    size = f"{count:,} tickets"
    return [
        {
            "benchmark": f"reports: the bimonthly 通报, 200 units, {size} ({backend})",
            "value": statistics.median(whole),
            "unit": "s",
            "note": f"median of {ROUNDS}, max {max(whole):.2f} s; target ≤ {TARGET_WHOLE_S:.0f} s; "
            f"{'met' if max(whole) <= TARGET_WHOLE_S else 'MISSED'}"
            + f"; the first, counting the settled periods to keep them, {first:.2f} s; {lines:,} ticket lines; "
            f"{on_time / 10:g} % of deadlines on time; loaded in {load_s:.0f} s ({rows['deadlines']:,} deadlines, "
            f"{rows['audit_log']:,} audit entries)",
        },
        {
            "benchmark": f"reports: its parts, {size} ({backend})",
            "value": statistics.median(parts["figures"]),
            "unit": "s",
            "note": ", ".join(
                f"{name} {statistics.median(parts[name]):.3f}"
                for name in ("figures", "items", "chart", "workbook", "workbook in XlsxWriter", "text")
                if parts.get(name)
            )
            + f" s (medians; the workbook written by {engines()[0]}); slowest statements "
            + ", ".join(f"{name} {s * 1000:.0f} ms" for s, name in slowest),
        },
        {
            "benchmark": f"reports: /报表 of one unit, {size} ({backend})",
            "value": percentile(one, 99),
            "unit": "ms",
            "note": f"p99 of {ONE_UNIT_RUNS} units, p50 {percentile(one, 50):.1f} ms; target ≤ "
            f"{TARGET_ONE_UNIT_MS:.0f} ms; {'met' if percentile(one, 99) <= TARGET_ONE_UNIT_MS else 'MISSED'}; "
            "the service's call, not the chat round trip",
        },
    ]


async def run(quick: bool = False, on_time: int = ON_TIME) -> list[dict[str, Any]]:
    config = office_config(ROOT / "config" / "example.yaml")
    lite, pg = (20_000, 100_000) if quick else (100_000, 1_000_000)
    rows = []
    with sqlite_url() as url:
        rows += await _measure("SQLite", url, lite, config, on_time)
    if pg_available():
        async with pg_schema() as url:
            rows += await _measure("PostgreSQL", url, pg, config, on_time)
    else:
        rows.append({"benchmark": "reports (PostgreSQL)", "value": "-", "unit": "", "note": "PostgreSQL not reachable"})
    return rows


if __name__ == "__main__":
    shares = [int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--on-time=")]
    print_table(asyncio.run(run(quick="--quick" in sys.argv, on_time=shares[0] if shares else ON_TIME)))
