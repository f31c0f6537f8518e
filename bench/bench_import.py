"""Benchmark: importing a 100,000-row export of the platform's history (.xlsx) through ``import_file``.

The workbook is generated once (xlsxwriter, constant_memory) and cached under ``.bench/`` by row count: a year of
realistic Chinese rows (streets, 诉求内容, masked names, phones as numbers, dates as Excel datetimes and as text),
under the headers platforms use (来电人, 事发地址, 来电号码 … and a column nobody maps), 90 % finished with their
milestones (办理状态, 接单时间, 首次联系时间, 到场时间, 办结时间, 回访时间, 回访结果, 满意度, 是否解决), the rest
still open, none dispatched within the day before the import, ~1 % broken rows. Each run imports it into a fresh
SQLite database with the pusher attached as ``run_bot.py import`` has it, counts the outbox rows and digest items the
import caused (target: none), ticks the deadline engine once over it (target: no message), then imports it again
(every row unchanged), after a dry run; the same on PostgreSQL at 127.0.0.1:5432 when it is reachable, in a schema of
its own that is dropped afterwards.

    .venv/bin/python bench/bench_import.py [--quick] [--rows N] [--no-pg] [--profile]

or ``from bench.bench_import import run; rows = asyncio.run(run(quick=True))``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import xlsxwriter  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench.common import pg_available, pg_schema  # noqa: E402
from bot.domain.clock import TZ, FrozenClock  # noqa: E402
from bot.domain.workcal import WorkCalendar  # noqa: E402
from bot.hotline.importer import ImportReport, import_file  # noqa: E402
from bot.services.channels import Channels  # noqa: E402
from bot.services.deadline_engine import DeadlineEngine  # noqa: E402
from bot.services.duty import DutyService  # noqa: E402
from bot.services.tickets import TicketService  # noqa: E402
from config.loader import load_config  # noqa: E402
from config.model import BotConfig  # noqa: E402
from notifiers.pushes import Pusher  # noqa: E402
from notifiers.rows import EngineRows  # noqa: E402
from store.core import Store  # noqa: E402
from store.db import create_engine, migrate  # noqa: E402
from store.models import digest_items, outbox, tickets  # noqa: E402

FULL_ROWS = 100_000
QUICK_ROWS = 5_000
CACHE = _ROOT / ".bench"
FORMAT_VERSION = 2  # bump when the generated content changes, so cached files are regenerated
SEED = 12345
TARGET_SECONDS = 60.0  # for 100,000 rows on 2 cores

HEADERS = [
    "工单编号",
    "标题",
    "诉求内容",
    "事发地址",
    "来电人",
    "来电号码",
    "紧急程度",
    "工单类型",
    "诉求类别",
    "诉求类型",
    "所属街镇",
    "承办单位",
    "派单时间",
    "办理时限",
    "办理状态",
    "接单时间",
    "首次联系时间",
    "到场时间",
    "办结时间",
    "回访时间",
    "回访结果",
    "满意度",
    "是否解决",
    "备注",  # mapped by nothing: reported once, ignored
]
NOW = datetime(2026, 11, 23, 9, 0)  # the import's moment (the benchmark's clock)
# category -> (title, what the caller reports, what they want)
PROBLEMS: dict[str, list[tuple[str, str, str]]] = {
    "环卫": [
        ("垃圾清运不及时", "小区门口垃圾桶满溢，垃圾清运不及时，气味很大", "尽快清运"),
        ("公厕保洁不到位", "公厕保洁不到位，地面积水，洗手池堵塞", "加强保洁"),
        ("道路保洁差", "路面有大量落叶和生活垃圾，无人清扫", "安排保洁"),
    ],
    "市容景观": [
        ("店招破损", "沿街商铺店招破损，有掉落风险", "尽快拆除或加固"),
        ("户外广告牌松动", "楼顶户外广告牌松动，大风天晃动明显", "排除安全隐患"),
        ("景观灯不亮", "河道两侧景观灯大面积不亮", "尽快维修"),
    ],
    "园林绿化": [
        ("树木倾斜", "人行道树木倾斜，压到电线，存在安全隐患", "修剪或扶正"),
        ("绿化带杂草丛生", "绿化带杂草丛生，蚊虫很多", "清理杂草"),
    ],
    "市政设施": [
        ("路面破损", "人行道路面破损，老人多次绊倒", "修复路面"),
        ("井盖缺失", "路口井盖缺失，夜间非常危险", "立即补装井盖"),
        ("路灯不亮", "小区外道路路灯连续多日不亮", "维修路灯"),
    ],
    "噪声扰民": [
        ("夜间施工噪音", "工地夜间施工噪音扰民，影响休息", "停止夜间施工"),
        ("广场舞音响过大", "广场舞音响声音过大，持续到晚上十点", "协调降低音量"),
    ],
    "占道经营": [("流动摊贩占道", "流动摊贩占用人行道经营，影响通行", "加强管理")],
}
STREETS = ["幸福路", "人民路", "解放路", "建设路", "和平街", "滨河路", "文化路", "青年路", "光明路", "新华街"]
COMMUNITIES = ["阳光花园", "锦绣家园", "东湖小区", "丽景苑", "翠苑一区", "和谐家园", "金色港湾", "春晖小区"]
AREAS = ["演示街道", "东城街道", "西湖街道", "南苑街道", "北山镇"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
URGENCY = [("常规", 85), ("紧急", 8), ("次紧急", 7)]
TICKET_TYPES = [("普通工单", 90), ("随身拍", 7), ("市级复核", 3)]
REQUEST_TYPES = [("投诉", 45), ("求助", 35), ("咨询", 12), ("建议", 8)]
UNITS = [(None, 70), ("市容景观所", 12), ("环卫所", 12), ("热线办", 6)]
BROKEN = ["missing_no", "empty_content", "bad_phone", "bad_urgency", "bad_date", "bad_state", "bad_milestone"]
CLOSED_WORDS = [("已回访", 50), ("已归档", 35), ("已关闭", 15)]
OPEN_WORDS = [("待接单", 40), ("已接单", 30), ("办理中", 30)]
SATISFACTION = [("满意", 80), ("基本满意", 12), ("不满意", 6), ("联系不上", 2)]
SOLVED = [("已解决", 85), ("部分解决", 8), ("未解决", 7)]


def _weighted(rng: random.Random, choices: list[tuple[Any, int]]) -> Any:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _date_text(rng: random.Random, when: datetime) -> str:
    style = rng.randrange(3)
    if style == 0:
        return when.strftime("%Y-%m-%d %H:%M:%S")
    if style == 1:
        return f"{when.year}/{when.month}/{when.day} {when.hour:02d}:{when.minute:02d}"
    return f"{when.year}年{when.month}月{when.day}日 {when.hour:02d}时{when.minute:02d}分"


def _history(rng: random.Random, dispatched: datetime) -> list[Any]:
    """办理状态 and the milestones of a ticket dispatched at ``dispatched``: 90 % finished (of them most visited), the
    rest still with their unit, as far along as their word says."""
    accepted = dispatched + timedelta(minutes=rng.randrange(5, 30 * 60))
    contacted = accepted + timedelta(minutes=rng.randrange(0, 20 * 60))
    on_site = contacted + timedelta(minutes=rng.randrange(30, 24 * 60)) if rng.random() < 0.5 else None
    finished = contacted + timedelta(minutes=rng.randrange(60, 8 * 24 * 60))
    visited = finished + timedelta(minutes=rng.randrange(60, 3 * 24 * 60))
    if rng.random() < 0.9 and visited < NOW:
        if rng.random() < 0.1:  # finished, not visited
            return ["已办结", accepted, contacted, on_site, finished, None, None, None, _weighted(rng, SOLVED)]
        note = "" if rng.random() < 0.7 else rng.choice(["市民表示问题已解决", "市民希望加强日常巡查", "已向市民解释"])
        satisfaction = _weighted(rng, SATISFACTION)
        return [
            _weighted(rng, CLOSED_WORDS),
            accepted,
            contacted if rng.random() < 0.95 else None,  # 5 % never recorded a contact
            on_site,
            finished,
            visited,
            note,
            satisfaction,
            _weighted(rng, SOLVED),
        ]
    word = _weighted(rng, OPEN_WORDS)
    if word == "待接单":
        return [word, None, None, None, None, None, None, None, None]
    return [word, accepted if accepted < NOW else None, None, None, None, None, None, None, None]


def generate(path: Path, rows: int, *, seed: int = SEED) -> int:
    """Writes the export; returns the number of rows made broken on purpose (~1%)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.xlsx")
    book = xlsxwriter.Workbook(str(tmp), {"constant_memory": True})
    ws = book.add_worksheet("工单")
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    ws.write_row(0, 0, HEADERS)
    start = NOW - timedelta(days=365)
    span = (364 * 24 - 2) * 60  # a year, the last dispatch more than a day before the import: no row is recent
    categories = list(PROBLEMS)
    broken = 0
    for i in range(rows):
        r = i + 1
        dispatched = start + timedelta(minutes=rng.randrange(0, span))
        ticket_no = f"{dispatched:%Y%m%d}{i:06d}"
        category = rng.choice(categories)
        title, problem, wish = rng.choice(PROBLEMS[category])
        community = rng.choice(COMMUNITIES)
        address = f"{rng.choice(AREAS)}{rng.choice(STREETS)}{rng.randrange(1, 300)}号{community}"
        content = (
            f"来电人反映：{address}附近{problem}，已持续{rng.randrange(1, 15)}天，"
            f"{rng.choice(['多次反映未解决', '影响居民出行', '周边居民意见很大', '希望相关部门重视'])}，希望{wish}。"
        )
        name = rng.choice(SURNAMES) + rng.choice(["*", "**", "先生", "女士"])
        phone: Any = float(f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}")
        urgency: Any = _weighted(rng, URGENCY)
        date_cell: Any = dispatched
        row_no: Any = ticket_no if rng.random() < 0.7 else float(ticket_no)
        history = _history(rng, dispatched)
        if rng.random() < 0.3:
            phone = f"{int(phone)}"[:3] + " " + f"{int(phone)}"[3:7] + " " + f"{int(phone)}"[7:]
        if rng.random() < 0.4:
            date_cell = _date_text(rng, dispatched)
        if rng.random() < 0.01:
            broken += 1
            kind = rng.choice(BROKEN)
            if kind == "missing_no":
                row_no = None
            elif kind == "empty_content":
                content = " "
            elif kind == "bad_phone":
                phone = "联系不上"
            elif kind == "bad_urgency":
                urgency = "特急"
            elif kind == "bad_state":
                history[0] = "已挂起"
            elif kind == "bad_milestone":
                history[1] = "上周某天"
            else:
                date_cell = "下周一上午"
        deadline = dispatched + timedelta(days=rng.choice([3, 5, 7, 10]))
        cells: list[Any] = [
            row_no,
            title,
            content,
            address,
            name,
            phone,
            urgency,
            _weighted(rng, TICKET_TYPES),
            category,
            _weighted(rng, REQUEST_TYPES),
            rng.choice(AREAS),
            _weighted(rng, UNITS),
            date_cell,
            deadline if rng.random() < 0.5 else None,
            *history,
            "" if rng.random() < 0.9 else "市民要求回电",
        ]
        for c, value in enumerate(cells):
            if value is None or value == "":
                continue
            if isinstance(value, datetime):
                ws.write_datetime(r, c, value, stamp)
            elif isinstance(value, float):
                ws.write_number(r, c, value)
            else:
                ws.write_string(r, c, value)
    book.close()
    tmp.replace(path)
    return broken


