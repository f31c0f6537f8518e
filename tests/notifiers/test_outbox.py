"""The outbox and the hotline sync-back, against a fake hotline platform served over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.domain.clock import FrozenClock
from bot.domain.lifecycle import Action, ActionRequest
from bot.domain.ticket import TicketInput
from bot.hotline.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from bot.services.tickets import TicketService
from notifiers.hotline import SYNC_CHANNEL, HotlineSyncSender
from notifiers.outbox import Deferred, DeliveryError, OutboundMessage, OutboxWorker
from store import outbox as outbox_repo
from store.core import Store
from store.models import outbox

SECRET = "sync-secret"


@dataclass
class FakeHotline:
    """Accepts sync-backs the way a careful platform would: checks the signature, dedups by idempotency key."""

    clock: FrozenClock
    fail_with: list[int] = field(default_factory=list)  # statuses to answer with, one per request, before 200
    requests: list[dict[str, Any]] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verify(
            SECRET,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            body,
            now=self.clock.now().timestamp(),
            window=300,
        )
        key = request.headers[IDEMPOTENCY_HEADER]
        self.requests.append({"key": key, "body": json.loads(body)})
        if self.fail_with:
            return web.json_response({"error": "nope"}, status=self.fail_with.pop(0))
        self.accepted.setdefault(key, json.loads(body))
        return web.json_response({"ok": True})


@pytest.fixture
async def hotline(aiohttp_server: Callable[..., Awaitable[TestServer]], clock: FrozenClock) -> tuple[FakeHotline, str]:
    fake = FakeHotline(clock)
    app = web.Application()
    app.router.add_post("/sync", fake.handle)
    server = await aiohttp_server(app)
    return fake, str(server.make_url("/sync"))


def worker(store: Store, session: aiohttp.ClientSession, clock: FrozenClock, owner: str = "w1") -> OutboxWorker:
    sender = HotlineSyncSender(session, SECRET, clock, timeout=5)
    return OutboxWorker(store, {SYNC_CHANNEL: sender}, clock, owner=owner)


async def make_changes(store: Store, make_service: Callable[..., TicketService], clock: FrozenClock, url: str) -> None:
    service = make_service(sync_url=url)
    await service.upsert([TicketInput(ticket_no="2026112300001", content="垃圾满溢", category="环卫", unit_label="HW")])
    await service.act("2026112300001", ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now()))
    await service.act("2026112300001", ActionRequest(action=Action.CONTACT, actor="wuhao", at=clock.now()))


async def statuses(store: Store) -> list[tuple[str, int]]:
    async with store.reading() as conn:
        rows = (await conn.execute(select(outbox.c.status, outbox.c.attempts).order_by(outbox.c.id))).all()
    return [(r[0], r[1]) for r in rows]


async def test_sync_back_is_signed_ordered_and_sent_once(
    store: Store, make_service: Callable[..., TicketService], clock: FrozenClock, hotline: Any, session: Any
) -> None:
    fake, url = hotline
    await make_changes(store, make_service, clock, url)
    w = worker(store, session, clock)
    # one message per ticket per pass: the next one of the same ticket waits until the first is through
    assert await w.run_once() == 1
    assert await w.run_once() == 1
    assert await w.run_once() == 0
    assert [r["body"]["action"] for r in fake.requests] == ["claim", "contact"]
    assert [r["body"]["to_state"] for r in fake.requests] == ["claimed", "contacted"]
    assert fake.requests[0]["body"]["actor"] == "wuhao"
    assert await statuses(store) == [("sent", 1), ("sent", 1)]


async def test_transient_failures_back_off_and_keep_order(
    store: Store, make_service: Callable[..., TicketService], clock: FrozenClock, hotline: Any, session: Any
) -> None:
    fake, url = hotline
    await make_changes(store, make_service, clock, url)
    fake.fail_with = [503, 500]
    w = worker(store, session, clock)
    # the first message fails; the second, same ticket, waits behind it
    assert await w.run_once() == 1
    assert await w.run_once() == 0  # not due yet: backing off
    clock.advance(seconds=3)
    assert await w.run_once() == 1  # second failure
    assert await w.run_once() == 0
    clock.advance(seconds=5)
    assert await w.run_once() == 1  # delivered; now the next one may go
    assert await w.run_once() == 1
    assert [r["body"]["action"] for r in fake.requests] == ["claim", "claim", "claim", "contact"]
    assert await statuses(store) == [("sent", 3), ("sent", 1)]


async def test_permanent_rejection_is_dead_lettered_and_replayable(
    store: Store, make_service: Callable[..., TicketService], clock: FrozenClock, hotline: Any, session: Any
) -> None:
    fake, url = hotline
    await make_changes(store, make_service, clock, url)
    fake.fail_with = [400]
    w = worker(store, session, clock)
    await w.run_once()
    async with store.reading() as conn:
        dead = await outbox_repo.dead_letters(conn)
    assert len(dead) == 1
    assert "400" in dead[0]["last_error"]
    # a dead letter does not hold back the ticket's later changes; an operator replays it
    assert await w.run_once() == 1
    async with store.transaction() as conn:
        assert await outbox_repo.replay(conn, [dead[0]["id"]], at=clock.now()) == 1
    assert await w.run_once() == 1
    assert sorted(fake.accepted) == ["hotline-sync:2", "hotline-sync:3"]


async def test_crash_between_send_and_record_delivers_exactly_once(
    store: Store, make_service: Callable[..., TicketService], clock: FrozenClock, hotline: Any, session: Any
) -> None:
    fake, url = hotline
    await make_changes(store, make_service, clock, url)
    sender = HotlineSyncSender(session, SECRET, clock, timeout=5)
    # process 1 claims a message and sends it, then dies before recording the result
    async with store.transaction() as conn:
        [row, *_] = await outbox_repo.claim_due(
            conn, owner="dead-process", now=clock.now(), lease_until=clock.now() + timedelta(seconds=60), limit=1
        )
    await sender.send(
        OutboundMessage(
            id=row["id"],
            channel=row["channel"],
            destination=row["destination"],
            idempotency_key=row["idempotency_key"],
            payload=row["payload"],
            attempts=0,
        )
    )
    # process 2 starts: the lease has not expired, so the message is not sent twice at once
    survivor = worker(store, session, clock, owner="survivor")
    assert await survivor.run_once() == 0
    clock.advance(seconds=61)
    assert await survivor.run_once() == 1  # re-sent with the same idempotency key
    assert await survivor.run_once() == 1  # then the next one
    keys = [r["key"] for r in fake.requests]
    assert keys.count(row["idempotency_key"]) == 2
    assert len(fake.accepted) == 2  # the platform applied each change once
    assert await statuses(store) == [("sent", 1), ("sent", 1)]


async def test_unreachable_hotline_is_retried(
    store: Store, make_service: Callable[..., TicketService], clock: FrozenClock, session: Any
) -> None:
    await make_changes(store, make_service, clock, "http://127.0.0.1:9/sync")  # nothing listens on port 9
    w = worker(store, session, clock)
    assert await w.run_once() == 1
    async with store.reading() as conn:
        row = (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings().first()
    assert row is not None
    assert row["status"] == "pending"
    assert "unreachable" in row["last_error"]
    assert row["next_attempt_at"] > clock.now()


async def test_two_workers_never_send_the_same_message_twice(
    store: Store, make_service: Callable[..., TicketService], clock: FrozenClock, hotline: Any, session: Any
) -> None:
    fake, url = hotline
    service = make_service(sync_url=url)
    await service.upsert(
        [TicketInput(ticket_no=f"20261123{i:05d}", content="咨询", unit_label="HW") for i in range(30)]
    )
    for i in range(30):
        await service.act(f"20261123{i:05d}", ActionRequest(action=Action.CLAIM, actor="wuhao", at=clock.now()))
    a, b = worker(store, session, clock, "a"), worker(store, session, clock, "b")
    a.batch = b.batch = 7
    while sum(await asyncio.gather(a.run_once(), b.run_once())):
        pass
    assert len(fake.requests) == 30
    assert len({r["key"] for r in fake.requests}) == 30


async def test_channels_without_a_sender_wait_and_a_failing_sender_retries(store: Store, clock: FrozenClock) -> None:
    class Broken:
        async def send(self, message: OutboundMessage) -> None:
            raise DeliveryError("temporarily broken")

    async with store.transaction() as conn:
        await outbox_repo.enqueue(
            conn,
            [
                {
                    "channel": name,
                    "destination": "x",
                    "idempotency_key": name,
                    "ordering_key": None,
                    "priority": 5,
                    "payload": {},
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": clock.now(),
                    "created_at": clock.now(),
                }
                for name in ("nobody", "broken")
            ],
        )
    w = OutboxWorker(store, {"broken": Broken()}, clock, owner="w")
    assert await w.run_once() == 1  # only what this process can send
    # "nobody" waits, untouched, for a process that has its sender; "broken" is retried later
    assert await statuses(store) == [("pending", 0), ("pending", 1)]
    assert await OutboxWorker(store, {}, clock, owner="idle").run_once() == 0


async def test_stop_lets_the_pass_under_way_finish(store: Store, clock: FrozenClock) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    sent: list[int] = []

    class Slow:
        async def send(self, message: OutboundMessage) -> None:
            started.set()
            await release.wait()
            sent.append(message.id)

    now = clock.now()
    async with store.transaction() as conn:
        await outbox_repo.enqueue(
            conn,
            [
                {
                    "channel": "slow",
                    "destination": "d",
                    "idempotency_key": "k1",
                    "ordering_key": None,
                    "priority": 5,
                    "payload": {},
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            ],
        )
    worker = OutboxWorker(store, {"slow": Slow()}, clock, owner="w")
    task = asyncio.create_task(worker.run_forever())
    await started.wait()
    worker.stop()  # shutting down while a send is in flight
    assert not task.done()
    release.set()
    await task  # returns once the pass is done, its send recorded
    assert len(sent) == 1
    assert await statuses(store) == [("sent", 1)]


# --- a backlog to one destination at its rate limit ---------------------------------------------------------------


class OnePerSlot:
    """A sender allowing one message per destination every ``slot`` seconds, as a rate-limited WeCom destination;
    it counts every call, deferred or not."""

    def __init__(self, clock: FrozenClock, slot: float = 3.0) -> None:
        self.clock, self.slot = clock, slot
        self.free_at: dict[str, float] = {}
        self.sent: list[str] = []
        self.calls = 0

    async def send(self, message: OutboundMessage) -> None:
        self.calls += 1
        now = self.clock.now().timestamp()
        free_at = self.free_at.get(message.destination, now)
        if now < free_at:
            raise Deferred(f"{message.destination} at its limit", retry_after=free_at - now)
        self.free_at[message.destination] = now + self.slot
        self.sent.append(message.idempotency_key)


async def test_a_backlog_to_one_destination_waits_as_a_whole_and_does_not_hold_up_others(
    store: Store, clock: FrozenClock
) -> None:
    now = clock.now()

    def row(key: str, destination: str, priority: int = 5) -> dict[str, Any]:
        return {
            "channel": "robot",
            "destination": destination,
            "idempotency_key": key,
            "ordering_key": None,
            "priority": priority,
            "payload": {},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }

    async with store.transaction() as conn:
        await outbox_repo.enqueue(conn, [row(f"d{i:02d}", "busy") for i in range(30)] + [row("other", "quiet")])
        await outbox_repo.enqueue(conn, [row("urgent", "busy", priority=1)])
    sender = OnePerSlot(clock)
    worker = OutboxWorker(store, {"robot": sender}, clock, owner="w")
    slots = 0
    while len(sender.sent) < 37:
        while await worker.run_once():
            pass
        if slots == 0:
            # the first slot: the most urgent message to the busy destination, and the other destination's
            assert sender.sent == ["urgent", "other"]
            # more for the busy destination meanwhile: not even claimed before its next slot
            calls = sender.calls
            async with store.transaction() as conn:
                await outbox_repo.enqueue(conn, [row(f"late{i}", "busy") for i in range(5)])
            assert await worker.run_once() == 0
            assert sender.calls == calls
        clock.advance(seconds=3)
        slots += 1
        assert slots <= 45, "the backlog does not drain"
    expected = ["urgent", "other"] + [f"d{i:02d}" for i in range(30)] + [f"late{i}" for i in range(5)]
    assert sender.sent == expected  # once each, in order
    assert await statuses(store) == [("sent", 1)] * 37
    # a send and at most one deferral per free slot, not a deferral of every waiting message at every slot
    assert sender.calls <= 2 * 37 + 1


# --- messages sent at once by the process that queued them (send_now) ----------------------------------------------


class Recording:
    """A sender that records what it sent; ``fail`` makes the next sends fail (transiently)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail = 0

    async def send(self, message: OutboundMessage) -> None:
        if self.fail:
            self.fail -= 1
            raise DeliveryError("busy")
        self.sent.append(message.idempotency_key)


