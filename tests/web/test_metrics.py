"""``/metrics`` as an operator's Prometheus reads it: the standard process and Python collectors, the build, what
the outbox and the inbox hold and for how long, sends and their errors by channel and code, the process's part in
the elections, the deadline engine's last tick, and a token when one is set. Read with prometheus_client's own
parser, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import create_app
from bot.domain.clock import FrozenClock
from bot.web.keys import DEADLINE_ENGINE, STORE
from bot.web.metrics import Metrics
from config.model import BotConfig
from config.settings import Settings
from notifiers.outbox import Deferred, DeliveryError, OutboundMessage, OutboxWorker
from store import inbox as inbox_repo
from store import outbox as outbox_repo
from store.core import Store
from store.gauges import inbox_backlog, outbox_backlog
from store.models import outbox
from tests.notifiers.conftest import enqueue

Client = TestClient[Any, Any]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape: (name, sorted labels) → value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float | None:
    return scraped.get((name, tuple(sorted(labels.items()))))


async def scrape(client: Client, headers: Mapping[str, str] | None = None) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return samples(await response.text())


def row(
    channel: str, *, status: str, attempts: int, created: datetime, due: datetime, since: datetime | None = None
) -> dict[str, Any]:
    return {
        **({"due_since": since} if since is not None else {}),  # else the queue's own: its first attempt's time
        "channel": channel,
        "destination": "d",
        "idempotency_key": f"{channel}:{uuid.uuid4().hex}",
        "ordering_key": None,
        "priority": 5,
        "payload": {"text": "x"},
        "status": status,
        "attempts": attempts,
        "next_attempt_at": due,
        "created_at": created,
    }


async def test_the_outbox_backlog_by_channel_and_how_long_it_has_waited(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    client = await aiohttp_client(
        create_app(settings_for(database_url), sandbox_config, clock=clock, run_workers=False)
    )
    now = clock.now()
    minutes = lambda n: now - timedelta(minutes=n)  # noqa: E731
    rows = [
        # due 20 minutes ago and not tried: it has waited 20 minutes
        row("wecom_app", status="pending", attempts=0, created=minutes(25), due=minutes(20)),
        # held until tomorrow morning (quiet hours): queued long ago, but it does not wait yet
        row("wecom_app", status="pending", attempts=0, created=minutes(180), due=now + timedelta(hours=10)),
        # failing since it was queued 45 minutes ago, its next try in 5 minutes: it has waited 45 minutes
        row(
            "wecom_webhook",
            status="pending",
            attempts=3,
            created=minutes(45),
            due=now + timedelta(minutes=5),
            since=minutes(45),
        ),
        # due 30 minutes ago, never tried: its chat is at its rate limit, the next slot in a minute
        row(
            "wecom_appchat",
            status="pending",
            attempts=0,
            created=minutes(30),
            due=now + timedelta(minutes=1),
            since=minutes(30),
        ),  # fmt: skip
        row("wecom_webhook", status="dead", attempts=8, created=minutes(120), due=minutes(60)),
        row("wecom_webhook", status="sent", attempts=1, created=minutes(500), due=minutes(500)),
    ]
    async with client.app[STORE].transaction() as conn:
        await outbox_repo.enqueue(conn, rows)

    scraped = await scrape(client)
    assert value(scraped, "hotline_database_up") == 1
    assert value(scraped, "hotline_outbox_messages", channel="wecom_app", status="pending") == 2
    assert value(scraped, "hotline_outbox_messages", channel="wecom_app", status="dead") == 0
    assert value(scraped, "hotline_outbox_messages", channel="wecom_webhook", status="pending") == 1
    assert value(scraped, "hotline_outbox_messages", channel="wecom_webhook", status="dead") == 1
    assert value(scraped, "hotline_outbox_oldest_pending_age_seconds", channel="wecom_app") == 20 * 60
    assert value(scraped, "hotline_outbox_oldest_pending_age_seconds", channel="wecom_webhook") == 45 * 60
    assert value(scraped, "hotline_outbox_oldest_pending_age_seconds", channel="wecom_appchat") == 30 * 60

    # ten hours on, the held message is due and the failing one has gone out: the queue has only its due message
    clock.advance(hours=10, minutes=1)
    async with client.app[STORE].transaction() as conn:
        await conn.execute(outbox.update().where(outbox.c.attempts == 3).values(status="sent"))
    scraped = await scrape(client)
    assert value(scraped, "hotline_outbox_messages", channel="wecom_webhook", status="pending") == 0
    assert value(scraped, "hotline_outbox_oldest_pending_age_seconds", channel="wecom_webhook") == 0
    assert value(scraped, "hotline_outbox_oldest_pending_age_seconds", channel="wecom_app") == (10 * 60 + 21) * 60


async def test_the_standard_collectors_the_build_and_nothing_for_an_idle_queue(
    aiohttp_client: Callable[..., Awaitable[Client]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    client = await aiohttp_client(create_app(settings_for(sqlite_url), sandbox_config, clock=clock, run_workers=False))
    scraped = await scrape(client)
    names = {name for name, _ in scraped}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"} <= names
    assert {"python_info", "python_gc_collections_total"} <= names
    [(_, build)] = [(name, dict(labels)) for name, labels in scraped if name == "hotline_build_info"]
    assert set(build) == {"version", "python"}
    assert not any(name.endswith("_created") for name in names)  # no creation-time series beside every counter
    assert not any(name == "hotline_outbox_messages" for name in names)  # nothing queued: no channel to report
    assert value(scraped, "hotline_calendar_fallback_days") == 0


async def test_metrics_behind_a_token(
    aiohttp_client: Callable[..., Awaitable[Client]],
    sqlite_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> None:
    token = "scrape-" + "x" * 24
    settings = settings_for(sqlite_url, METRICS_TOKEN=token)
    client = await aiohttp_client(create_app(settings, sandbox_config, clock=clock, run_workers=False))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
        refused = await client.get("/metrics", headers=headers)
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert (await refused.json())["error"]["code"] == "unauthorized"
    scraped = await scrape(client, {"Authorization": f"Bearer {token}"})
    assert value(scraped, "hotline_database_up") == 1
    assert (await client.get("/livez")).status == 200  # the probes need no token


async def test_the_leader_and_the_engines_last_tick(leading_client: Client, clock: FrozenClock) -> None:
    client = leading_client
    scraped = await scrape(client)
    assert value(scraped, "hotline_leader", role="deadline_engine") == 1
    assert value(scraped, "hotline_deadline_engine_last_tick_timestamp_seconds") == 0  # not ticked yet
    await client.app[DEADLINE_ENGINE].tick()
    clock.advance(minutes=3)
    scraped = await scrape(client)
    assert value(scraped, "hotline_deadline_engine_ticks_total") == 1
    ticked = value(scraped, "hotline_deadline_engine_last_tick_timestamp_seconds")
    assert ticked == (clock.now() - timedelta(minutes=3)).timestamp()
    # the sandbox's outbox sends through its channels: they are reported, each with nothing waiting
    assert value(scraped, "hotline_inbox_pending", source="wecom_aibot") is not None


class Scripted:
    """A sender whose answers are given in advance: None sends, an error fails."""

    def __init__(self, answers: Sequence[DeliveryError | None]) -> None:
        self.answers = list(answers)

    async def send(self, message: OutboundMessage) -> None:
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer


async def test_sends_and_send_errors_by_channel_and_code(store: Store, clock: FrozenClock) -> None:
    metrics = Metrics()
    senders = {
        "wecom_app": Scripted([DeliveryError("errcode 60020", permanent=True, code="60020"), None]),
        "hotline_sync": Scripted([DeliveryError("hotline answered 502", code="http_502"), None]),
    }
    worker = OutboxWorker(store, senders, clock, owner="w1", on_sent=metrics.sent_one, on_error=metrics.send_failed)
    await enqueue(store, clock.now(), "wecom_app", "wuhao", [{"text": "a"}, {"text": "b"}])
    await enqueue(store, clock.now(), "hotline_sync", "https://hotline.example/sync", [{"x": 1}])
    for _ in range(5):
        await worker.run_once()
        clock.advance(minutes=1)  # past the retry's backoff
    scraped = samples(generate_latest(metrics.registry).decode())
    assert value(scraped, "hotline_outbox_send_errors_total", channel="wecom_app", code="60020") == 1
    assert value(scraped, "hotline_outbox_send_errors_total", channel="hotline_sync", code="http_502") == 1
    assert value(scraped, "hotline_outbox_sent_total", channel="wecom_app") == 1
    assert value(scraped, "hotline_outbox_sent_total", channel="hotline_sync") == 1


async def test_the_inbox_backlog_by_source(store: Store, clock: FrozenClock) -> None:
    async with store.transaction() as conn:
        for n, minutes in enumerate((30, 10)):
            await inbox_repo.record_inbound(
                conn, source="wecom_app", dedup_key=f"k{n}", payload="{}", at=clock.now() - timedelta(minutes=minutes)
            )
        await inbox_repo.record_inbound(
            conn, source="wecom_aibot", dedup_key="done", payload="{}", at=clock.now(), status="done"
        )
    async with store.reading() as conn:
        backlog = await inbox_backlog(conn, ["wecom_app", "wecom_aibot"])
    assert set(backlog) == {"wecom_app"}
    assert backlog["wecom_app"].count == 2
    assert backlog["wecom_app"].waiting_since == clock.now() - timedelta(minutes=30)


async def test_a_message_paced_again_and_again_keeps_its_wait(store: Store, clock: FrozenClock) -> None:
    """A chat at its rate limit moves its messages' next attempt on and on: the wait /metrics reports still counts
    from when they first became due, so a queue that never drains is seen; a replayed dead letter starts again."""
    metrics = Metrics()
    senders = {"wecom_appchat": Scripted([Deferred("paced", retry_after=60)] * 5)}
    worker = OutboxWorker(store, senders, clock, owner="w1", on_sent=metrics.sent_one, on_error=metrics.send_failed)
    await enqueue(store, clock.now(), "wecom_appchat", "hw01", [{"text": "a"}])
    for _ in range(5):
        await worker.run_once()
        clock.advance(seconds=61)
    async with store.reading() as conn:
        backlog = await outbox_backlog(conn, clock.now())
    assert backlog[("wecom_appchat", "pending")].count == 1
    assert backlog[("wecom_appchat", "pending")].waiting_since == clock.now() - timedelta(seconds=5 * 61)
    scraped = samples(generate_latest(metrics.registry).decode())
    assert not any(name == "hotline_outbox_send_errors_total" for name, _ in scraped)  # pacing is not an error

    async with store.transaction() as conn:
        await conn.execute(outbox.update().values(status="dead"))
        clock.advance(hours=1)
        await outbox_repo.replay(conn, None, at=clock.now())
    async with store.reading() as conn:
        backlog = await outbox_backlog(conn, clock.now())
    assert backlog[("wecom_appchat", "pending")].waiting_since == clock.now()