def workbook(rows: int) -> tuple[Path, float | None]:
    """The cached export for ``rows`` rows; generates it (and says how long it took) when missing."""
    path = CACHE / f"import_{rows}_v{FORMAT_VERSION}.xlsx"
    if path.exists():
        return path, None
    began = time.perf_counter()
    generate(path, rows)
    return path, time.perf_counter() - began


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


async def _count(store: Store, table: Any) -> int:
    async with store.reading() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _measure(
    label: str, url: str, path: Path, rows: int, config: BotConfig, *, profile: bool = False
) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        await migrate(engine)
        clock = FrozenClock(NOW.replace(tzinfo=TZ))
        store = Store(engine)
        calendar = WorkCalendar()
        service = TicketService(store, config, calendar, clock)
        # as run_bot.py import has it: the pushes of what an import brings that is new and recent
        service.add_hook(Pusher(store, config, clock, Channels(app=True)))
        gc.collect()
        rss_before = _rss_mb()
        preview = await import_file(path, service, config, progress=False, dry_run=True)
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        first: ImportReport = await import_file(path, service, config, progress=False)
        if profiler:
            profiler.disable()
            print(f"\n--- profile: first import into {label} ---", file=sys.stderr)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
        rss_growth = _rss_mb() - rss_before
        caused = await _count(store, outbox) + await _count(store, digest_items)
        deadline_engine = DeadlineEngine(
            store,
            config,
            calendar,
            clock,
            duty=DutyService(store, config, clock),
            rows=EngineRows(config, Channels(app=True)),
        )
        began = time.perf_counter()
        tick = await deadline_engine.tick()
        tick_ms = (time.perf_counter() - began) * 1000
        async with store.reading() as conn:
            finished = await conn.execute(
                select(func.count()).select_from(tickets).where(tickets.c.state.in_(["closed", "submitted"]))
            )
            closed = int(finished.scalar_one())
        again = await import_file(path, service, config, progress=False)
    finally:
        await engine.dispose()
    if first.total != rows or first.created + len(first.errors) != rows:
        raise RuntimeError(f"unexpected first import: {first.summary()}")
    if first.unrecognised != ["备注"]:
        raise RuntimeError(f"unexpected unrecognised columns: {first.unrecognised}")
    if (preview.created, len(preview.errors)) != (first.created, len(first.errors)):
        raise RuntimeError(f"the dry run disagrees with the import: {preview.summary()}")
    if (again.created, again.updated, again.unchanged) != (0, 0, first.created):
        raise RuntimeError(f"the re-import changed something: {again.summary()}")
    size = f"{rows:,} rows"
    return [
        {
            "benchmark": f"import history xlsx → {label}",
            "value": round(first.seconds, 2),
            "unit": "s",
            "note": f"{size}; {first.summary()}; target ≤ {TARGET_SECONDS:.0f} s",
        },
        {
            "benchmark": f"import history xlsx → {label} (throughput)",
            "value": round(rows / first.seconds),
            "unit": "rows/s",
            "note": f"{closed:,} tickets imported finished (closed or awaiting the visit)",
        },
        {
            "benchmark": f"import history xlsx → {label} (messages caused)",
            "value": caused + tick.messages,
            "unit": "rows",
            "note": (
                f"outbox rows and digest items the import wrote ({caused}), and outbox rows of one engine tick over it "
                f"({tick.messages} from {tick.due} due deadlines, {tick_ms:.0f} ms); target 0"
            ),
        },
        {
            "benchmark": f"dry run → {label} (read, validate, look up)",
            "value": round(preview.seconds, 2),
            "unit": "s",
            "note": f"{size}; nothing written",
        },
        {
            "benchmark": f"re-import xlsx → {label} (all unchanged)",
            "value": round(again.seconds, 2),
            "unit": "s",
            "note": f"{size}; {again.unchanged:,} unchanged",
        },
        {
            "benchmark": f"import xlsx → {label} (peak RSS growth)",
            "value": round(max(rss_growth, 0.0), 1),
            "unit": "MB",
            "note": "ru_maxrss after the dry run and the first import minus before them",
        },
    ]


