"""WeCom app callbacks: signed, encrypted ``POST /wecom/callback``, at a steady 100 a second and at 50 concurrent
connections, against a bare aiohttp handler measured in the same run.

Two servers, each in its own process, driven by the same load generator: (a) a bare aiohttp app whose one POST
handler reads the body and answers ``success`` (served by ``web.run_app`` on the event loop the bot runs on), and
(b) the real bot (``run_bot.py serve``) with the app callback configured. Every callback is prepared before the
clock starts: distinct text messages (distinct ``MsgId``), each encrypted and signed as WeCom does. The bot answers a
repeated ``MsgId`` as a duplicate, which costs less, so every callback the bot is sent is one it has not seen.

The throughput at 50 in flight comes from ``wrk`` (``apt-get install wrk``) when it is installed: a C load generator
that needs a few per cent of a core, so on a 2-core machine the server measured gets a core of its own. ``wrk`` keeps
``CONCURRENCY`` keep-alive connections busy for ``ROUND_SECONDS`` and sends the prepared callbacks in order. How many
to prepare follows from what the bot was measured doing: a short calibration round first, then each round sized from
the fastest rate seen so far × its length × ``MARGIN``. A round that still runs out (the machine sped up, say) is not
counted: it is redone with a bigger set, sized from the rate it reached, and the table says how many were redone.
Without ``wrk`` (or with ``BENCH_LOADGEN=python``) an aiohttp client in this process sends a fixed number; that
client needs a core of its own and, against the bare handler, it is the bottleneck, so the share of bare comes out
flattering. The table says which load generator ran. The steady 100 a second always come from the aiohttp client,
which that rate costs a few per cent of a core.

Every answer must be 200, and after every counted round the bot's inbox must hold a row for every callback answered
in it, so no figure counts work that was not done. The CPU time each server process used per request is read from
``/proc``, for the bot once every callback of the round has been handled (no row left pending), so it includes the
handling after the answer. That handling is the command router's: 50 members send hundreds of messages a second, far
over the flood limit (10 a minute each), so after each member's first ten, an event stops at the limit (the first
over it is answered with a notice), as a flood would in production. The warm-up before the rounds spends those first
ten (real commands, each a lookup and a reply), so that the rounds measure the same thing; the table says so.
On each database the bot is measured in three rounds, each right after a round of the bare handler (both servers
run throughout), and the figures are the medians: a shared machine's speed drifts by ±20 % within a minute, and so
it moves both sides of the share of bare alike.

Targets: p99 ≤ 10 ms at a steady 100 callbacks/s, and at least 2,000 callbacks/s at 50 in flight, on each database.
The share of the bare handler and the p99 at 50 in flight are reported beside them. Run:
``python bench/bench_callbacks.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    bot_process,
    free_port,
    pg_available,
    pg_schema,
    print_table,
    serving_process,
    sqlite_url,
)
from bench.loadgen import (  # noqa: E402
    CONCURRENCY,
    Prepared,
    Round,
    Rounds,
    load_generator,
    ms,
    python_round,
    write_requests,
    wrk_round,
)
from bot.wecom.callbacks import APP_PATH  # noqa: E402
from bot.wecom.crypto import CallbackCrypto  # noqa: E402
from bot.wecom.parse import APP_SOURCE  # noqa: E402
from config.settings import Settings  # noqa: E402
from handlers.router import COMMAND_LIMITS  # noqa: E402
from store.db import create_engine  # noqa: E402
from store.models import inbox  # noqa: E402

WARMUP = 200
# the bot's warm-up also spends every member's commands of the minute (and its one notice), so that every round
# measures the same thing: a flood held at the limit. Otherwise the first round alone would also run 300 real commands.
BOT_WARMUP = CONCURRENCY * (COMMAND_LIMITS[0].count + 2)
CORP_ID = "wwbenchcorp0000001"
TOKEN = "BenchCallbackToken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeCom's EncodingAESKey
WECOM_ENV = {"WECOM_CORP_ID": CORP_ID, "WECOM_APP_TOKEN": TOKEN, "WECOM_APP_AES_KEY": AES_KEY}
TARGET_RATE = 2000.0  # callbacks/s at CONCURRENCY in flight
TARGET_PACED_P99_MS = 10.0  # at a steady PACED_RATE
PACED_RATE = 100.0  # callbacks/s offered in the paced run: latency without a queue of 50 in front of each one
ROUNDS = 3  # rounds per server and database, the bare handler's alternating with the bot's; the figures are medians
CALIBRATION_SECONDS = 1.0  # the wrk round before the measured ones, whose rate sizes the first of them
MARGIN = 1.5  # callbacks prepared per callback the measured rate expects
MIN_PREPARED = 4 * CONCURRENCY
MAX_REDOS = 8  # a round that ran out is redone at least twice as big: 8 times is 256× the first size
BARE_PREPARED = 5000  # the bare handler does not read what it is sent: a few thousand, repeated, do


# the baseline: one POST handler that reads the body and answers "success", on the bot's event loop
BARE_SERVER = """
import asyncio, sys
from aiohttp import web

