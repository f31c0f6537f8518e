"""The crash run: a hotline office's traffic through a bot process that is SIGKILLed again and again.

``run_bot.py serve`` runs as a subprocess against a fresh database and the fake WeCom (served here, over real HTTP);
the office hands tickets over (signed ``POST /api/tickets``, each pushed into its unit's work group) and members ask
for them in the groups (``/查``, the robot's callback, answered through its ``response_url``), each request sent
again until the bot accepts it, as the platform and WeCom do. Meanwhile the bot is killed (SIGKILL) at random
moments and started again at once. Afterwards what the fake received is counted: lost (a push or an answer that
never came), duplicated (a ticket pushed twice unmarked, a command answered twice), resends marked ``【补发】``, and
the time from a kill to the answer of each command the killed process had accepted but not answered. The fake
WeCom takes ``--wecom-latency`` to answer each request (as WeCom does), so that kills find sends in flight; each unit
has 60 more handlers, so that no member passes the bot's flood limit (10 commands a minute).

    python bench/crash_run.py [--messages 1000] [--kills 12] [--rate 10] [--wecom-latency 0.2]
        [--backend sqlite|postgres] [--settle 360]

``--settle``: how long to wait after the last kill for what is still owed (a dead process's lease is 5 minutes
without takeover). PostgreSQL: a server of the run's own (``tests/procs.py``), never the shared one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.procs import (  # noqa: E402
    BotProcess,
    OwnPostgres,
    Traffic,
    WeComSide,
    median,
    sandbox_config,
    system_config,
    temporary_directory,
    wait_for,
)

EXTRA_MEMBERS = 60  # handlers per unit: a member may send 10 commands a minute (the flood limit)
ALONE = 15.0  # seconds: a kill the restarted process outlived by this much measures the takeover alone


async def run(messages: int, kills: int, backend: str, settle: float, rate: float, latency: float) -> dict[str, object]:
    with temporary_directory("hotline-crash-") as tmp:
        postgres = None
        if backend == "postgres":
            # a server of the run's own: the bot holds the engine's advisory lock, the whole database's
            postgres = OwnPostgres()
            await postgres.start()
            url = postgres.url
        else:
            url = f"sqlite+aiosqlite:///{tmp}/bot.db"
        config = system_config(tmp, extra_members=EXTRA_MEMBERS)
        wecom = WeComSide(sandbox_config(config))
        await wecom.start()
        if latency > 0:  # WeCom's own answer time: sends are in flight when a kill comes
            wecom.fake.inject("slow", times=10**9, delay=latency)
        bot = BotProcess(tmp, {**wecom.env(), "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}, config=config)
        bot.start()
        await bot.ready()
        kill_times: list[float] = []
        try:
            async with Traffic(bot, wecom, prefix="CR") as traffic:
                handovers = messages * 2 // 5
                work = [("handover", n) for n in range(handovers)]
                work += [("command", n) for n in range(messages - handovers)]
                # a command asks for a ticket handed over earlier: commands follow their hand-overs
                work.sort(key=lambda w: (w[1] % handovers if w[0] == "command" else w[1], w[0] != "handover"))
                duration = len(work) / rate
                at_times = sorted(random.uniform(0.05, 0.9) * duration for _ in range(kills))  # noqa: S311

                async def killer() -> None:
                    for at in at_times:
                        wait = at - (time.monotonic() - started)
                        if wait > 0:
                            await asyncio.sleep(wait)
                        kill_times.append(await bot.kill())  # whatever it is doing: receiving, handling, sending
                        bot.start()
                        await bot.ready()

                started = time.monotonic()
                killing = asyncio.create_task(killer())
                tasks = []
                for kind, n in work:  # at a steady rate, each sent again until accepted
                    if kind == "handover":
                        tasks.append(asyncio.create_task(traffic.handover(n, within=600)))
                    else:
                        tasks.append(asyncio.create_task(traffic.command(n, n % handovers, within=600)))
                    await asyncio.sleep(1 / rate)
                await killing
                await asyncio.gather(*tasks)
                sent_in = time.monotonic() - started

                with contextlib.suppress(TimeoutError):
                    await wait_for(
                        lambda: not traffic.tally().lost(traffic.tickets, traffic.commands), within=settle, what="all"
                    )
                tally = traffic.tally()
                # each command the killed process had accepted and not yet answered: kill -> answer
                waits: list[float] = []
                # the same, for kills that the restarted process outlived by 15 s or more: another kill sooner
                # kills the process taking over too, and the wait runs on into the next one
                alone: list[float] = []
                unanswered = 0
                for record in traffic.sent:
                    if record.kind != "command" or record.accepted_at is None:
                        continue
                    answered = tally.answers.get(record.key)
                    first = min(answered) if answered else None
                    for killed in kill_times:
                        if record.accepted_at < killed and (first is None or first > killed):
                            if first is None:
                                unanswered += 1
                            else:
                                waits.append(first - killed)
                                later = [k for k in kill_times if k > killed]
                                if not later or later[0] - killed >= ALONE:
                                    alone.append(first - killed)
                            break
                statuses = traffic.statuses()
        finally:
            await bot.stop()
            await wecom.stop()
            if postgres is not None:
                postgres.destroy()
        return {
            "backend": backend,
            "messages": len(traffic.sent),
            "kills": len(kill_times),
            "lost": len(tally.lost(traffic.tickets, traffic.commands)),
            "duplicated": len(tally.duplicated()),
            "marked resends": tally.marked(),
            "answers owed by a killed process": len(waits) + unanswered,
            "of them not answered in the run": unanswered,
            "kill -> answer median s": round(median(waits), 1) if waits else None,
            "kill -> answer max s": round(max(waits), 1) if waits else None,
            f"of them, kills outlived by {ALONE:g} s": len(alone),
            "  their kill -> answer median s": round(median(alone), 1) if alone else None,
            "  their kill -> answer max s": round(max(alone), 1) if alone else None,
            "sent in s": round(sent_in, 1),
            "attempts not accepted (bot down or refusing)": sum(v for k, v in statuses.items() if k not in (200, 201)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--settle", type=float, default=360.0)
    parser.add_argument("--rate", type=float, default=10.0, help="messages a second")
    parser.add_argument("--wecom-latency", type=float, default=0.2, help="seconds the fake WeCom takes to answer")
    args = parser.parse_args()
    # the fake WeCom's server logs each request a killed bot left half-sent: expected here, not news
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    figures = asyncio.run(run(args.messages, args.kills, args.backend, args.settle, args.rate, args.wecom_latency))
    for name, value in figures.items():
        print(f"{name:<34} {value}")  # noqa: T201


if __name__ == "__main__":
    main()
