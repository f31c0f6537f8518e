"""WeCom app callbacks: signed, encrypted ``POST /wecom/callback`` at 50 concurrent connections, against a bare
aiohttp handler measured in the same run.

Two servers, each in its own process, driven by the same load generator: (a) a bare aiohttp app whose one POST
handler reads the body and answers ``success`` (served by ``web.run_app`` on the event loop the bot runs on), and
(b) the real bot (``run_bot.py serve``) with the app callback configured. Every callback is prepared before the
clock starts: distinct text messages (distinct ``MsgId``), each encrypted and signed as WeCom does.

The load comes from ``wrk`` (``apt-get install wrk``) when it is installed: a C load generator that needs a few per
cent of a core, so on a 2-core machine the server measured gets a core of its own. ``wrk`` keeps ``CONCURRENCY``
keep-alive connections busy for ``ROUND_SECONDS`` and sends each prepared callback once (the Lua script refuses to
repeat one to the bot). Without ``wrk`` (or with ``BENCH_LOADGEN=python``) an aiohttp client in this process sends a
fixed number; that client needs a core of its own and, against the bare handler, it is the bottleneck: it then
measures itself, not the handler, and flatters the ratio. The table says which load generator ran.

Every answer must be 200, and afterwards the bot's inbox must hold a row for every answered callback, so the figure
cannot count work that was not done. The CPU time each server process used per request is read from ``/proc``, for
the bot once every callback of the round has been handled (no row left pending), so it includes the handling after
the answer. That handling is the command router's: 50 members send hundreds of messages a second, far over the flood
limit (10 a minute each), so after each member's first ten, an event stops at the limit (the first over it is
answered with a notice), as a flood would in production. The warm-up before the rounds spends those first ten (real
commands, each a lookup and a reply), so that the three rounds measure the same thing; the table says so.
On each database the bot is measured in three rounds, each right after a round of the bare handler (both servers
run throughout), and the figures are the medians: a shared machine's speed drifts by ±20 % within a minute, and so
it moves both sides of the ratio alike. Targets (issue 3): the bot's throughput at least 30 % of the bare
handler's, p99 at most 20 ms. Run:
``python bench/bench_callbacks.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    bot_process,
    free_port,
    percentile,
    pg_available,
    pg_schema,
    print_table,
    serving_process,
    sqlite_url,
)
from bot.wecom.callbacks import APP_PATH  # noqa: E402
from bot.wecom.crypto import CallbackCrypto  # noqa: E402
from bot.wecom.parse import APP_SOURCE  # noqa: E402
from config.settings import Settings  # noqa: E402
from handlers.router import COMMAND_LIMITS  # noqa: E402
from store.db import create_engine  # noqa: E402
from store.models import inbox  # noqa: E402

CONCURRENCY = 50
WARMUP = 200
# the bot's warm-up also spends every member's commands of the minute (and its one notice), so that every round
# measures the same thing: a flood held at the limit. Otherwise the first round alone would also run 300 real commands.
BOT_WARMUP = CONCURRENCY * (COMMAND_LIMITS[0].count + 2)
CORP_ID = "wwbenchcorp0000001"
TOKEN = "BenchCallbackToken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeCom's EncodingAESKey
WECOM_ENV = {"WECOM_CORP_ID": CORP_ID, "WECOM_APP_TOKEN": TOKEN, "WECOM_APP_AES_KEY": AES_KEY}
TARGET_RATIO = 30.0  # % of the bare handler
TARGET_P99_MS = 20.0
PACED_RATE = 100.0  # req/s offered in the paced run: latency without a queue of 50 in front of each request
ROUNDS = 3  # rounds per server and database, the bare handler's alternating with the bot's; the figures are medians
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_callbacks.lua"
PREPARED_PER_SECOND = 6000  # callbacks prepared per second of a wrk round against the bot (it must not run out)
BARE_PREPARED = 5000  # the bare handler does not read what it is sent: a few thousand, repeated, do


def load_generator() -> str:
    """``wrk`` when it is installed (and not overridden with ``BENCH_LOADGEN=python``), else ``python``."""
    if os.environ.get("BENCH_LOADGEN", "").lower() == "python" or shutil.which("wrk") is None:
        return "python"
    return "wrk"


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


@dataclass(frozen=True)
class Round:
    """One measurement: answered requests, their rate and latencies, and the server's CPU time per request."""

    answered: int
    rate: float
    p50: float
    p99: float
    maximum: float
    cpu_per_request: float | None  # seconds; None where /proc cannot be read
    settled: float = 0.0  # seconds after the last answer until every callback of the round was handled


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads) so far, from ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Settle = Callable[[], Awaitable[None]]  # until the bot has handled every callback it answered