async def callback(request):
    await request.read()
    return web.Response(text="success", content_type="text/plain")

async def health(request):
    return web.Response(text="ok")

if sys.argv[3] == "uvloop":
    import uvloop
    loop = uvloop.new_event_loop()
else:
    loop = asyncio.new_event_loop()
app = web.Application()
app.router.add_post(sys.argv[2], callback)
app.router.add_get("/healthz", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=loop)
"""


def _callbacks(count: int, first_msgid: int) -> Prepared:
    """``count`` text-message callbacks as WeCom sends them: XML encrypted for the corp, the envelope signed."""
    crypto = CallbackCrypto(TOKEN, AES_KEY, CORP_ID)
    timestamp = str(int(time.time()))
    prepared: Prepared = []
    for i in range(count):
        msgid = first_msgid + i
        plain = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
            f"<FromUserName><![CDATA[member{i % CONCURRENCY:02d}]]></FromUserName>"
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


@contextlib.asynccontextmanager
async def _bare_server() -> AsyncIterator[tuple[str, int]]:
    """The bare handler in its own process, on the bot's event loop; yields its base URL and process id once it
    answers."""
    port = free_port()
    loop = Settings.model_fields["event_loop"].default
    args = [sys.executable, "-c", BARE_SERVER, str(port), APP_PATH, loop]
    async with serving_process(args, port, name="the bare server") as (base, pid):
        yield base, pid


SETTLE_WITHIN = 120.0  # seconds a round's callbacks may take to be handled after its last answer


async def _all_handled(url: str) -> None:
    """Until no callback in the inbox is still pending (each one handled by the command router and marked)."""
    engine = create_engine(url)
    deadline = time.monotonic() + SETTLE_WITHIN
    try:
        while True:
            async with engine.connect() as conn:
                query = (
                    select(func.count())
                    .select_from(inbox)
                    .where(inbox.c.source == APP_SOURCE, inbox.c.status == "pending")
                )
                if int((await conn.execute(query)).scalar_one()) == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"callbacks still pending {SETTLE_WITHIN:.0f} s after the round")
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


async def _inbox_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            query = select(func.count()).select_from(inbox).where(inbox.c.source == APP_SOURCE)
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


class MsgIds:
    """``MsgId``s not yet used in this bot's database: every callback the bot is sent is new to it."""

    def __init__(self) -> None:
        self._next = 1

    def take(self, count: int) -> int:
        first, self._next = self._next, self._next + count
        return first


