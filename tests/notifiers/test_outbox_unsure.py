"""Sends whose fate is unknown: WeCom got the request but its answer was lost, or the process died between sending
and recording. Against the fake WeCom over real HTTP, on both databases; time is a FrozenClock moved by the test.

A group chat (app chat, robot webhook) has no duplicate check: it gets the push once plus at most one copy marked
【补发】, never two copies that read as two tickets. An app message goes out again unchanged, and WeCom's duplicate
check drops the copy. Nothing is lost, and every unsure send is counted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import OUTBOX, create_app
from bot.domain.clock import FrozenClock
from bot.sandbox.fake import FakeWeCom
from bot.services.ratelimit import MemoryRateLimiter
from bot.web.keys import STORE
from bot.web.metrics import Metrics
from bot.wecom.client import WebhookClient, WeComClient
from bot.wecom.tokens import MemoryTokenStore
from config.model import BotConfig
from config.settings import Settings
from notifiers.outbox import OutboundMessage, OutboxWorker
from notifiers.wecom import WECOM_APP, WECOM_APPCHAT, WECOM_WEBHOOK, wecom_senders
from store import outbox as outbox_repo
from store.core import Store
from store.models import outbox
from tests.notifiers.conftest import AGENT, CORP, KEY, SECRET, enqueue

CHAT = "hw01"
PUSH = "**【紧急】新工单 2026112300001**\n路灯不亮，夜间出行不便\n请发送 /接单 2026112300001 接单。"
MARKED = "**【补发】【紧急】新工单 2026112300001**\n路灯不亮，夜间出行不便\n请发送 /接单 2026112300001 接单。"
PATHS = {WECOM_WEBHOOK: "/cgi-bin/webhook/send", WECOM_APPCHAT: "/cgi-bin/appchat/send"}
DESTINATIONS = {WECOM_WEBHOOK: KEY, WECOM_APPCHAT: CHAT}


class Rig:
    """The store, the fake and its clients; ``worker`` is one bot process."""

    def __init__(self, store: Store, fake: FakeWeCom, clock: FrozenClock, session: aiohttp.ClientSession) -> None:
        assert fake.base_url is not None
        self.store, self.fake, self.clock = store, fake, clock
        self.metrics = Metrics()

        async def sleep(seconds: float) -> None:  # the clients' retry backoff moves time instead of waiting
            clock.advance(seconds=seconds)

        self.app = WeComClient(
            session,
            base_url=fake.base_url,
            corp_id=CORP,
            secret=SECRET,
            agent_id=AGENT,
            tokens=MemoryTokenStore(),
            clock=lambda: clock.now().timestamp(),
            sleep=sleep,
        )
        self.webhook = WebhookClient(session, base_url=fake.base_url, sleep=sleep)

    def worker(self, owner: str = "w1") -> OutboxWorker:
        senders = wecom_senders(
            limiter=MemoryRateLimiter(), clock=self.clock, app=self.app, appchat=self.app, webhook=self.webhook
        )
        return OutboxWorker(self.store, senders, self.clock, owner=owner, on_unsure=self.metrics.unsure_send)

    async def enqueue(self, channel: str, destination: str, payload: dict[str, Any]) -> None:
        await enqueue(self.store, self.clock.now(), channel, destination, [payload])

    async def drain(self, worker: OutboxWorker, *, minutes: float = 10) -> None:
        """The worker's passes until nothing is pending; while it waits, the clock moves to the next due message."""
        end = self.clock.now() + timedelta(minutes=minutes)
        while self.clock.now() < end:
            while await worker.run_once():
                pass
            async with self.store.reading() as conn:
                due = (
                    await conn.execute(select(func.min(outbox.c.next_attempt_at)).where(outbox.c.status == "pending"))
                ).scalar_one()
            if due is None:
                return
            self.clock.set(min(end, max(due, self.clock.now() + timedelta(seconds=1))))

    async def rows(self) -> list[dict[str, Any]]:
        async with self.store.reading() as conn:
            return [dict(r) for r in (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings()]

    def unsure(self, channel: str, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "hotline_outbox_unsure_total", {"channel": channel, "reason": reason}
        )
        return value or 0.0

    def group(self, channel: str) -> list[str]:
        """What the group of ``channel`` shows, in order."""
        if channel == WECOM_WEBHOOK:
            found = self.fake.messages_to(webhook_key=KEY)
        else:
            found = self.fake.messages_to(chatid=CHAT)
        return [d.body["markdown"]["content"] for d in found]


@pytest.fixture
async def rig(store: Store, fake: FakeWeCom, clock: FrozenClock, session: aiohttp.ClientSession) -> Rig:
    rig = Rig(store, fake, clock, session)
    await rig.app.appchat_create(userlist=["wuhao", "huangqiang"], chatid=CHAT)
    return rig


def push() -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": PUSH}}


def app_text() -> dict[str, Any]:
    return {"touser": ["wuhao"], "msgtype": "text", "content": {"content": "您认领的工单 2026112300001 已超时"}}


@pytest.mark.parametrize("channel", [WECOM_WEBHOOK, WECOM_APPCHAT])
async def test_a_push_whose_answer_was_lost_shows_once_and_then_once_marked(rig: Rig, channel: str) -> None:
    # WeCom delivers it into the group, then the connection drops before the answer
    rig.fake.inject("drop_after", path=PATHS[channel])
    await rig.enqueue(channel, DESTINATIONS[channel], push())
    await rig.drain(rig.worker())

    assert rig.group(channel) == [PUSH, MARKED]  # the same ticket number, the copy marked as one
    [row] = await rig.rows()
    assert row["status"] == "sent"
    assert row["payload"]["_unsure"] is True  # recorded as unsure
    assert rig.unsure(channel, "no_answer") == 1


@pytest.mark.parametrize("fault", ["drop", "server_error"])
async def test_a_push_that_may_not_have_reached_wecom_is_not_lost(rig: Rig, fault: Any) -> None:
    # the connection drops before WeCom did anything, or its gateway answers 500: we cannot tell either from a loss
    rig.fake.inject(fault, path=PATHS[WECOM_WEBHOOK])
    await rig.enqueue(WECOM_WEBHOOK, KEY, push())
    await rig.drain(rig.worker())

    assert rig.group(WECOM_WEBHOOK) == [MARKED]  # it arrives, once, marked
    assert rig.fake.stats[PATHS[WECOM_WEBHOOK]].requests == 2  # the client did not repeat it on its own
    assert rig.unsure(WECOM_WEBHOOK, "no_answer") == 1


async def test_an_app_message_whose_answer_was_lost_is_resent_unmarked_and_arrives_once(rig: Rig) -> None:
    rig.fake.inject("drop_after", path="/cgi-bin/message/send")
    await rig.enqueue(WECOM_APP, "wuhao", app_text())
    await rig.drain(rig.worker())

    [delivered] = rig.fake.messages_to(userid="wuhao")
    assert delivered.body["text"]["content"] == "您认领的工单 2026112300001 已超时"
    # the resend reached WeCom as the same request, which its duplicate check dropped
    [copy] = [d for d in rig.fake.dropped if d.reason == "duplicate_check"]
    assert copy.body == delivered.body
    assert [r["status"] for r in await rig.rows()] == ["sent"]
    assert rig.unsure(WECOM_APP, "no_answer") == 1


async def test_sends_a_dead_process_never_recorded_are_resent_marked_to_groups_and_plain_to_members(
    rig: Rig,
) -> None:
    await rig.enqueue(WECOM_WEBHOOK, KEY, push())
    await rig.enqueue(WECOM_APPCHAT, CHAT, push())
    await rig.enqueue(WECOM_APP, "wuhao", app_text())
    # a process claims the three and sends them, then dies before it records anything
    dead = rig.worker(owner="host-a:4242")
    now = rig.clock.now()
    async with rig.store.transaction() as conn:
        claimed = await outbox_repo.claim_due(conn, owner=dead.owner, now=now, lease_until=now + dead.lease, limit=10)
    for row in claimed:
        await dead.senders[row["channel"]].send(OutboundMessage.of(row))
    assert rig.group(WECOM_WEBHOOK) == rig.group(WECOM_APPCHAT) == [PUSH]

    rig.clock.advance(minutes=5, seconds=1)  # its lease runs out: another process takes the rows over
    await rig.drain(rig.worker(owner="host-b:5151"))

    assert rig.group(WECOM_WEBHOOK) == [PUSH, MARKED]
    assert rig.group(WECOM_APPCHAT) == [PUSH, MARKED]
    assert len(rig.fake.messages_to(userid="wuhao")) == 1
    [copy] = [d for d in rig.fake.dropped if d.reason == "duplicate_check"]
    assert copy.body["text"]["content"] == "您认领的工单 2026112300001 已超时"  # resent plainly, dropped by WeCom
    rows = await rig.rows()
    assert [r["status"] for r in rows] == ["sent"] * 3
    assert all(r["payload"]["_unsure"] is True for r in rows)
    for channel in (WECOM_WEBHOOK, WECOM_APPCHAT, WECOM_APP):
        assert rig.unsure(channel, "abandoned") == 1
        assert rig.unsure(channel, "no_answer") == 0


async def test_a_send_recorded_by_its_process_is_not_taken_for_an_abandoned_one(rig: Rig) -> None:
    """A message that failed (its lease released) and one deferred for its rate limit are resent as they were:
    only a claim that was never released makes a send unsure."""
    rig.fake.inject("busy", path=PATHS[WECOM_WEBHOOK], times=4)  # the client's retries run out: a failed attempt
    await rig.enqueue(WECOM_WEBHOOK, KEY, push())
    await rig.drain(rig.worker())

    assert rig.group(WECOM_WEBHOOK) == [PUSH]
    [row] = await rig.rows()
    assert row["attempts"] == 2
    assert "_unsure" not in row["payload"]
    assert rig.unsure(WECOM_WEBHOOK, "abandoned") == rig.unsure(WECOM_WEBHOOK, "no_answer") == 0


async def test_the_apps_metrics_count_unsure_sends(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
    fake: FakeWeCom,
) -> None:
    assert fake.base_url is not None
    settings = settings_for(sqlite_url, WECOM_API_BASE=fake.base_url)
    client = await aiohttp_client(create_app(settings, sandbox_config, clock=clock))
    app = client.app
    fake.inject("drop_after", path=PATHS[WECOM_WEBHOOK])
    now = clock.now()
    row = {
        "channel": WECOM_WEBHOOK,
        "destination": KEY,
        "idempotency_key": "push:2026112300001:1:new:group:HW",
        "ordering_key": None,
        "priority": 0,
        "payload": push(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    async with app[STORE].transaction() as conn:
        await outbox_repo.enqueue(conn, [row])
    for _ in range(10):  # bounded; the app's own passes may get there first, the lease keeps it to one at a time
        await app[OUTBOX].run_once()
        if len(fake.messages_to(webhook_key=KEY)) == 2:
            break
        clock.advance(seconds=5)  # past the backoff of the unsure attempt
    assert [d.body["markdown"]["content"] for d in fake.messages_to(webhook_key=KEY)] == [PUSH, MARKED]
    metrics = await (await client.get("/metrics")).text()
    assert 'hotline_outbox_unsure_total{channel="wecom_webhook",reason="no_answer"} 1.0' in metrics


async def test_an_app_message_resent_after_the_duplicate_checks_window_arrives_marked(rig: Rig) -> None:
    """A resend that comes late (the dead process's lease, a backoff, an outage: here 30 minutes), past the
    10 minutes over which WeCom would drop the copy, is marked 【补发】 as a group's would be: never two unmarked."""
    await rig.enqueue(WECOM_APP, "wuhao", app_text())
    dead = rig.worker(owner="host-a:4242")
    now = rig.clock.now()
    async with rig.store.transaction() as conn:
        [row] = await outbox_repo.claim_due(conn, owner=dead.owner, now=now, lease_until=now + dead.lease, limit=10)
    await dead.senders[row["channel"]].send(OutboundMessage.of(row))

    rig.clock.advance(minutes=30)
    await rig.drain(rig.worker(owner="host-b:5151"))

    first, again = (d.body["text"]["content"] for d in rig.fake.messages_to(userid="wuhao"))
    assert first == "您认领的工单 2026112300001 已超时"
    assert again.startswith("【补发】")
    assert again.endswith(first)