def _reply(key: str, clock: FrozenClock, *, owner: str | None = None, lease: timedelta | None = None) -> dict[str, Any]:
    now = clock.now()
    return {
        "channel": "chat",
        "destination": "d",
        "idempotency_key": key,
        "ordering_key": None,
        "priority": 2,
        "payload": {"text": key},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "lease_owner": owner,
        "lease_until": None if lease is None else now + lease,
    }


async def _enqueue_at_once(store: Store, rows: list[dict[str, Any]]) -> dict[str, int]:
    """As the command router writes its replies: the ids of the rows inserted."""
    async with store.transaction() as conn:
        return await outbox_repo.enqueue(conn, rows)


def _messages(rows: list[dict[str, Any]], ids: dict[str, int]) -> list[OutboundMessage]:
    return [
        OutboundMessage(
            id=ids[r["idempotency_key"]],
            channel=r["channel"],
            destination=r["destination"],
            idempotency_key=r["idempotency_key"],
            payload=r["payload"],
            attempts=0,
        )
        for r in rows
        if r["idempotency_key"] in ids
    ]


async def test_send_now_sends_leased_messages_at_once_and_records_them_together(
    store: Store, clock: FrozenClock
) -> None:
    sender = Recording()
    w = OutboxWorker(store, {"chat": sender}, clock, owner="w")
    assert w.can_send_now("chat") and not w.can_send_now("other")  # noqa: PT018
    rows = [_reply(f"k{i}", clock, owner="w", lease=w.lease) for i in range(5)]
    ids = await _enqueue_at_once(store, rows)
    assert sorted(ids) == [f"k{i}" for i in range(5)]
    assert await w.run_once() == 0  # leased to this process for sending now: no pass takes them
    w.send_now(_messages(rows, ids))
    await w.drain()
    assert sorted(sender.sent) == [f"k{i}" for i in range(5)]
    assert await statuses(store) == [("sent", 1)] * 5
    # queued again (a command re-run after a crash): nothing is inserted, so nothing is sent twice
    assert await _enqueue_at_once(store, rows) == {}
    assert await w.run_once() == 0
    assert len(sender.sent) == 5