async def _python_round(
    base: str, prepared: Prepared, pid: int, *, pace: float | None = None, settle: Settle | None = None
) -> Round:
    """Every callback through ``CONCURRENCY`` keep-alive connections of an aiohttp client in this process, as fast as
    they are answered or, with ``pace``, callback ``i`` due at ``i / pace`` s (latency then counts from when it was
    due, so a late start is not hidden)."""
    latencies: list[float] = []
    queue = iter(enumerate(prepared))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    headers = {"Content-Type": "text/xml"}
    cpu_before = _cpu_seconds(pid)
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
    settled = await _settled(settle)
    cpu_after = _cpu_seconds(pid)
    cpu = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / len(prepared)
    return Round(
        len(prepared),
        len(prepared) / elapsed,
        percentile(latencies, 50),
        percentile(latencies, 99),
        max(latencies),
        cpu,
        settled,
    )


async def _settled(settle: Settle | None) -> float:
    started = time.perf_counter()
    if settle is not None:
        await settle()
    return time.perf_counter() - started


_WRK_LINE = re.compile(r"^WRK (.*)$", re.MULTILINE)


async def _wrk_round(
    base: str, requests_file: Path, pid: int, seconds: float, *, repeats_allowed: bool, settle: Settle | None = None
) -> Round:
    """``wrk`` with ``CONCURRENCY`` connections on one thread for ``seconds``, sending the file's callbacks in order."""
    cpu_before = _cpu_seconds(pid)
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{CONCURRENCY}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        base,
        "--",
        str(requests_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await proc.communicate())[0].decode()
    settled = await _settled(settle)
    cpu_after = _cpu_seconds(pid)
    line = _WRK_LINE.search(output)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {output[-500:]}")
    stats = {key: int(value) for key, value in (item.split("=") for item in line.group(1).split())}
    if stats["socket_errors"] or stats["status_errors"]:
        raise RuntimeError(
            f"{base}{APP_PATH}: {stats['status_errors']} answers not 200, {stats['socket_errors']} socket errors"
        )
    if stats["repeats"] and not repeats_allowed:
        raise RuntimeError(f"wrk ran out of prepared callbacks: raise PREPARED_PER_SECOND ({PREPARED_PER_SECOND})")
    answered = stats["requests"]
    cpu = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / answered
    return Round(
        answered,
        answered / (stats["duration_us"] / 1e6),
        stats["p50_us"] / 1e6,
        stats["p99_us"] / 1e6,
        stats["max_us"] / 1e6,
        cpu,
        settled,
    )


def _write_requests(prepared: Prepared, directory: str, name: str) -> Path:
    path = Path(directory) / name
    with path.open("w", encoding="utf-8") as out:
        for target, body in prepared:
            out.write(f"{target}\t{body.decode()}\n")
    return path


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass(frozen=True)
class Rounds:
    """``ROUNDS`` measurements of the same server and their medians (a shared 2-core machine varies by ±20 % from
    one run to the next; the median of three is steadier than one)."""

    rounds: list[Round]

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.rounds)

    @property
    def p50(self) -> float:
        return statistics.median(r.p50 for r in self.rounds)

    @property
    def p99(self) -> float:
        return statistics.median(r.p99 for r in self.rounds)

    @property
    def maximum(self) -> float:
        return max(r.maximum for r in self.rounds)

    @property
    def answered(self) -> int:
        return sum(r.answered for r in self.rounds)

    @property
    def cpu(self) -> str:
        values = [r.cpu_per_request for r in self.rounds]
        if any(v is None for v in values):
            return "CPU per request not measured"
        return f"{statistics.median(v for v in values if v is not None) * 1e6:.0f} µs CPU per request"

    @property
    def settled(self) -> float:
        return max(r.settled for r in self.rounds)

    def describe_rates(self) -> str:
        return " / ".join(f"{r.rate:,.0f}" for r in self.rounds)

    def describe_p99s(self) -> str:
        return " / ".join(_ms(r.p99) for r in self.rounds)


