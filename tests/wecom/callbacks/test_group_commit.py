"""Inbound callbacks arriving together share their transactions, on both databases: the inserts before the answer
(each caller answered only after its row is committed) and the done-marks after processing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from bot.domain.clock import FrozenClock
from bot.services.groupcommit import GroupCommit
from bot.services.inbox import InboundProcessor, _Job
from bot.services.sinks import RecordingSink
from bot.wecom.parse import APP_SOURCE, parse_app_xml, read_stored
from store import inbox as inbox_repo
from store.core import Conn, Store
from store.models import inbox

T = TypeVar("T")


class CountingStore(Store):
    """The real store, counting write transactions and checking what is committed when each one ends."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.engine)
        self.transactions = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        self.transactions += 1
        async with super().transaction() as conn:
            yield conn


def text_xml(msgid: int, content: str = "帮助") -> bytes:
    return (
        "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[zhangwei]]></FromUserName>"
        f"<CreateTime>1795395600</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]>"
        f"</Content><MsgId>{msgid}</MsgId><AgentID>1000002</AgentID></xml>"
    ).encode()


async def committed(store: Store) -> list[dict[str, Any]]:
    async with store.reading() as conn:
        return [dict(r) for r in (await conn.execute(select(inbox).order_by(inbox.c.id))).mappings()]


async def test_a_burst_shares_transactions_and_each_caller_is_answered_after_commit(
    store: Store, clock: FrozenClock
) -> None:
    counting = CountingStore(store)
    sink = RecordingSink(keep=1000)
    processor = InboundProcessor(counting, sink, clock, sources=[APP_SOURCE], read=read_stored)

    async def accept(msgid: int) -> tuple[bool, set[str]]:
        xml = text_xml(msgid)
        accepted = await processor.accept(APP_SOURCE, parse_app_xml(xml), xml.decode())
        # answered: the row must already be visible to another connection
        return accepted, {r["dedup_key"] for r in await committed(store)}

    results = await asyncio.gather(*(accept(i) for i in range(60)))
    assert all(accepted for accepted, _ in results)
    assert all(f"app:msg:{i}" in keys for i, (_, keys) in enumerate(results))
    await processor.drain()
    assert len(sink.events) == 60
    assert [e.dedup_key for e in sink.events] == [f"app:msg:{i}" for i in range(60)]  # in the order accepted
    rows = await committed(store)
    assert len(rows) == 60
    assert {r["status"] for r in rows} == {"done"}
    # 60 inserts and 60 marks, in far fewer transactions than one each
    assert 0 < counting.transactions < 60


async def test_a_retry_in_the_same_batch_is_processed_once(store: Store, clock: FrozenClock) -> None:
    sink = RecordingSink()
    processor = InboundProcessor(store, sink, clock, sources=[APP_SOURCE], read=read_stored)
    xml = text_xml(7)
    outcomes = await asyncio.gather(
        *(processor.accept(APP_SOURCE, parse_app_xml(xml), xml.decode()) for _ in range(3)),
        processor.accept(APP_SOURCE, parse_app_xml(text_xml(8)), text_xml(8).decode()),
    )
    assert sorted(outcomes[:3]) == [False, False, True]
    assert outcomes[3] is True
    await processor.drain()
    assert [e.dedup_key for e in sink.events] == ["app:msg:7", "app:msg:8"]


class FailingMarksStore(Store):
    def __init__(self, store: Store) -> None:
        super().__init__(store.engine)
        self.fail = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        if self.fail:
            raise ConnectionError("the database went away")
        async with super().transaction() as conn:
            yield conn


async def test_an_outcome_that_cannot_be_recorded_leaves_the_row_for_recovery(store: Store, clock: FrozenClock) -> None:
    flaky = FailingMarksStore(store)
    sink = RecordingSink()
    processor = InboundProcessor(flaky, sink, clock, sources=[APP_SOURCE], read=read_stored)

    class FailAfterHandling(RecordingSink):
        async def handle(self, event: Any) -> None:
            await sink.handle(event)
            flaky.fail = True  # the mark after this event cannot be written

    processor.sink = FailAfterHandling()
    xml = text_xml(9)
    assert await processor.accept(APP_SOURCE, parse_app_xml(xml), xml.decode())
    await processor.drain()
    assert [r["status"] for r in await committed(store)] == ["pending"]
    assert processor._claimed == set()  # released: a recovery may take it again

    again = RecordingSink()
    clock.advance(minutes=6)  # the lease of the process that could not record the outcome has run out
    assert await InboundProcessor(store, again, clock, sources=[APP_SOURCE], read=read_stored).recover() == 1
    assert [e.dedup_key for e in again.events] == ["app:msg:9"]
    assert [r["status"] for r in await committed(store)] == ["done"]


