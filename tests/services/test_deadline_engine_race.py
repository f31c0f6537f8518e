"""Two deadline engines on the same due rows at the same moment, on both databases: each step
is sent once. Engine B is held between reading its batch and writing it (in a thread of its own, so that it holds
its real transaction open) while engine A ticks; then B goes on.

What keeps a step from going out twice is two things: the database makes the second engine keep off the rows the
first is working on (PostgreSQL: the batch is read ``FOR UPDATE SKIP LOCKED``; SQLite: ``BEGIN IMMEDIATE``, one
writer), and the engine's stage/due-time guard makes a row move only if it still has what it was read with
(:func:`store.nags.advance`), so a batch read before another engine moved its rows writes nothing. The first test
holds both to it at once; the second holds the guard to a batch read before the move."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bot.domain.clock import FrozenClock
from bot.domain.workcal import WorkCalendar
from bot.services.deadline_engine import DeadlineEngine
from bot.services.duty import DutyService
from bot.services.tickets import TicketService
from config.model import BotConfig
from notifiers.rows import EngineRows
from store import nags as nag_store
from store.core import Store
from store.db import create_engine
from tests.services.test_deadline_engine import CHANNELS, SRJG, at, queued, sign, text

TICKETS = 6  # two deadlines each (accept and first contact): twelve rows due together


def new_engine(
    store: Store, config: BotConfig, calendar: WorkCalendar, clock: FrozenClock, batch: int
) -> DeadlineEngine:
    return DeadlineEngine(
        store,
        config,
        calendar,
        clock,
        duty=DutyService(store, config, clock),
        rows=EngineRows(config, CHANNELS),
        batch=batch,
    )


def reminders(rows: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How often each (ticket, deadline) was named in the work group's reminders."""
    named: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row["destination"] != SRJG:
            continue
        for line in text(row).splitlines():
            if line.startswith("· "):
                number, deadlines_part = line.split()[1], line.split("｜")[1]
                for part in deadlines_part.split("；"):
                    named.update((number, name) for name in part.split(" ")[0].split("、"))
    return named


class HeldEngine:
    """Engine B, in a thread with its own event loop and its own connections: its tick stops right after it read its
    first batch (the transaction open, as a slow process's would be) until :meth:`release`."""

    def __init__(self, url: str, make: Callable[[Store], DeadlineEngine], clock: FrozenClock) -> None:
        self.url, self.make, self.clock = url, make, clock
        self.read = threading.Event()
        self._release = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="engine-b")

    def _hold(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "ORDER BY deadlines.next_due_at" in statement and not self.read.is_set():
            self.read.set()
            self._release.wait(15)

    def _run(self) -> None:
        async def tick() -> None:
            store = Store(create_engine(self.url))
            try:
                await self.make(store).tick(at(23, 21))
            finally:
                await store.dispose()

        try:
            asyncio.run(tick())
        except BaseException as exc:  # reported to the test
            self.error = exc
            self.read.set()

    def start(self) -> None:
        # every engine's statements (B's store writes through an engine of its own on SQLite): only B's first read
        # of the due rows is held, as A starts after it
        event.listen(Engine, "after_cursor_execute", self._hold)
        self.thread.start()

    def release(self) -> None:
        self._release.set()

    async def join(self) -> None:
        self.release()
        await asyncio.to_thread(self.thread.join, 20)
        event.remove(Engine, "after_cursor_execute", self._hold)
        if self.error is not None:
            raise self.error


async def test_two_engines_ticking_the_same_due_rows_at_once_send_each_step_once(
    service: TicketService,
    store: Store,
    database_url: str,
    sandbox_config: BotConfig,
    calendar: WorkCalendar,
    clock: FrozenClock,
) -> None:
    await service.upsert([sign(f"R{i:02d}") for i in range(TICKETS)])
    held = HeldEngine(database_url, lambda s: new_engine(s, sandbox_config, calendar, clock, batch=3), clock)
    held.start()
    try:
        assert await asyncio.to_thread(held.read.wait, 15)  # B has read its three rows and holds its transaction
        # A ticks a little later, with a bigger batch: were it to read B's rows, its message would differ from B's
        # (its own key), so the outbox's idempotency key could not hide a second reminder
        engine_a = new_engine(store, sandbox_config, calendar, clock, batch=50)
        ticking = asyncio.create_task(engine_a.tick(at(23, 21, 5)))
        if store.backend == "sqlite":
            # one writer: A waits for B's transaction rather than read beside it
            done, _ = await asyncio.wait({ticking}, timeout=0.5)
            assert not done
        else:
            await ticking  # B's rows are locked: A takes the others and is done meanwhile
    finally:
        await held.join()
    result_a = await ticking
    assert held.error is None

    rows = await queued(store)
    assert reminders(rows) == {(f"R{i:02d}", name): 1 for i in range(TICKETS) for name in ("接单", "先行联系")}
    assert result_a.moved < 2 * TICKETS or store.backend == "sqlite"  # on PostgreSQL B's three were not A's
    # and nothing is left to send for this step: the next tick before the next step finds nothing
    later = new_engine(store, sandbox_config, calendar, clock, batch=50)
    assert (await later.tick(at(23, 21, 10))).messages == 0


async def test_a_batch_read_before_another_engine_moved_its_rows_writes_nothing(
    service: TicketService, store: Store, sandbox_config: BotConfig, calendar: WorkCalendar, clock: FrozenClock
) -> None:
    """The guard itself: a second engine that read the rows (a stale read: before the first one's commit) and then
    moves them finds them changed and moves none, so its messages are not queued."""
    await service.upsert([sign("G1")])
    clock.set(at(23, 21))
    async with store.reading() as conn:
        stale = await nag_store.due_deadlines(conn, clock.now(), limit=10)
    assert len(stale) == 2
    first = new_engine(store, sandbox_config, calendar, clock, batch=10)
    assert (await first.tick(at(23, 21))).moved == 2  # the first engine took the step
    moves = [
        {"id": r.id, "stage": r.stage, "next_due_at": r.next_due_at, "new_stage": 1, "new_next": at(24, 4)}
        for r in stale
    ]
    async with store.transaction() as conn:
        assert await nag_store.advance(conn, moves) == set()  # still open, but no longer at the stage it was read at
    assert reminders(await queued(store)) == {("G1", "接单"): 1, ("G1", "先行联系"): 1}
