"""WeCom app callbacks: signed, encrypted ``POST /wecom/callback`` at 50 concurrent connections, against a bare
aiohttp handler measured in the same run.

Two servers, each in its own process, driven by the same client code: (a) a bare aiohttp app whose one POST handler
reads the body and answers ``success`` (served by ``web.run_app`` with the bot's own options), and (b) the real bot
(``run_bot.py serve``) with the app callback configured. The client (this process) prepares every callback before
the clock starts: distinct text messages (distinct ``MsgId``), each encrypted and signed as WeCom does, then keeps
``CONCURRENCY`` keep-alive connections busy. Every answer must be 200, and afterwards the bot's inbox must hold one
row per callback, so the figure cannot count work that was not done.

Each server is measured in three rounds in a row and the figures are the medians. Targets (issue 3): the bot's
throughput at least 30 % of the bare handler's, p99 at most 20 ms. Run:
``python bench/bench_callbacks.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    bot_server,
    free_port,
    percentile,
    pg_available,
    pg_schema,
    print_table,
    serving,
    sqlite_url,
)
from bot.wecom.callbacks import APP_PATH  # noqa: E402
from bot.wecom.crypto import CallbackCrypto  # noqa: E402
from bot.wecom.inbound import APP_SOURCE  # noqa: E402
from store.db import create_engine  # noqa: E402
from store.models import inbox  # noqa: E402

CONCURRENCY = 50
WARMUP = 200
CORP_ID = "wwbenchcorp0000001"
TOKEN = "BenchCallbackToken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeCom's EncodingAESKey
WECOM_ENV = {"WECOM_CORP_ID": CORP_ID, "WECOM_APP_TOKEN": TOKEN, "WECOM_APP_AES_KEY": AES_KEY}
TARGET_RATIO = 30.0  # % of the bare handler
TARGET_P99_MS = 20.0
PACED_RATE = 100.0  # req/s offered in the paced run: latency without a queue of 50 in front of each request
ROUNDS = 3  # each server is measured this many times in a row; the figures are the rounds' medians

# the baseline: one POST handler that reads the body and answers "success", served as run_bot.py serves the bot
BARE_SERVER = """
import sys
from aiohttp import web

async def callback(request):
    await request.read()
    return web.Response(text="success", content_type="text/plain")

async def health(request):
    return web.Response(text="ok")

app = web.Application()
app.router.add_post(sys.argv[2], callback)
app.router.add_get("/healthz", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

Prepared = list[tuple[str, bytes]]  # (path with signed query, body)


def _callbacks(count: int, first_msgid: int) -> Prepared:
    """``count`` text-message callbacks as WeCom sends them: XML encrypted for the corp, the envelope signed."""
    crypto = CallbackCrypto(TOKEN, AES_KEY, CORP_ID)
    timestamp = str(int(time.time()))
    prepared: Prepared = []
    for i in range(count):
        msgid = first_msgid + i
        plain = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
            f"<FromUserName><![CDATA[member{i % 50:02d}]]></FromUserName>"
            f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[查询 2026112300{i % 1000:03d} 的处理进度]]></Content>"
            f"<MsgId>{msgid}</MsgId><AgentID>1000002</AgentID></xml>"
        ).encode()
        encrypt = crypto.encrypt(plain)
        nonce = str(1_500_000_000 + msgid)
        signature = crypto.signature(timestamp, nonce, encrypt)
        body = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            "<AgentID><![CDATA[1000002]]></AgentID></xml>"
        ).encode()
        prepared.append((f"{APP_PATH}?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}", body))
    return prepared