@dataclass
class BotRun:
    """One bot under measurement: where it serves, its database, and what its rounds learnt so far."""

    base: str
    pid: int
    url: str
    tmp: Path
    ids: MsgIds = field(default_factory=MsgIds)
    expected: float = 0.0  # callbacks/s the next round is sized for: the fastest rate measured so far
    redone: int = 0  # rounds that ran out of prepared callbacks and were sent again, bigger

    async def python(self, count: int, *, pace: float | None = None, settle: bool = True) -> Round:
        """``count`` new callbacks from the aiohttp client; every answered one must be in the inbox."""
        before = await _inbox_rows(self.url)
        measured = await python_round(
            self.base,
            _callbacks(count, self.ids.take(count)),
            self.pid,
            pace=pace,
            settle=(lambda: _all_handled(self.url)) if settle else None,
        )
        await self._check_stored(before, measured.answered, in_flight=0)
        self.expected = max(self.expected, measured.rate)
        return measured

    async def wrk(self, seconds: float) -> Round:
        """A ``wrk`` round of ``seconds`` in which every callback is sent once: the prepared set is sized from the
        expected rate; a round that ran out is not counted but redone with a bigger set."""
        size = max(MIN_PREPARED, math.ceil(self.expected * seconds * MARGIN))
        for _ in range(MAX_REDOS + 1):
            requests_file = write_requests(_callbacks(size, self.ids.take(size)), self.tmp / "bot.txt")
            before = await _inbox_rows(self.url)
            settle = lambda: _all_handled(self.url)  # noqa: E731
            measured = await wrk_round(self.base, requests_file, self.pid, seconds, settle=settle)
            self.expected = max(self.expected, measured.rate)
            if not measured.repeats:
                # wrk stops with up to CONCURRENCY callbacks in flight, which the bot may have stored uncounted
                await self._check_stored(before, measured.answered, in_flight=CONCURRENCY)
                return measured
            self.redone += 1
            size = max(2 * size, math.ceil(measured.rate * seconds * MARGIN))
        raise RuntimeError(f"wrk ran out of prepared callbacks {MAX_REDOS + 1} times, the last time {size // 2:,}")

    async def _check_stored(self, before: int, answered: int, *, in_flight: int) -> None:
        stored = await _inbox_rows(self.url) - before
        if not answered <= stored <= answered + in_flight:
            raise RuntimeError(f"{stored} new inbox rows for {answered} answered callbacks")


@dataclass(frozen=True)
class Bare:
    """The bare handler's server, running beside the bot's so that their rounds can alternate."""

    base: str
    pid: int
    tmp: Path

    async def round(self, loadgen: str, count: int, seconds: float) -> Round:
        if loadgen == "python":
            return await python_round(self.base, _callbacks(count, 1), self.pid)
        requests_file = self.tmp / "bare.txt"
        if not requests_file.exists():
            write_requests(_callbacks(BARE_PREPARED, 1), requests_file)
        return await wrk_round(self.base, requests_file, self.pid, seconds)


def _met(met: bool) -> str:
    return "met" if met else "MISSED"