async def test_processes_recovering_at_once_take_different_rows(store: Store, clock: FrozenClock) -> None:
    # 30 callbacks left pending by a process that died; two processes recover them at the same moment
    dead = InboundProcessor(store, RecordingSink(), clock, sources=[APP_SOURCE], read=read_stored, owner="dead")
    dead._enqueue = lambda jobs: 0  # type: ignore[method-assign]  # it dies before processing anything
    for i in range(30):
        xml = text_xml(100 + i)
        assert await dead.accept(APP_SOURCE, parse_app_xml(xml), xml.decode())
    clock.advance(minutes=6)
    # (SQLite is one process by design: there, one recovers them all)
    sinks = [RecordingSink(keep=100) for _ in range(2 if store.backend == "postgresql" else 1)]
    live = [
        InboundProcessor(store, sink, clock, sources=[APP_SOURCE], read=read_stored, owner=f"live-{i}", recover_batch=7)
        for i, sink in enumerate(sinks)
    ]
    counts = await asyncio.gather(*(p.recover() for p in live))
    assert sum(counts) == 30
    seen = [e.dedup_key for sink in sinks for e in sink.events]
    assert sorted(seen) == sorted(f"app:msg:{100 + i}" for i in range(30))  # each exactly once
    rows = await committed(store)
    assert {(r["status"], r["lease_owner"]) for r in rows} == {("done", None)}


async def test_a_row_being_handled_is_not_taken_by_another_process(store: Store, clock: FrozenClock) -> None:
    busy = InboundProcessor(store, RecordingSink(), clock, sources=[APP_SOURCE], read=read_stored, owner="busy")
    busy._enqueue = lambda jobs: 0  # type: ignore[method-assign]  # still queued there
    xml = text_xml(200)
    assert await busy.accept(APP_SOURCE, parse_app_xml(xml), xml.decode())
    [row] = await committed(store)
    assert (row["lease_owner"], row["lease_until"]) == ("busy", clock.now() + busy.lease)
    other = InboundProcessor(store, RecordingSink(), clock, sources=[APP_SOURCE], read=read_stored, owner="other")
    if store.backend == "postgresql":
        assert await other.recover() == 0
        clock.advance(seconds=busy.lease.total_seconds() + 1)
    assert await other.recover() == 1  # on SQLite at once: another owner there is always a previous run


async def test_a_dead_processs_rows_are_taken_over_by_a_running_one(store: Store, clock: FrozenClock) -> None:
    # the survivor was already running when the other process died: its periodic pass takes the rows over
    ticks: asyncio.Queue[None] = asyncio.Queue()
    passes = asyncio.Event()

    async def sleep(seconds: float) -> None:
        if seconds != 60.0:  # the lease renewer's: it does not come round in this test
            await asyncio.Event().wait()
        passes.set()
        await ticks.get()

    sink = RecordingSink()
    survivor = InboundProcessor(
        store, sink, clock, sources=[APP_SOURCE], read=read_stored, owner="survivor", sleep=sleep, recover_every=60.0
    )
    survivor.start()
    await passes.wait()  # its start-up pass found nothing; it waits for the next
    dead = InboundProcessor(store, RecordingSink(), clock, sources=[APP_SOURCE], read=read_stored, owner="dead")
    dead._enqueue = lambda jobs: 0  # type: ignore[method-assign]  # it dies before processing anything
    xml = text_xml(300)
    assert await dead.accept(APP_SOURCE, parse_app_xml(xml), xml.decode())

    clock.advance(minutes=6)
    passes.clear()
    ticks.put_nowait(None)
    await passes.wait()  # one more pass done
    await survivor.drain()
    assert [e.dedup_key for e in sink.events] == ["app:msg:300"]
    assert [r["status"] for r in await committed(store)] == ["done"]
    await survivor.close()