async def _drive(base: str, prepared: Prepared, *, pace: float | None = None) -> tuple[float, list[float]]:
    """Every callback through ``CONCURRENCY`` keep-alive connections, as fast as they are answered or, with
    ``pace``, callback ``i`` due at ``i / pace`` s (latency then counts from when it was due, so a late start is not
    hidden); (elapsed seconds, latencies)."""
    latencies: list[float] = []
    queue = iter(enumerate(prepared))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    headers = {"Content-Type": "text/xml"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            for i, (path, body) in queue:
                started = time.perf_counter()
                if pace is not None:
                    due = begun + i / pace
                    if due > started:
                        await asyncio.sleep(due - started)
                    started = due
                async with session.post(base + path, data=body, headers=headers) as response:
                    text = await response.text()
                    if response.status != 200:
                        raise RuntimeError(f"{base}{APP_PATH} answered {response.status}: {text[:200]}")
                latencies.append(time.perf_counter() - started)

        begun = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - begun
    return elapsed, latencies


@contextlib.asynccontextmanager
async def _bare_server() -> AsyncIterator[str]:
    """The bare handler in its own process; yields its base URL once it answers."""
    port = free_port()
    async with serving([sys.executable, "-c", BARE_SERVER, str(port), APP_PATH], port, name="the bare server") as base:
        yield base


async def _inbox_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            query = select(func.count()).select_from(inbox).where(inbox.c.source == APP_SOURCE)
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass(frozen=True)
class Rounds:
    """``ROUNDS`` measurements of the same server: rate and latency percentiles per round, and their medians (a
    shared 2-core machine varies by ±20 % from one run to the next; the median of three is steadier than one)."""

    rates: list[float]
    p50s: list[float]
    p99s: list[float]
    maxima: list[float]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def p50(self) -> float:
        return statistics.median(self.p50s)

    @property
    def p99(self) -> float:
        return statistics.median(self.p99s)

    def describe_rates(self) -> str:
        return " / ".join(f"{r:,.0f}" for r in self.rates)

    def describe_p99s(self) -> str:
        return " / ".join(_ms(p) for p in self.p99s)


async def _rounds(base: str, count: int) -> Rounds:
    rates, p50s, p99s, maxima = [], [], [], []
    for i in range(ROUNDS):
        elapsed, latencies = await _drive(base, _callbacks(count, 1_000_000 * (i + 1)))
        rates.append(count / elapsed)
        p50s.append(percentile(latencies, 50))
        p99s.append(percentile(latencies, 99))
        maxima.append(max(latencies))
    return Rounds(rates, p50s, p99s, maxima)


async def _bare(count: int) -> Rounds:
    async with _bare_server() as base:
        await _drive(base, _callbacks(WARMUP, 1))
        return await _rounds(base, count)


async def _bot(backend: str, url: str, count: int, paced: int, bare: Rounds) -> list[dict[str, Any]]:
    warmup, at_pace = _callbacks(WARMUP, 1), _callbacks(paced, 9_000_000)
    async with bot_server(url, **WECOM_ENV) as base:
        await _drive(base, warmup)  # connections, caches, the first inbox rows
        measured = await _rounds(base, count)
        _, paced_latencies = await _drive(base, at_pace, pace=PACED_RATE)
    stored = await _inbox_rows(url)
    if stored != WARMUP + ROUNDS * count + paced:
        raise RuntimeError(f"{backend}: {stored} inbox rows, expected {WARMUP + ROUNDS * count + paced}")
    rate, bare_rate = measured.rate, bare.rate
    ratio = 100 * rate / bare_rate
    p50, p99 = measured.p50, measured.p99
    name = f"callbacks POST {APP_PATH} ({backend})"
    return [
        {
            "benchmark": name,
            "value": rate,
            "unit": "req/s",
            "note": (
                f"median of {ROUNDS} rounds of {count} signed+encrypted text callbacks ({measured.describe_rates()}), "
                f"{CONCURRENCY} concurrent keep-alive, bot in its own process; all 200, all in the inbox"
            ),
        },
        {
            "benchmark": f"{name} vs bare",
            "value": ratio,
            "unit": "% of bare",
            "note": f"{rate:,.0f} / {bare_rate:,.0f} req/s (target ≥ {TARGET_RATIO:.0f} %: "
            + ("met)" if ratio >= TARGET_RATIO else "MISSED)"),
        },
        {
            "benchmark": f"{name} p99",
            "value": p99 * 1000,
            "unit": "ms",
            "note": f"median of the rounds' p99 ({measured.describe_p99s()}); p50 {_ms(p50)}, max "
            f"{_ms(max(measured.maxima))} at {CONCURRENCY} in flight (target ≤ "
            f"{TARGET_P99_MS:.0f} ms: " + ("met)" if p99 * 1000 <= TARGET_P99_MS else "MISSED)"),
        },
        {
            "benchmark": f"{name} p99 at {PACED_RATE:.0f} req/s",
            "value": percentile(paced_latencies, 99) * 1000,
            "unit": "ms",
            "note": f"not a target: {paced} callbacks offered at a steady {PACED_RATE:.0f}/s over the same "
            f"{CONCURRENCY} connections, timed from when each was due; p50 {_ms(percentile(paced_latencies, 50))}",
        },
    ]


async def run(quick: bool = False) -> list[dict[str, Any]]:
    count, paced = (2000, 300) if quick else (10_000, 1000)
    bare = await _bare(count)
    rows: list[dict[str, Any]] = [
        {
            "benchmark": "callbacks bare aiohttp handler",
            "value": bare.rate,
            "unit": "req/s",
            "note": (
                f"baseline: median of {ROUNDS} rounds ({bare.describe_rates()}) of the same {count} requests, same "
                f"client, own process, handler reads the body and answers 'success'; p50 {_ms(bare.p50)}, "
                f"p99 {_ms(bare.p99)}"
            ),
        }
    ]
    with sqlite_url() as url:
        rows += await _bot("SQLite", url, count, paced, bare)
    if pg_available():
        async with pg_schema() as url:
            rows += await _bot("PostgreSQL", url, count, paced, bare)
    else:
        rows.append(
            {"benchmark": "callbacks (PostgreSQL)", "value": "-", "unit": "", "note": "PostgreSQL not reachable"}
        )
    return rows


if __name__ == "__main__":
    print_table(asyncio.run(run(quick="--quick" in sys.argv)))
