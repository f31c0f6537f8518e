"""Ingest throughput: signed tickets through ``POST /api/tickets`` of a bot running in its own process.

The client (this process) prepares every signed request before the clock starts, then keeps ``CONCURRENCY``
requests in flight. Every answer must be 201 and every ticket must be in the database afterwards, so the
figure cannot count work that was not done. Run: ``python bench/bench_ingest.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bot_server, on_both_backends, percentile, print_table  # noqa: E402
from bot.hotline.signing import signed_headers  # noqa: E402
from store.db import create_engine  # noqa: E402
from store.models import tickets  # noqa: E402

SECRET = "bench-secret"
CONCURRENCY = 32
CATEGORIES = ["环卫", "市容景观", "社区绿化", None]
KINDS = ["常规", "常规", "常规", "紧急", "次紧急"]


def _bodies(count: int, prefix: str) -> list[bytes]:
    return [
        json.dumps(
            {
                "ticket_no": f"{prefix}{i:07d}",
                "content": f"第{i}号诉求：小区门口垃圾桶满溢，已三天无人清运，气味很大，请尽快处理。",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "urgency": KINDS[i % len(KINDS)],
                "citizen_name": "王先生",
                "citizen_phone": f"139{i:08d}",
                "address": f"某区某路 {i % 500} 号",
            },
            ensure_ascii=False,
        ).encode()
        for i in range(count)
    ]


async def _drive(base: str, bodies: list[bytes]) -> tuple[float, list[float]]:
    now = int(time.time())
    prepared = [(body, {"Content-Type": "application/json", **signed_headers(SECRET, now, body)}) for body in bodies]
    latencies: list[float] = []
    queue = iter(prepared)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            for body, headers in queue:
                started = time.perf_counter()
                async with session.post(base + "/api/tickets", data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 201:
                        raise RuntimeError(f"ingest answered {response.status}: {await response.text()}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies


async def _count(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(tickets))).scalar_one())
    finally:
        await engine.dispose()


async def _measure(backend: str, url: str, count: int) -> dict[str, Any]:
    async with bot_server(url, HOTLINE_INGEST_SECRET=SECRET) as base:
        await _drive(base, _bodies(200, "W"))  # warm-up: connections, caches
        elapsed, latencies = await _drive(base, _bodies(count, "B"))
    stored = await _count(url)
    if stored != count + 200:
        raise RuntimeError(f"{backend}: {stored} tickets stored, expected {count + 200}")
    rate = count / elapsed
    return {
        "benchmark": f"ingest POST /api/tickets ({backend})",
        "value": rate,
        "unit": "tickets/s",
        "note": (
            f"{count} signed tickets, {CONCURRENCY} concurrent, server in its own process; "
            f"p50 {percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms; "
            f"all persisted (target ≥ 500/s)"
        ),
    }


async def run(quick: bool = False) -> list[dict[str, Any]]:
    count = 1000 if quick else 5000
    return await on_both_backends("ingest", lambda backend, url: _measure(backend, url, count))


if __name__ == "__main__":
    print_table(asyncio.run(run(quick="--quick" in sys.argv)))
