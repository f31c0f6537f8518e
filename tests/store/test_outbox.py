"""The outbox's statements on both backends."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.domain.clock import TZ
from store import outbox as outbox_repo
from store.core import Store
from store.models import outbox


async def test_outbox_claims_most_urgent_first_and_leases(store: Store) -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)

    def message(key: str, priority: int, due: datetime = now) -> dict[str, object]:
        return {
            "channel": "c",
            "destination": "d",
            "idempotency_key": key,
            "ordering_key": key,
            "priority": priority,
            "payload": {"k": key},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": due,
            "created_at": now,
        }

    async with store.transaction() as conn:
        await outbox_repo.enqueue(
            conn, [message("routine", 5), message("urgent", 0), message("later", 0, now + timedelta(1))]
        )
        await outbox_repo.enqueue(conn, [message("urgent", 0)])  # the same key again is not queued twice
    async with store.transaction() as conn:
        claimed = await outbox_repo.claim_due(
            conn, owner="a", now=now, lease_until=now + timedelta(seconds=60), limit=10
        )
    assert [r["idempotency_key"] for r in claimed] == ["urgent", "routine"]
    async with store.transaction() as conn:
        assert await outbox_repo.claim_due(conn, owner="b", now=now, lease_until=now, limit=10) == []
        expired = now + timedelta(seconds=61)
        again = await outbox_repo.claim_due(conn, owner="b", now=expired, lease_until=expired, limit=10)
    assert [r["lease_owner"] for r in again] == ["b", "b"]
    for owner in ("a", "b"):  # a lost its lease: its mark has no effect
        ids = [again[0]["id"]]
        async with store.transaction() as conn:
            await outbox_repo.mark_sent(conn, ids, owner=owner, at=now)
    async with store.reading() as conn:
        counts = await outbox_repo.outbox_counts(conn)
    assert counts == {"pending": 2, "sent": 1}


async def test_enqueue_skips_queued_keys_and_tells_the_ids_of_the_new_rows(store: Store) -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)

    def row(key: str, text: str) -> dict[str, Any]:
        return {
            "channel": "wecom_app",
            "destination": "zhouting",
            "idempotency_key": key,
            "ordering_key": None,
            "priority": 2,
            "payload": {"msgtype": "text", "content": {"content": text}},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        }

    async def enqueue(rows: list[dict[str, Any]]) -> dict[str, int]:
        async with store.transaction() as conn:
            return await outbox_repo.enqueue(conn, rows)

    first = await enqueue([row("r1", "您好"), row("r2", "第二条")])
    leased = {**row("r3", "第三条"), "lease_owner": "w", "lease_until": at}  # rows may carry a lease, or not
    second = await enqueue([row("r1", "again"), leased])  # r1 is queued already: left out
    assert sorted(first) == ["r1", "r2"]
    assert list(second) == ["r3"]
    async with store.reading() as conn:
        found = {r["idempotency_key"]: dict(r) for r in (await conn.execute(select(outbox))).mappings()}
    assert sorted(found) == ["r1", "r2", "r3"]
    assert found["r1"]["payload"] == {"msgtype": "text", "content": {"content": "您好"}}
    assert (found["r3"]["next_attempt_at"], found["r3"]["priority"], found["r3"]["lease_owner"]) == (at, 2, "w")
    assert {key: found[key]["id"] for key in ("r1", "r2", "r3")} == {**first, **second}
    later = at + timedelta(seconds=1)  # r3's lease has run out
    async with store.transaction() as conn:  # and the outbox worker claims them as any other
        claimed = await outbox_repo.claim_due(
            conn, owner="w", now=later, lease_until=later, limit=10, channels=["wecom_app"]
        )
    assert len(claimed) == 3