async def _bot(
    backend: str, url: str, loadgen: str, count: int, seconds: float, paced: int, bare: Bare
) -> tuple[list[dict[str, Any]], Rounds]:
    """The bot's rounds on one database, each right after a round of the bare handler's: a machine that slows down
    or speeds up meanwhile (a shared one does, by ±20 %) then moves both figures of the share alike."""
    bare_rounds, bot_rounds = [], []
    window = COMMAND_LIMITS[0].per_seconds
    # without Redis: the in-process limiter, which starts empty for each bot, as a single bot without Redis runs
    with tempfile.TemporaryDirectory(prefix="hotline-bench-callbacks-") as tmp:
        async with bot_process(url, without=["REDIS_URL"], **WECOM_ENV) as (base, pid):
            bot = BotRun(base, pid, url, Path(tmp))
            # connections, caches, the first inbox rows; every member's commands of the minute, handled before
            # the rounds
            flooded = time.monotonic()
            await bot.python(BOT_WARMUP)
            if loadgen == "wrk":
                await bot.wrk(CALIBRATION_SECONDS)  # sized from the warm-up's rate: it may well run out and be redone
                bot.redone = 0
            for _ in range(ROUNDS):
                bare_rounds.append(await bare.round(loadgen, count, seconds))
                bot_rounds.append(await (bot.wrk(seconds) if loadgen == "wrk" else bot.python(count)))
            if time.monotonic() - flooded > window:
                # the members' first commands have left the window: the last round's first ones were real commands
                raise RuntimeError(
                    f"{backend}: the warm-up and rounds outlasted the flood limit's window ({window:g} s)"
                )
            paced_round = await bot.python(paced, pace=PACED_RATE, settle=False)
    measured, bare_measured = Rounds(bot_rounds), Rounds(bare_rounds)
    rate, share = measured.rate, 100 * measured.rate / bare_measured.rate
    name = f"callbacks POST {APP_PATH} ({backend})"
    how = f"{ROUNDS} rounds of {seconds:g} s" if loadgen == "wrk" else f"{ROUNDS} rounds of {count}"
    sizing = (
        f"; callbacks prepared from the measured rate × {MARGIN:g}, {bot.redone} round(s) redone bigger"
        if loadgen == "wrk"
        else ""
    )
    paced_p99 = paced_round.p99 * 1000
    rows = [
        {
            "benchmark": name,
            "value": rate,
            "unit": "req/s",
            "note": (
                f"target ≥ {TARGET_RATE:,.0f}/s: {_met(rate >= TARGET_RATE)}; median of {how} "
                f"({measured.describe_rates()}) signed+encrypted text callbacks, each sent once, {CONCURRENCY} "
                "concurrent keep-alive, load from "
                f"{loadgen}{sizing}, bot in its own process, {measured.cpu} (until every callback was handled, at most "
                f"{measured.settled:.1f} s after the round's last answer); all 200, every answered one in the inbox; "
                f"from {CONCURRENCY} members, each over the flood limit since the warm-up ({BOT_WARMUP} callbacks)"
            ),
        },
        {
            "benchmark": f"{name} p99 at {PACED_RATE:.0f} req/s",
            "value": paced_p99,
            "unit": "ms",
            "note": f"target ≤ {TARGET_PACED_P99_MS:.0f} ms: {_met(paced_p99 <= TARGET_PACED_P99_MS)}; {paced} "
            f"callbacks offered at a steady {PACED_RATE:.0f}/s over {CONCURRENCY} connections (Python client), "
            f"timed from when each was due; p50 {ms(paced_round.p50)}, max {ms(paced_round.maximum)}",
        },
        {
            "benchmark": f"{name} vs bare",
            "value": share,
            "unit": "% of bare",
            "note": f"not a target: {rate:,.0f} / {bare_measured.rate:,.0f} req/s, the medians of the bot's rounds and "
            f"of the bare handler's rounds alternating with them ({bare_measured.describe_rates()}; "
            f"{bare_measured.cpu}); round by round "
            + " / ".join(
                f"{100 * b.rate / a.rate:.1f} %" for a, b in zip(bare_measured.rounds, measured.rounds, strict=True)
            ),
        },
        {
            "benchmark": f"{name} p99 at {CONCURRENCY} in flight",
            "value": measured.p99 * 1000,
            "unit": "ms",
            "note": f"not a target: median of the rounds' p99 ({measured.describe_p99s()}); p50 {ms(measured.p50)}, "
            f"max {ms(measured.maximum)}",
        },
    ]
    return rows, bare_measured


async def run(quick: bool = False) -> list[dict[str, Any]]:
    count, seconds, paced = (2000, 2.0, 300) if quick else (10_000, 4.0, 1000)
    loadgen = load_generator()
    rows: list[dict[str, Any]] = []
    bare_rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="hotline-bench-bare-") as tmp:
        async with _bare_server() as (bare_base, bare_pid):
            bare = Bare(bare_base, bare_pid, Path(tmp))
            await python_round(bare_base, _callbacks(WARMUP, 1), bare_pid)
            with sqlite_url() as url:
                backend_rows, measured = await _bot("SQLite", url, loadgen, count, seconds, paced, bare)
                rows += backend_rows
                bare_rounds += measured.rounds
            if pg_available():
                async with pg_schema() as url:
                    backend_rows, measured = await _bot("PostgreSQL", url, loadgen, count, seconds, paced, bare)
                    rows += backend_rows
                    bare_rounds += measured.rounds
            else:
                unreachable = "PostgreSQL not reachable"
                rows.append({"benchmark": "callbacks (PostgreSQL)", "value": "-", "unit": "", "note": unreachable})
    bare_all = Rounds(bare_rounds)
    baseline = {
        "benchmark": "callbacks bare aiohttp handler",
        "value": bare_all.rate,
        "unit": "req/s",
        "note": (
            f"baseline: median of its {len(bare_rounds)} rounds, each just before one of the bot's "
            f"({bare_all.describe_rates()}), same load ({loadgen}), own process, "
            f"{Settings.model_fields['event_loop'].default} loop as the bot, handler reads the body and answers "
            f"'success'; p50 {ms(bare_all.p50)}, p99 {ms(bare_all.p99)}, {bare_all.cpu}"
        ),
    }
    return [baseline, *rows]


if __name__ == "__main__":
    print_table(asyncio.run(run(quick="--quick" in sys.argv)))