async def _round(
    base: str,
    pid: int,
    loadgen: str,
    count: int,
    seconds: float,
    i: int,
    tmp: str,
    *,
    bare: bool,
    settle: Settle | None = None,
) -> Round:
    """Round ``i`` against one server: with wrk, ``seconds`` long; with the Python client, ``count`` callbacks. The
    bot is sent callbacks it has not seen; the bare handler, which does not read them, the same few thousand."""
    first = 1_000_000 * (i + 1)
    if loadgen == "python":
        return await _python_round(base, _callbacks(count, first), pid, settle=settle)
    if bare:
        requests_file = Path(tmp) / "bare.txt"
        if not requests_file.exists():
            _write_requests(_callbacks(BARE_PREPARED, 1_000_000), tmp, requests_file.name)
    else:
        requests_file = _write_requests(_callbacks(int(seconds * PREPARED_PER_SECOND), first), tmp, f"round{i}.txt")
    return await _wrk_round(base, requests_file, pid, seconds, repeats_allowed=bare, settle=settle)


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
                query = select(func.count()).select_from(inbox).where(
                    inbox.c.source == APP_SOURCE, inbox.c.status == "pending"
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


@dataclass(frozen=True)
class Bare:
    """The bare handler's server, running beside the bot's so that their rounds can alternate."""

    base: str
    pid: int


async def _bot(
    backend: str, url: str, loadgen: str, count: int, seconds: float, paced: int, server: Bare
) -> tuple[list[dict[str, Any]], Rounds]:
    """The bot's rounds on one database, each right after a round of the bare handler's: a machine that slows down
    or speeds up meanwhile (a shared one does, by ±20 %) then moves both figures of the ratio alike."""
    warmup, at_pace = _callbacks(BOT_WARMUP, 1), _callbacks(paced, 9_000_000)
    bare_rounds, bot_rounds = [], []
    window = COMMAND_LIMITS[0].per_seconds
    # without Redis: the in-process limiter, which starts empty for each bot, as a single bot without Redis runs
    async with bot_process(url, without=["REDIS_URL"], **WECOM_ENV) as (base, pid):
        # connections, caches, the first inbox rows; every member's commands of the minute, handled before the rounds
        flooded = time.monotonic()
        await _python_round(base, warmup, pid, settle=lambda: _all_handled(url))
        with tempfile.TemporaryDirectory(prefix="hotline-bench-callbacks-") as tmp:
            for i in range(ROUNDS):
                bare_rounds.append(await _round(server.base, server.pid, loadgen, count, seconds, i, tmp, bare=True))
                bot_rounds.append(
                    await _round(
                        base, pid, loadgen, count, seconds, i, tmp, bare=False, settle=lambda: _all_handled(url)
                    )
                )
        if time.monotonic() - flooded > window:
            # the members' first commands have left the window: the last round's first ones were real commands again
            raise RuntimeError(f"{backend}: the warm-up and rounds outlasted the flood limit's window ({window:g} s)")
        paced_round = await _python_round(base, at_pace, pid, pace=PACED_RATE)
    measured, bare = Rounds(bot_rounds), Rounds(bare_rounds)
    stored = await _inbox_rows(url)
    answered = BOT_WARMUP + measured.answered + paced
    # wrk stops with up to CONCURRENCY callbacks in flight, which the bot may have stored without wrk counting them
    in_flight = ROUNDS * CONCURRENCY if loadgen == "wrk" else 0
    if not answered <= stored <= answered + in_flight:
        raise RuntimeError(f"{backend}: {stored} inbox rows for {answered} answered callbacks")
    rate, bare_rate = measured.rate, bare.rate
    ratio = 100 * rate / bare_rate
    p50, p99 = measured.p50, measured.p99
    name = f"callbacks POST {APP_PATH} ({backend})"
    how = f"{ROUNDS} rounds of {seconds:g} s" if loadgen == "wrk" else f"{ROUNDS} rounds of {count}"
    rows = [
        {
            "benchmark": name,
            "value": rate,
            "unit": "req/s",
            "note": (
                f"median of {how} signed+encrypted text callbacks, each sent once ({measured.describe_rates()}), "
                f"{CONCURRENCY} concurrent keep-alive, load from {loadgen}, bot in its own process, "
                f"{measured.cpu} (until every callback was handled, at most {measured.settled:.1f} s after the "
                "round's last answer); all 200, every answered one in the inbox; from "
                f"{CONCURRENCY} members, each over the flood limit since the warm-up ({BOT_WARMUP} callbacks)"
            ),
        },
        {
            "benchmark": f"{name} vs bare",
            "value": ratio,
            "unit": "% of bare",
            "note": f"{rate:,.0f} / {bare_rate:,.0f} req/s, the medians of the bot's rounds and of the bare "
            f"handler's rounds alternating with them ({bare.describe_rates()}; {bare.cpu}); round by round "
            + " / ".join(f"{100 * b.rate / a.rate:.1f} %" for a, b in zip(bare.rounds, measured.rounds, strict=True))
            + f" (target ≥ {TARGET_RATIO:.0f} %: "
            + ("met)" if ratio >= TARGET_RATIO else "MISSED)"),
        },
        {
            "benchmark": f"{name} p99",
            "value": p99 * 1000,
            "unit": "ms",
            "note": f"median of the rounds' p99 ({measured.describe_p99s()}); p50 {_ms(p50)}, max "
            f"{_ms(measured.maximum)} at {CONCURRENCY} in flight (target ≤ "
            f"{TARGET_P99_MS:.0f} ms: " + ("met)" if p99 * 1000 <= TARGET_P99_MS else "MISSED)"),
        },
        {
            "benchmark": f"{name} p99 at {PACED_RATE:.0f} req/s",
            "value": paced_round.p99 * 1000,
            "unit": "ms",
            "note": f"not a target: {paced} callbacks offered at a steady {PACED_RATE:.0f}/s over the same "
            f"{CONCURRENCY} connections (Python client), timed from when each was due; p50 {_ms(paced_round.p50)}",
        },
    ]
    return rows, bare


async def run(quick: bool = False) -> list[dict[str, Any]]:
    count, seconds, paced = (2000, 2.0, 300) if quick else (10_000, 4.0, 1000)
    loadgen = load_generator()
    rows: list[dict[str, Any]] = []
    bare_rounds: list[Round] = []
    async with _bare_server() as (bare_base, bare_pid):
        server = Bare(bare_base, bare_pid)
        await _python_round(bare_base, _callbacks(WARMUP, 1), bare_pid)
        with sqlite_url() as url:
            backend_rows, bare = await _bot("SQLite", url, loadgen, count, seconds, paced, server)
            rows += backend_rows
            bare_rounds += bare.rounds
        if pg_available():
            async with pg_schema() as url:
                backend_rows, bare = await _bot("PostgreSQL", url, loadgen, count, seconds, paced, server)
                rows += backend_rows
                bare_rounds += bare.rounds
        else:
            rows.append(
                {"benchmark": "callbacks (PostgreSQL)", "value": "-", "unit": "", "note": "PostgreSQL not reachable"}
            )
    bare = Rounds(bare_rounds)
    baseline = {
        "benchmark": "callbacks bare aiohttp handler",
        "value": bare.rate,
        "unit": "req/s",
        "note": (
            f"baseline: median of its {len(bare_rounds)} rounds, each just before one of the bot's "
            f"({bare.describe_rates()}), same load ({loadgen}), own process, "
            f"{Settings.model_fields['event_loop'].default} loop as the bot, handler reads the body and answers "
            f"'success'; p50 {_ms(bare.p50)}, p99 {_ms(bare.p99)}, {bare.cpu}"
        ),
    }
    return [baseline, *rows]


if __name__ == "__main__":
    print_table(asyncio.run(run(quick="--quick" in sys.argv)))