async def test_leases_are_renewed_while_rows_wait_and_a_row_taken_over_is_not_handled_twice(
    store: Store, clock: FrozenClock
) -> None:
    # a long backlog: rows wait here far longer than the lease; renewing keeps them, and only them, here
    gate = asyncio.Event()

    class SlowSink(RecordingSink):
        async def handle(self, event: Any) -> None:
            await gate.wait()
            await super().handle(event)

    slow = SlowSink()
    busy = InboundProcessor(store, slow, clock, sources=[APP_SOURCE], read=read_stored, owner="busy")
    for i in range(3):
        xml = text_xml(400 + i)
        assert await busy.accept(APP_SOURCE, parse_app_xml(xml), xml.decode())
    other_sink = RecordingSink()
    other = InboundProcessor(store, other_sink, clock, sources=[APP_SOURCE], read=read_stored, owner="other")

    for _ in range(4):  # 4 × 2 minutes: well past the 5-minute lease, renewed every time
        clock.advance(minutes=2)
        assert await busy.renew_leases() == 3
        if store.backend == "postgresql":
            assert await other.recover() == 0  # still held: nothing taken over

    if store.backend == "postgresql":
        # then "busy" is cut off from the database for longer than the lease: "other" takes the rows over
        clock.advance(minutes=6)
        assert await other.recover() == 3
        assert await busy.renew_leases() == 0  # it learns it has lost them
        gate.set()
        await busy.drain()
        # the one it was already handling finishes (at least once), the queued ones are not handled a second time
        assert [e.dedup_key for e in slow.events] == ["app:msg:400"]
        assert sorted(e.dedup_key for e in other_sink.events) == [f"app:msg:{400 + i}" for i in range(3)]
    else:
        gate.set()
        await busy.drain()
        assert len(slow.events) == 3
    rows = await committed(store)
    assert {(r["status"], r["lease_owner"]) for r in rows} == {("done", None)}


async def test_a_mark_only_counts_from_the_leases_holder(store: Store, clock: FrozenClock) -> None:
    at = clock.now()
    async with store.transaction() as conn:
        [mine, theirs] = await inbox_repo.record_inbound_many(
            conn,
            [
                {"source": APP_SOURCE, "dedup_key": k, "payload": "<xml/>", "received_at": at}
                for k in ("mine", "theirs")
            ],
            lease_owner="me",
            lease_until=at,
        )
        assert mine is not None and theirs is not None  # noqa: PT018 - for mypy
        assert await inbox_repo.renew_inbound_leases(conn, [mine], owner="me", until=at) == {mine}
        await conn.execute(update(inbox).where(inbox.c.id == theirs).values(lease_owner="someone else"))
        await inbox_repo.finish_inbound_many(conn, [(mine, None), (theirs, "boom")], at=at, owner="me")
    by_key = {r["dedup_key"]: r for r in await committed(store)}
    assert (by_key["mine"]["status"], by_key["theirs"]["status"]) == ("done", "pending")


async def test_one_members_slow_command_does_not_hold_up_the_others(store: Store, clock: FrozenClock) -> None:
    gate, quick_done = asyncio.Event(), asyncio.Event()
    handled: list[str] = []

    class Sink(RecordingSink):
        async def handle(self, event: Any) -> None:
            if event.sender.userid == "slow":
                await gate.wait()
            handled.append(event.dedup_key)
            if event.dedup_key == "app:msg:4":
                quick_done.set()

    processor = InboundProcessor(store, Sink(), clock, sources=[APP_SOURCE], read=read_stored)

    def xml(msgid: int, user: str) -> bytes:
        return text_xml(msgid).replace(b"zhangwei", user.encode())

    for msgid, user in [(1, "slow"), (2, "slow"), (3, "quick"), (4, "quick")]:
        data = xml(msgid, user)
        assert await processor.accept(APP_SOURCE, parse_app_xml(data), data.decode())
    await quick_done.wait()  # the quick member's two go by while the slow one's first waits
    assert handled == ["app:msg:3", "app:msg:4"]
    gate.set()
    await processor.drain()
    assert handled == ["app:msg:3", "app:msg:4", "app:msg:1", "app:msg:2"]  # each member's in order


async def test_at_most_concurrency_events_run_at_once_and_each_members_in_order(
    store: Store, clock: FrozenClock
) -> None:
    running, peak = 0, 0
    handled: dict[str, list[str]] = {}
    steps = asyncio.Event()

    class Sink(RecordingSink):
        async def handle(self, event: Any) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            for _ in range(3):  # a few turns of the loop: the others get to start meanwhile
                await asyncio.sleep(0)
            await steps.wait()
            handled.setdefault(event.sender.userid, []).append(event.dedup_key)
            running -= 1

    processor = InboundProcessor(store, Sink(), clock, sources=[APP_SOURCE], read=read_stored, concurrency=3)
    sent: dict[str, list[str]] = {}
    for msgid in range(1, 31):
        user = f"member{msgid % 7}"
        data = text_xml(msgid).replace(b"zhangwei", user.encode())
        assert await processor.accept(APP_SOURCE, parse_app_xml(data), data.decode())
        sent.setdefault(user, []).append(f"app:msg:{msgid}")
    for _ in range(10):
        await asyncio.sleep(0)
    assert running == 3  # three members' events started, the rest wait
    steps.set()
    await processor.drain()
    assert peak == 3
    assert handled == sent  # every member's events, each once, in the order accepted
    assert [r["status"] for r in await committed(store)] == ["done"] * 30


