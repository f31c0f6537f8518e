"""Resident memory of a bot process with 100,000 open tickets in its database (PostgreSQL): after start, and after
the deadline engine has ticked a few times with work to do. The engine reads only what is due, so the open tickets
must not come into memory. Target (issue 5): at most 200 MB.

``run_bot.py serve`` runs in its own process as in production (here with the WeCom sandbox, as ``make run``: no WeCom
credentials), on a copy of the sandbox config whose engine ticks every second. The tickets are generated in the
database beforehand (:func:`bench.bench_engine.load_open_tickets`), 1,000 of their deadlines due at start. The
figures are the process's VmRSS from ``/proc`` after ``/healthz`` first answers, and after at least five ticks (as
``/healthz`` counts them), with VmHWM, the peak; every due deadline must have been taken by then.

Run: ``python bench/bench_memory.py [--quick]`` (quick: 20,000 tickets).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_engine import load_open_tickets  # noqa: E402
from bench.common import ROOT, bot_process, pg_available, pg_schema, print_table  # noqa: E402
from bot.domain.clock import TZ  # noqa: E402
from config.loader import load_config  # noqa: E402
from store.db import create_engine, migrate  # noqa: E402

TICKETS = 100_000
DUE = 1_000
TICKS = 5
TARGET_MB = 200.0


def _memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


async def _ticks(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(base + "/healthz") as response:
        body: dict[str, Any] = await response.json()
    return int(body["checks"].get("deadline_engine", {}).get("ticks", 0))


async def _measure(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        config_path = Path(tmp) / "bench.yaml"
        config_path.write_text(
            (ROOT / "config" / "sandbox.yaml").read_text(encoding="utf-8") + "\nnags: {tick_seconds: 1}\n",
            encoding="utf-8",
        )
        config = load_config(config_path)
        async with pg_schema() as url:
            engine = create_engine(url)
            try:
                await migrate(engine)
                now = datetime.now(TZ)
                await load_open_tickets(engine, count, config, now=now, due=0)
                async with engine.begin() as conn:  # the accept deadlines of 1,000 tickets due when the bot starts
                    await conn.execute(
                        text(
                            "UPDATE deadlines SET next_due_at = :at WHERE name = 'accept' AND ticket_id IN "
                            "(SELECT id FROM tickets ORDER BY id LIMIT :due)"
                        ),
                        {"at": now - timedelta(minutes=1), "due": DUE},
                    )
                async with bot_process(url, BOT_CONFIG=str(config_path)) as (base, pid):
                    started = _memory(pid)
                    began = time.monotonic()
                    async with aiohttp.ClientSession() as session:
                        while await _ticks(session, base) < TICKS:
                            if time.monotonic() - began > 120:
                                raise RuntimeError("the deadline engine did not tick")
                            await asyncio.sleep(0.5)
                    ticked = _memory(pid)
                async with engine.connect() as conn:
                    left = (
                        await conn.execute(text("SELECT count(*) FROM deadlines WHERE next_due_at <= :at"), {"at": now})
                    ).scalar_one()
                if left:
                    raise RuntimeError(f"{left} due deadlines were not taken")
            finally:
                await engine.dispose()
    return {"started": started["VmRSS"], "ticked": ticked["VmRSS"], "peak": ticked["VmHWM"]}


async def run(quick: bool = False) -> list[dict[str, Any]]:
    if not pg_available():
        return [{"benchmark": "bot memory", "value": "-", "unit": "", "note": "PostgreSQL not reachable"}]
    count = 20_000 if quick else TICKETS
    m = await _measure(count)
    met = "met" if max(m["ticked"], m["peak"]) <= TARGET_MB else "MISSED"
    return [
        {
            "benchmark": f"bot process, {count:,} open tickets (PostgreSQL): resident memory after start",
            "value": m["started"],
            "unit": "MB",
            "note": "run_bot.py serve with the WeCom sandbox",
        },
        {
            "benchmark": f"the same after {TICKS}+ engine ticks ({DUE:,} deadlines due)",
            "value": m["ticked"],
            "unit": "MB",
            "note": f"peak {m['peak']:.0f} MB; target ≤ {TARGET_MB:.0f} MB; {met}",
        },
    ]


if __name__ == "__main__":
    print_table(asyncio.run(run(quick="--quick" in sys.argv)))
