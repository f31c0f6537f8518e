"""Benchmark: working-day deadline computations per second.

Compares, in one run and on one workload (seeded random dispatch instants in 2024-2026, n drawn from
the policy mix {1, 2, 3, 5} working days):

1. the naive loop: advance one calendar day at a time with ``chinese_calendar.is_workday``;
2. ``WorkCalendar.add_working_days`` (scalar, precomputed arrays);
3. ``WorkCalendar.add_working_days_many`` (vectorised numpy, one call per distinct n).

The three must agree on the workload (asserted) before any number is reported.

    .venv/bin/python bench/bench_calendar.py [--quick]

or ``from bench.bench_calendar import run; rows = run(quick=True)``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import chinese_calendar  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from bot.domain.clock import TZ  # noqa: E402
from bot.domain.deadlines import DeadlinePlanner, PlanRequest  # noqa: E402
from bot.domain.workcal import WorkCalendar  # noqa: E402
from config.loader import load_config  # noqa: E402
from config.vocabulary import TicketKind  # noqa: E402

DAY = timedelta(days=1)
POLICY_MIX = (1, 2, 3, 5)
SEED = 20240101
# Dispatch window: all of 2024-2026 that keeps every deadline inside chinesecalendar's data, so the
# naive loop (which raises outside it) and the fallback rule are not involved.
WINDOW_START = datetime(2024, 1, 1, tzinfo=TZ)
WINDOW_END = datetime(2026, 12, 15, tzinfo=TZ)


def naive_add_working_days(start: datetime, n: int) -> datetime:
    """The straightforward implementation of the working-time model, one day per step."""
    loc = start.astimezone(TZ)
    d = loc.date()
    if n == 0:
        if chinese_calendar.is_workday(d):
            return loc
        d += DAY
        while not chinese_calendar.is_workday(d):
            d += DAY
        return datetime(d.year, d.month, d.day, tzinfo=TZ)
    remaining = n * DAY
    if chinese_calendar.is_workday(d):
        left_today = datetime(d.year, d.month, d.day, tzinfo=TZ) + DAY - loc
        if remaining <= left_today:
            return loc + remaining
        remaining -= left_today
    d += DAY
    while True:
        if chinese_calendar.is_workday(d):
            if remaining <= DAY:
                return datetime(d.year, d.month, d.day, tzinfo=TZ) + remaining
            remaining -= DAY
        d += DAY


def make_workload(size: int, seed: int = SEED) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``size`` dispatch instants (epoch seconds) uniform over the window, and their n."""
    rng = np.random.default_rng(seed)
    lo, hi = int(WINDOW_START.timestamp()), int(WINDOW_END.timestamp())
    starts = rng.integers(lo, hi, size=size, dtype=np.int64)
    ns = rng.choice(np.array(POLICY_MIX, dtype=np.int64), size=size)
    return starts, ns


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _vectorised(cal: WorkCalendar, starts: npt.NDArray[np.int64], ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    out = np.empty_like(starts)
    for n in POLICY_MIX:
        mask = ns == n
        out[mask] = cal.add_working_days_many(starts[mask], n)
    return out


def run(quick: bool = False) -> list[dict[str, object]]:
    """Run the benchmark; rows ``{"benchmark", "value", "unit", "note"}``."""
    batch = 10_000 if quick else 100_000
    naive_size = 1_000 if quick else 10_000
    repeats = 3 if quick else 5

    t0 = time.perf_counter()
    cal = WorkCalendar()
    build_s = time.perf_counter() - t0
    build_s = min(build_s, _best_time(WorkCalendar, repeats))

    starts, ns = make_workload(batch)
    start_dts = [datetime.fromtimestamp(int(s), TZ) for s in starts]
    n_list = [int(n) for n in ns]
    naive_dts, naive_ns = start_dts[:naive_size], n_list[:naive_size]

    # Correctness first: the three must agree on the workload.
    naive_out = [naive_add_working_days(s, n) for s, n in zip(naive_dts, naive_ns, strict=True)]
    scalar_out = [cal.add_working_days(s, n) for s, n in zip(start_dts, n_list, strict=True)]
    vector_out = _vectorised(cal, starts, ns)
    assert naive_out == scalar_out[:naive_size], "scalar path disagrees with the naive loop"
    scalar_epoch = np.array([int(r.timestamp()) for r in scalar_out], dtype=np.int64)
    assert np.array_equal(scalar_epoch, vector_out), "vectorised path disagrees with the scalar path"
    # Every deadline stays inside chinesecalendar's data: official days only, no fallback involved.
    assert max(r.date() for r in scalar_out).year <= max(chinese_calendar.holidays).year

    def naive_run() -> None:
        for s, n in zip(naive_dts, naive_ns, strict=True):
            naive_add_working_days(s, n)

    def scalar_run() -> None:
        add = cal.add_working_days
        for s, n in zip(start_dts, n_list, strict=True):
            add(s, n)

    def vector_run() -> None:
        _vectorised(cal, starts, ns)

    # the bot's own path: DeadlinePlanner.plan_many, which turns tickets into every deadline they carry
    # (policy lookup, working-day sums, aware datetimes, records) — what an import or a burst goes through
    planner = DeadlinePlanner(load_config(_ROOT / "config" / "example.yaml"), cal)
    kinds = list(TicketKind)
    requests = [
        PlanRequest(kind=kinds[i % len(kinds)], category=None, start=s, cycle_kind="dispatch")
        for i, s in enumerate(start_dts)
    ]
    planned = sum(len(p) for p in planner.plan_many(requests))

    def planner_run() -> None:
        planner.plan_many(requests)

    naive_rate = naive_size / _best_time(naive_run, max(1, repeats - 2))
    scalar_rate = batch / _best_time(scalar_run, repeats)
    vector_rate = batch / _best_time(vector_run, repeats)
    planner_rate = planned / _best_time(planner_run, repeats)

    mix = "{" + ", ".join(str(n) for n in POLICY_MIX) + "}"
    workload = f"dispatch 2024-01-01..2026-12-15 uniform, n in {mix} wd, seed {SEED}"
    return [
        {
            "benchmark": "calendar.naive_loop",
            "value": naive_rate,
            "unit": "deadlines/s",
            "note": f"chinese_calendar.is_workday day by day; {naive_size:,} deadlines; {workload}",
        },
        {
            "benchmark": "calendar.scalar",
            "value": scalar_rate,
            "unit": "deadlines/s",
            "note": f"WorkCalendar.add_working_days; {batch:,} deadlines",
        },
        {
            "benchmark": "calendar.vectorised",
            "value": vector_rate,
            "unit": "deadlines/s",
            "note": f"add_working_days_many, batch {batch:,} (one call per distinct n)",
        },
        {
            "benchmark": "calendar.vectorised_vs_naive",
            "value": vector_rate / naive_rate,
            "unit": "x",
            "note": "speed-up, same run",
        },
        {
            "benchmark": "calendar.scalar_vs_naive",
            "value": scalar_rate / naive_rate,
            "unit": "x",
            "note": "speed-up, same run",
        },
        {
            "benchmark": "deadlines.plan_many",
            "value": planner_rate,
            "unit": "deadlines/s",
            "note": f"the bot's path: {batch:,} tickets of mixed kinds → {planned:,} deadlines with datetimes",
        },
        {
            "benchmark": "deadlines.plan_many_vs_naive",
            "value": planner_rate / naive_rate,
            "unit": "x",
            "note": "speed-up, same run (the whole planning, not only the calendar sum)",
        },
        {
            "benchmark": "calendar.construction",
            "value": build_s * 1000,
            "unit": "ms",
            "note": "WorkCalendar() for 2004..2099, best of runs",
        },
    ]


def format_table(rows: Sequence[dict[str, object]]) -> str:
    cells = [(str(r["benchmark"]), _fmt(r["value"]), str(r["unit"]), str(r["note"])) for r in rows]
    header = ("benchmark", "value", "unit", "note")
    widths = [max(len(row[k]) for row in [header, *cells]) for k in range(4)]
    lines = [
        "  ".join((h.rjust(widths[k]) if k == 1 else h.ljust(widths[k])) for k, h in enumerate(line)).rstrip()
        for line in [header, *cells]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    return str(value)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    print(format_table(run(quick=args.quick)))


if __name__ == "__main__":
    main()
