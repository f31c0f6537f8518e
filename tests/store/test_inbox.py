"""The inbox's statements on both backends."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.domain.clock import TZ
from store import inbox as inbox_repo
from store.core import Store
from store.models import inbox


async def test_inbox_deduplicates(store: Store) -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)
    async with store.transaction() as conn:
        first = await inbox_repo.record_inbound(conn, source="wecom", dedup_key="msg-1", payload="{}", at=at)
        again = await inbox_repo.record_inbound(conn, source="wecom", dedup_key="msg-1", payload="{}", at=at)
        other_source = await inbox_repo.record_inbound(conn, source="hotline", dedup_key="msg-1", payload="{}", at=at)
    assert first is not None
    assert again is None
    assert other_source is not None
    async with store.transaction() as conn:
        await inbox_repo.finish_inbound(conn, first, at=at, error="boom")
    async with store.reading() as conn:
        row = await inbox_repo.inbound(conn, "wecom", "msg-1")
    assert row is not None
    assert (row["status"], row["error"]) == ("failed", "boom")


async def test_inbox_batch_insert_deduplicates_within_and_across_batches(store: Store) -> None:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)

    def row(source: str, key: str) -> dict[str, Any]:
        return {"source": source, "dedup_key": key, "payload": f"<{key}>", "received_at": at}

    async with store.transaction() as conn:
        assert await inbox_repo.record_inbound_many(conn, []) == []
        first = await inbox_repo.record_inbound_many(conn, [row("wecom", "a"), row("wecom", "b"), row("wecom", "a")])
    assert None not in first[:2]
    assert first[2] is None
    async with store.transaction() as conn:
        second = await inbox_repo.record_inbound_many(conn, [row("wecom", "b"), row("hotline", "a"), row("wecom", "c")])
    assert second[0] is None
    assert None not in second[1:]
    assert len({*first[:2], *second[1:]}) == 4
    async with store.transaction() as conn:
        await inbox_repo.finish_inbound_many(conn, [(first[0], None), (first[1], "boom"), (second[1], None)], at=at)
    async with store.reading() as conn:
        a, b, c = [await inbox_repo.inbound(conn, "wecom", k) for k in "abc"]
        hotline_a = await inbox_repo.inbound(conn, "hotline", "a")
    assert a is not None and b is not None and c is not None and hotline_a is not None  # noqa: PT018 - for mypy
    assert (a["status"], a["payload"], a["received_at"]) == ("done", "<a>", at)
    assert (b["status"], b["error"]) == ("failed", "boom")
    assert (c["status"], hotline_a["status"]) == ("pending", "done")


async def test_a_batch_is_recorded_leased_and_its_marks_touch_only_the_owners_rows(store: Store) -> None:
    """The inbox's group commit (:func:`write_inbound`): new rows leased to the writer, marks for rows it holds,
    in one transaction."""
    at = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=TZ)
    until = at + timedelta(minutes=5)

    def rows(prefix: str) -> list[dict[str, Any]]:
        return [
            {"source": "wecom", "dedup_key": f"{prefix}{k}", "payload": f"<{k}>", "received_at": at}
            for k in ["a", "b", "a", "c"]
        ]

    async with store.transaction() as conn:
        mine = await inbox_repo.write_inbound(conn, rows("x"), [], owner="me", lease_until=until, at=at)
        theirs = await inbox_repo.record_inbound_many(conn, rows("y"), lease_owner="other", lease_until=until)
    assert [i is None for i in mine] == [i is None for i in theirs] == [False, False, True, False]
    xa, xb, ya = mine[0], mine[1], theirs[0]
    assert xa is not None
    assert xb is not None
    assert ya is not None
    later = at + timedelta(seconds=1)
    new = {"source": "wecom", "dedup_key": "xd", "payload": "<d>", "received_at": later}
    async with store.transaction() as conn:
        again = await inbox_repo.write_inbound(
            conn, [*rows("x")[:1], new], [(xa, None), (xb, "boom"), (ya, None)], owner="me", lease_until=until, at=at
        )
    assert again[0] is None
    assert again[1] is not None
    async with store.reading() as conn:
        found = {r["dedup_key"]: dict(r) for r in (await conn.execute(select(inbox))).mappings()}
    assert (found["xc"]["received_at"], found["xc"]["lease_until"], found["xc"]["lease_owner"]) == (at, until, "me")
    assert (found["xa"]["status"], found["xa"]["lease_owner"], found["xa"]["processed_at"]) == ("done", None, at)
    assert (found["xb"]["status"], found["xb"]["error"]) == ("failed", "boom")
    assert (found["ya"]["status"], found["ya"]["lease_owner"]) == ("pending", "other")  # not mine to mark
    assert (found["xd"]["id"], found["xd"]["status"], found["xd"]["received_at"]) == (again[1], "pending", later)