async def test_a_message_queued_for_send_now_by_a_process_that_died_is_sent_once_its_lease_runs_out(
    store: Store, clock: FrozenClock
) -> None:
    rows = [_reply("k", clock, owner="dead", lease=timedelta(minutes=5))]
    await _enqueue_at_once(store, rows)  # the process died before sending it
    sender = Recording()
    w = OutboxWorker(store, {"chat": sender}, clock, owner="w")
    assert await w.run_once() == 0  # its lease still holds
    clock.advance(minutes=5, seconds=1)
    assert await w.run_once() == 1
    assert sender.sent == ["k"]
    assert await statuses(store) == [("sent", 1)]


async def test_a_failed_send_now_is_retried_by_a_later_pass(store: Store, clock: FrozenClock) -> None:
    sender = Recording()
    sender.fail = 1
    w = OutboxWorker(store, {"chat": sender}, clock, owner="w")
    rows = [_reply("k", clock, owner="w", lease=w.lease)]
    w.send_now(_messages(rows, await _enqueue_at_once(store, rows)))
    await w.drain()
    assert sender.sent == [] and await statuses(store) == [("pending", 1)]  # noqa: PT018
    clock.advance(minutes=1)
    assert await w.run_once() == 1
    assert sender.sent == ["k"] and await statuses(store) == [("sent", 2)]  # noqa: PT018


async def test_run_forever_returns_after_the_sends_it_was_given(store: Store, clock: FrozenClock) -> None:
    release = asyncio.Event()

    class Slow(Recording):
        async def send(self, message: OutboundMessage) -> None:
            await release.wait()
            await super().send(message)

    sender = Slow()
    w = OutboxWorker(store, {"chat": sender}, clock, owner="w")
    task = asyncio.create_task(w.run_forever())
    rows = [_reply("k", clock, owner="w", lease=w.lease)]
    w.send_now(_messages(rows, await _enqueue_at_once(store, rows)))
    await asyncio.sleep(0)
    w.stop()
    assert not w.can_send_now("chat")  # stopping: new replies wait in the outbox for the next process
    await asyncio.sleep(0)
    assert not task.done()
    release.set()
    await task
    assert sender.sent == ["k"] and await statuses(store) == [("sent", 1)]  # noqa: PT018
