"""Retention: handled inbox rows and sent outbox messages go once past ``retention:``; nothing else does. On both
backends, in batches; as the app's hourly job (in the leading process only) and as ``run_bot.py purge``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from bot.app.scheduler import purge_if_leader
from bot.domain.clock import FrozenClock
from bot.services.retention import purge
from config.model import BotConfig, Retention
from store import inbox as inbox_repo
from store import outbox as outbox_repo
from store.core import Store
from store.leader import Leader
from store.models import inbox, outbox


async def _fill(store: Store, clock: FrozenClock) -> None:
    """Inbox and outbox rows of every status, 100 days old and a day old."""
    now = clock.now()
    old, recent = now - timedelta(days=100), now - timedelta(days=1)
    async with store.transaction() as conn:
        for age, at in (("old", old), ("recent", recent)):
            for status in ("done", "failed", "pending"):
                await inbox_repo.record_inbound(
                    conn, source="wecom_app", dedup_key=f"{age}-{status}", payload="<xml/>", at=at, status=status
                )
            await outbox_repo.enqueue(
                conn,
                [
                    {
                        "channel": "robot",
                        "destination": "d",
                        "idempotency_key": f"{age}-{status}",
                        "ordering_key": None,
                        "priority": 5,
                        "payload": {},
                        "status": status,
                        "attempts": 0,
                        "next_attempt_at": at,
                        "created_at": at,
                    }
                    for status in ("sent", "dead", "pending")
                ],
            )
            await conn.execute(
                update(outbox).where(outbox.c.status == "sent", outbox.c.sent_at.is_(None)).values(sent_at=at)
            )


async def _left(store: Store) -> tuple[list[str], list[str]]:
    async with store.reading() as conn:
        kept_in = (await conn.execute(select(inbox.c.dedup_key).order_by(inbox.c.dedup_key))).scalars().all()
        kept_out = (
            (await conn.execute(select(outbox.c.idempotency_key).order_by(outbox.c.idempotency_key))).scalars().all()
        )
    return list(kept_in), list(kept_out)


async def test_only_handled_and_sent_rows_past_their_retention_go(store: Store, clock: FrozenClock) -> None:
    await _fill(store, clock)
    for _ in range(3):  # a few more old handled rows than one batch
        async with store.transaction() as conn:
            for i in range(3):
                await inbox_repo.record_inbound(
                    conn,
                    source="hotline",
                    dedup_key=f"old-h{_}{i}",
                    payload="{}",
                    at=clock.now() - timedelta(days=95),
                    status="done",
                )
    purged = await purge(store, Retention(inbox_days=90, outbox_days=90), clock.now(), batch=2)
    assert (purged.inbox, purged.outbox) == (2 + 9, 1)
    kept_in, kept_out = await _left(store)
    assert kept_in == ["old-pending", "recent-done", "recent-failed", "recent-pending"]  # pending rows stay
    assert kept_out == ["old-dead", "old-pending", "recent-dead", "recent-pending", "recent-sent"]  # dead letters stay
    assert await purge(store, Retention(inbox_days=90, outbox_days=90), clock.now()) == type(purged)(0, 0)


async def test_each_table_has_its_own_retention(store: Store, clock: FrozenClock) -> None:
    await _fill(store, clock)
    purged = await purge(store, Retention(inbox_days=3650, outbox_days=7), clock.now())
    assert (purged.inbox, purged.outbox) == (0, 1)


async def test_the_apps_job_purges_only_in_the_leading_process(
    store: Store, clock: FrozenClock, sandbox_config: BotConfig
) -> None:
    await _fill(store, clock)

    class NotLeading(Leader):
        async def holds(self) -> bool:
            return False

    class Leading(Leader):
        async def holds(self) -> bool:
            return True

    assert await purge_if_leader(store, sandbox_config, clock, NotLeading(store.engine, "x")) is None
    assert (await _left(store))[0][:2] == ["old-done", "old-failed"]
    purged = await purge_if_leader(store, sandbox_config, clock, Leading(store.engine, "x"))
    assert purged is not None
    assert (purged.inbox, purged.outbox) == (2, 1)  # the sandbox config keeps the defaults: 90 days


@pytest.mark.parametrize("field", ["inbox_days", "outbox_days"])
@pytest.mark.parametrize("value", [0, 6, 3651, "a month"])
def test_retention_must_be_a_week_to_ten_years(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        Retention.model_validate({field: value})