async def test_an_event_queued_just_as_the_last_worker_ends_is_still_handled(store: Store, clock: FrozenClock) -> None:
    """A lane made ready in the loop step right after the last worker found nothing left gets a worker of its own
    (the ended worker does not still count as one)."""
    handled: list[str] = []
    second = parse_app_xml(text_xml(2).replace(b"zhangwei", b"lisi"))

    class Sink(RecordingSink):
        async def handle(self, event: Any) -> None:
            handled.append(event.dedup_key)
            if len(handled) == 1:  # queued in the next loop step, before anything the ending worker schedules
                asyncio.get_running_loop().call_soon(processor._enqueue, [_Job(2, second)])

    processor = InboundProcessor(store, Sink(), clock, sources=[APP_SOURCE], read=read_stored)
    data = text_xml(1)
    assert await processor.accept(APP_SOURCE, parse_app_xml(data), data.decode())
    for _ in range(20):
        await asyncio.sleep(0)
    assert handled == ["app:msg:1", "app:msg:2"]
    await processor.drain()


async def test_a_handler_that_swallows_the_timeouts_cancellation_leaves_none_pending(
    store: Store, clock: FrozenClock
) -> None:
    handled: list[tuple[str, int]] = []
    first = True

    class Stubborn(RecordingSink):
        async def handle(self, event: Any) -> None:
            nonlocal first
            if first:
                first = False
                with contextlib.suppress(asyncio.CancelledError):  # carries on regardless
                    await asyncio.Event().wait()
            task = asyncio.current_task()
            assert task is not None
            handled.append((event.dedup_key, task.cancelling()))  # what asyncio.timeout and task groups go by

    processor = InboundProcessor(store, Stubborn(), clock, sources=[APP_SOURCE], read=read_stored, handle_timeout=0.05)
    for msgid in (1, 2):
        data = text_xml(msgid)
        assert await processor.accept(APP_SOURCE, parse_app_xml(data), data.decode())
    await processor.drain()
    # the same worker goes on with the sender's next message, with no cancellation left pending on it
    assert handled == [("app:msg:1", 1), ("app:msg:2", 0)]
    assert [r["status"] for r in await committed(store)] == ["done", "done"]
    await processor.close()


async def test_a_request_is_not_held_up_by_a_flood_of_events_handled_without_waiting(
    store: Store, clock: FrozenClock
) -> None:
    """Events whose handling waits for nothing (a flooding member's, refused by the limiter) do not run all back
    to back: a request arriving meanwhile is answered before the flood is through."""
    gate = asyncio.Event()
    handled: list[str] = []

    class Sink(RecordingSink):
        async def handle(self, event: Any) -> None:
            if event.dedup_key == "app:msg:1":
                await gate.wait()  # holds the only worker while the others queue up
            handled.append(event.dedup_key)

    processor = InboundProcessor(store, Sink(), clock, sources=[APP_SOURCE], read=read_stored, concurrency=1)
    for msgid in range(1, 22):
        data = text_xml(msgid).replace(b"zhangwei", f"member{msgid}".encode())
        assert await processor.accept(APP_SOURCE, parse_app_xml(data), data.decode())

    async def request() -> int:
        return len(handled)

    gate.set()
    await asyncio.sleep(0)
    answered_after = await asyncio.create_task(request())
    await processor.drain()
    assert len(handled) == 21
    assert answered_after < 5
    await processor.close()


class StartingUp(Exception):
    """The driver's error while PostgreSQL starts again after an outage (SQLSTATE 57P03)."""

    sqlstate = "57P03"


async def test_a_batch_that_meets_the_database_starting_up_fails_whole_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database away or not yet back is the same for every item: no retry one by one, no traceback in the log
    (an outage is logged once, by the liveness's watch)."""
    calls: list[int] = []

    async def commit(items: Sequence[int]) -> list[None]:
        calls.append(len(items))
        raise OperationalError("INSERT …", {}, StartingUp("the database system is starting up"))

    group = GroupCommit[int, None](commit, name="test")
    caplog.set_level(logging.DEBUG)
    results = await asyncio.gather(group.submit(1), group.submit(2), return_exceptions=True)
    assert all(isinstance(r, OperationalError) for r in results)
    assert calls == [2]  # one batch, failed whole: not tried again one by one
    assert not [r for r in caplog.records if r.exc_info or "one by one" in r.getMessage()]
