"""A dead process's inbox and outbox rows are taken over in seconds, not when their 5-minute lease runs out.

On PostgreSQL each process holds an advisory lock named by its id (:class:`store.liveness.Liveness`): once the lock's
session is gone (the process died), another process takes its rows over, after a grace of a few seconds; a live
process keeps its rows, however slow it is, while their lease runs. On SQLite the process starting up takes
everything over. Time is a FrozenClock moved by the test."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain.clock import FrozenClock
from bot.domain.events import InboundEvent
from bot.services.inbox import InboundProcessor
from bot.services.sinks import RecordingSink
from bot.wecom.parse import APP_SOURCE, parse_app_xml, read_stored
from notifiers.outbox import OutboundMessage, OutboxWorker
from store import outbox as outbox_repo
from store.core import Store
from store.liveness import Liveness, process_id
from store.models import inbox, outbox
from tests.wecom.callbacks.test_callbacks import app_xml

GRACE = timedelta(seconds=5)
CHANNEL = "test"


class Stuck:
    """A process that is slow, or dead: whatever it is given, it never finishes."""

    async def handle(self, event: InboundEvent) -> None:
        await asyncio.Event().wait()


class Recorder:
    """A channel that takes every message."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.resends: list[str] = []

    async def send(self, message: OutboundMessage) -> None:
        self.sent.append(message.idempotency_key)
        if message.resend:
            self.resends.append(message.idempotency_key)


@pytest.fixture
async def process_a(store: Store) -> AsyncIterator[Liveness]:
    """The liveness of a process "a" (its lock held on PostgreSQL)."""
    liveness = Liveness(store.engine, "host:101:process-a")
    await liveness.start()
    yield liveness
    await liveness.close()


@pytest.fixture
async def process_b(store: Store) -> AsyncIterator[Liveness]:
    liveness = Liveness(store.engine, "host:102:process-b")
    await liveness.start()
    yield liveness
    await liveness.close()


def message(n: int) -> tuple[InboundEvent, str]:
    raw = app_xml(MsgType="text", Content=f"/接单 {n}", MsgId=f"80{n}")
    return parse_app_xml(raw), raw.decode()


