"""The callback benchmark's load generators and what one round of them measured.

Two ways to send prepared requests to a server at ``CONCURRENCY`` keep-alive connections: ``wrk`` (a C load
generator, a few per cent of a core), and an aiohttp client in this process (it needs a core of its own and, against
a fast handler, it is the bottleneck). ``wrk`` runs for a given time and sends the prepared requests in order, each
once; it reports how many it had to send again because the file ran out, so the caller can redo the round.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import percentile

CONCURRENCY = 50
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_callbacks.lua"

Prepared = list[tuple[str, bytes]]  # (path with query, body)
Settle = Callable[[], Awaitable[None]]  # until the server has handled, after answering, every request it was sent


def load_generator() -> str:
    """``wrk`` when it is installed (and not overridden with ``BENCH_LOADGEN=python``), else ``python``."""
    if os.environ.get("BENCH_LOADGEN", "").lower() == "python" or shutil.which("wrk") is None:
        return "python"
    return "wrk"


@dataclass(frozen=True)
class Round:
    """One measurement: answered requests, their rate and latencies, and the server's CPU time per request."""

    answered: int
    rate: float
    p50: float
    p99: float
    maximum: float
    cpu_per_request: float | None  # seconds; None where /proc cannot be read
    settled: float = 0.0  # seconds after the last answer until every request of the round was handled
    repeats: int = 0  # times wrk ran out of prepared requests and started them over


@dataclass(frozen=True)
class Rounds:
    """Measurements of the same server and their medians (a shared machine varies by ±20 % from one round to the
    next; the median of three is steadier than one)."""

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
        return " / ".join(ms(r.p99) for r in self.rounds)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads) so far, from ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _settled(settle: Settle | None) -> float:
    started = time.perf_counter()
    if settle is not None:
        await settle()
    return time.perf_counter() - started


async def python_round(
    base: str, prepared: Prepared, pid: int, *, pace: float | None = None, settle: Settle | None = None
) -> Round:
    """Every request through ``CONCURRENCY`` keep-alive connections of an aiohttp client in this process, as fast as
    they are answered or, with ``pace``, request ``i`` due at ``i / pace`` s (latency then counts from when it was
    due, so a late start is not hidden)."""
    latencies: list[float] = []
    queue = iter(enumerate(prepared))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    headers = {"Content-Type": "text/xml"}
    before = cpu_seconds(pid)
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
                        raise RuntimeError(f"{base}{path.split('?')[0]} answered {response.status}: {text[:200]}")
                latencies.append(time.perf_counter() - started)

        begun = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - begun
    settled = await _settled(settle)
    after = cpu_seconds(pid)
    cpu = None if before is None or after is None else (after - before) / len(prepared)
    return Round(
        answered=len(prepared),
        rate=len(prepared) / elapsed,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        maximum=max(latencies),
        cpu_per_request=cpu,
        settled=settled,
    )


_WRK_LINE = re.compile(r"^WRK (.*)$", re.MULTILINE)


async def wrk_round(base: str, requests_file: Path, pid: int, seconds: float, *, settle: Settle | None = None) -> Round:
    """``wrk`` with ``CONCURRENCY`` connections on one thread for ``seconds``, sending the file's requests in order
    (starting over if they run out, counted in :attr:`Round.repeats`)."""
    before = cpu_seconds(pid)
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
    after = cpu_seconds(pid)
    line = _WRK_LINE.search(output)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {output[-500:]}")
    stats = {key: int(value) for key, value in (item.split("=") for item in line.group(1).split())}
    if stats["socket_errors"] or stats["status_errors"]:
        raise RuntimeError(f"{base}: {stats['status_errors']} answers not 200, {stats['socket_errors']} socket errors")
    answered = stats["requests"]
    return Round(
        answered=answered,
        rate=answered / (stats["duration_us"] / 1e6),
        p50=stats["p50_us"] / 1e6,
        p99=stats["p99_us"] / 1e6,
        maximum=stats["max_us"] / 1e6,
        cpu_per_request=None if before is None or after is None else (after - before) / answered,
        settled=settled,
        repeats=stats["repeats"],
    )


def write_requests(prepared: Prepared, path: Path) -> Path:
    """The prepared requests as ``wrk_callbacks.lua`` reads them, one a line: path with query, a tab, the body."""
    with path.open("w", encoding="utf-8") as out:
        for target, body in prepared:
            out.write(f"{target}\t{body.decode()}\n")
    return path