async def run(
    quick: bool = False, *, rows: int | None = None, postgres: bool = True, profile: bool = False
) -> list[dict[str, Any]]:
    count = rows or (QUICK_ROWS if quick else FULL_ROWS)
    config = load_config(_ROOT / "config" / "sandbox.yaml")
    path, generated = workbook(count)
    results: list[dict[str, Any]] = []
    if generated is not None:
        results.append(
            {
                "benchmark": "generate export (xlsxwriter, constant_memory)",
                "value": round(generated, 2),
                "unit": "s",
                "note": f"{count:,} rows → {path.relative_to(_ROOT)} ({path.stat().st_size / 1e6:.1f} MB), cached",
            }
        )
    with tempfile.TemporaryDirectory(prefix="bench_import_") as tmp:
        results += await _measure("SQLite", f"sqlite+aiosqlite:///{tmp}/bench.db", path, count, config, profile=profile)
    if postgres and pg_available():
        async with pg_schema() as url:
            results += await _measure("PostgreSQL", url, path, count, config, profile=profile)
    elif postgres:
        results.append(
            {"benchmark": "import xlsx → PostgreSQL", "value": None, "unit": "s", "note": "not reachable: skipped"}
        )
    return results


def _table(rows: list[dict[str, Any]]) -> str:
    width = max(len(r["benchmark"]) for r in rows)
    lines = []
    for r in rows:
        value = "—" if r["value"] is None else f"{r['value']:,}"
        lines.append(f"{r['benchmark']:<{width}}  {value:>10} {r['unit']:<6}  {r['note']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows instead of {FULL_ROWS:,}")
    parser.add_argument("--rows", type=int, help="any other row count")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--profile", action="store_true", help="cProfile the first import (to stderr)")
    args = parser.parse_args()
    rows = asyncio.run(run(args.quick, rows=args.rows, postgres=not args.no_pg, profile=args.profile))
    print(_table(rows))


if __name__ == "__main__":
    main()