async def queue(store: Store, clock: FrozenClock, n: int) -> None:
    now = clock.now()
    rows = [
        {
            "channel": CHANNEL,
            "destination": "wuhao",
            "idempotency_key": f"answer-{i}",
            "ordering_key": None,
            "priority": 1,
            "payload": {"text": f"answer {i}"},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for i in range(n)
    ]
    async with store.transaction() as conn:
        await outbox_repo.enqueue(conn, rows)


async def lease_all(store: Store, clock: FrozenClock, owner: str) -> None:
    """What a process does when it takes messages to send (or queues answers for itself to send at once)."""
    now = clock.now()
    async with store.transaction() as conn:
        await outbox_repo.claim_due(conn, owner=owner, now=now, lease_until=now + timedelta(minutes=5), limit=100)


async def statuses(store: Store, table: Any) -> list[tuple[str, str | None]]:
    async with store.reading() as conn:
        result = await conn.execute(select(table.c.status, table.c.lease_owner).order_by(table.c.id))
        return [(row.status, row.lease_owner) for row in result]


POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # several processes
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # one process, restarted


@POSTGRES_ONLY
async def test_a_dead_process_rows_are_taken_over_in_seconds_and_a_live_slow_one_keeps_its_own(
    store: Store, clock: FrozenClock, process_a: Liveness, process_b: Liveness
) -> None:
    slow = InboundProcessor(
        store, Stuck(), clock, sources=[APP_SOURCE], read=read_stored, owner=process_a.owner, liveness=process_a
    )
    sink = RecordingSink()
    other = InboundProcessor(
        store, sink, clock, sources=[APP_SOURCE], read=read_stored, owner=process_b.owner, liveness=process_b
    )
    recorder = Recorder()
    worker = OutboxWorker(store, {CHANNEL: recorder}, clock, owner=process_b.owner, liveness=process_b)
    try:
        assert await slow.accept(APP_SOURCE, *message(1))  # "a" handles it, slowly
        await queue(store, clock, 3)
        await lease_all(store, clock, process_a.owner)  # and has taken the answers to send

        # "a" is alive: its rows stay its own, whatever the time, while their lease runs
        for _ in range(3):
            assert await other.take_over() == 0
            assert await worker.take_over() == 0
            assert await worker.run_once() == 0
            clock.advance(seconds=30)
        assert sink.events == []
        assert recorder.sent == []

        await process_a.close()  # "a" dies: its session, and its lock, are gone
        assert await other.take_over() == 0  # seen without its lock: a few seconds' grace
        assert await worker.take_over() == 0
        clock.advance(seconds=GRACE.total_seconds())
        assert await other.take_over() == 1
        assert await worker.take_over() == 3
        assert await worker.run_once() == 3
        await other.drain()
    finally:
        await slow.close(grace=0)
        await other.close()
    assert [e.dedup_key for e in sink.events] == [message(1)[0].dedup_key]
    assert sorted(recorder.sent) == ["answer-0", "answer-1", "answer-2"]
    # "a" had taken them to send and may have sent them: a group channel marks the repeat 【补发】
    assert sorted(recorder.resends) == ["answer-0", "answer-1", "answer-2"]
    assert await statuses(store, inbox) == [("done", None)]
    assert await statuses(store, outbox) == [("sent", None)] * 3


async def test_the_count_of_live_processes_follows_their_locks(
    store: Store, process_a: Liveness, process_b: Liveness
) -> None:
    if store.backend != "postgresql":
        assert (process_a.processes, process_b.processes) == (1, 1)  # SQLite: one process by design
        return
    third = Liveness(store.engine, "host:103:process-c")
    await third.start()
    assert third.processes == 3
    await process_a.close()
    await third.close()
    second = Liveness(store.engine, "host:104:process-d")
    await second.start()
    assert second.processes == 2
    await second.close()


@SQLITE_ONLY
async def test_on_sqlite_the_process_starting_takes_every_row_over(
    store: Store, clock: FrozenClock, process_b: Liveness
) -> None:
    previous = InboundProcessor(
        store, Stuck(), clock, sources=[APP_SOURCE], read=read_stored, owner="host:1:previous-run"
    )
    assert await previous.accept(APP_SOURCE, *message(1))
    await previous.close(grace=0)  # killed mid-handling: the row stays pending, leased for 5 minutes
    await queue(store, clock, 2)
    await lease_all(store, clock, "host:1:previous-run")

    sink = RecordingSink()
    inbound = InboundProcessor(
        store, sink, clock, sources=[APP_SOURCE], read=read_stored, owner=process_b.owner, liveness=process_b
    )
    recorder = Recorder()
    worker = OutboxWorker(store, {CHANNEL: recorder}, clock, owner=process_b.owner, liveness=process_b)
    inbound.start()
    await inbound.drain()
    assert await worker.take_over(at_start=True) == 2
    assert await worker.run_once() == 2
    await inbound.close()
    assert len(sink.events) == 1
    assert sorted(recorder.sent) == ["answer-0", "answer-1"]
    assert sorted(recorder.resends) == ["answer-0", "answer-1"]  # the previous run may have sent them
    assert await statuses(store, outbox) == [("sent", None)] * 2


def test_a_process_id_stays_unique_on_a_long_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod's 63-character name and pid 1 at every restart: the id still differs, so the restarted process does
    not take the dead one's rows for its own (and leave them to the five-minute lease)."""
    monkeypatch.setattr(socket, "gethostname", lambda: "hotline-bot-7c9f8d6b5-" + "x" * 41)
    monkeypatch.setattr(os, "getpid", lambda: 1)
    ids = {process_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) <= 64 for i in ids)
