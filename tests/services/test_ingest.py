"""Group commit: concurrent hand-overs share transactions, yet each is answered for itself, after commit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bot.domain.ticket import TicketInput
from bot.services.ingest import IngestBatcher
from bot.services.tickets import TicketService, UpsertOutcome
from store.core import ConstraintViolation


class CountingService(TicketService):
    """The real service, counting its transactions."""

    calls: list[list[str]]

    async def upsert(self, inputs: Sequence[TicketInput], **kw: object) -> list[UpsertOutcome]:
        self.calls.append([t.ticket_no for t in inputs])
        return await super().upsert(inputs, **kw)  # type: ignore[arg-type]


@pytest.fixture
def counting(service: TicketService) -> CountingService:
    counted = CountingService(service.store, service.config, service.planner.calendar, service.clock)
    counted.calls = []
    return counted


def t(no: str, content: str | None = "路灯不亮") -> TicketInput:
    return TicketInput(ticket_no=no, content=content)  # type: ignore[arg-type]


async def test_concurrent_submissions_share_transactions(counting: CountingService) -> None:
    batcher = IngestBatcher(counting)
    results = await asyncio.gather(*(batcher.submit_inputs([t(f"2026112300{i:03d}")]) for i in range(50)))
    assert [r[0].status for r in results] == ["created"] * 50
    assert [r[0].ticket_no for r in results] == [f"2026112300{i:03d}" for i in range(50)]
    assert len(counting.calls) < 50  # grouped: the first alone, the rest behind it
    assert sum(len(c) for c in counting.calls) == 50


async def test_same_number_twice_is_never_in_one_batch(counting: CountingService) -> None:
    batcher = IngestBatcher(counting)
    first, second = await asyncio.gather(
        batcher.submit_inputs([t("2026112300001", "第一次")]), batcher.submit_inputs([t("2026112300001", "第二次")])
    )
    assert (first[0].status, second[0].status) == ("created", "updated")
    assert all(len(set(c)) == len(c) for c in counting.calls)
    assert (await counting.get("2026112300001")).ticket.content == "第二次"


async def test_a_failing_hand_over_fails_alone(counting: CountingService) -> None:
    batcher = IngestBatcher(counting)
    results = await asyncio.gather(
        batcher.submit_inputs([t("2026112300001")]),
        batcher.submit_inputs([t("2026112300002")]),
        batcher.submit_inputs([t("2026112300003", content=None)]),  # the database refuses: content is NOT NULL
        batcher.submit_inputs([t("2026112300004")]),
        return_exceptions=True,
    )
    assert isinstance(results[2], ConstraintViolation)
    assert [r[0].status for i, r in enumerate(results) if i != 2] == ["created"] * 3  # type: ignore[index]
    assert (await counting.get("2026112300004")).ticket.state == "dispatched"


async def test_max_batch_is_respected(counting: CountingService) -> None:
    batcher = IngestBatcher(counting, max_batch=10)
    await asyncio.gather(*(batcher.submit_inputs([t(f"2026112300{i:03d}")]) for i in range(35)))
    assert max(len(c) for c in counting.calls) <= 10


async def test_sources_never_share_a_batch(counting: CountingService) -> None:
    sources: list[str] = []
    original = counting.upsert

    async def recording(inputs: Sequence[TicketInput], **kw: object) -> list[UpsertOutcome]:
        sources.append(str(kw["source"]))
        return await original(inputs, **kw)

    counting.upsert = recording  # type: ignore[method-assign]
    batcher = IngestBatcher(counting)
    results = await asyncio.gather(
        *(batcher.submit_inputs([t(f"2026112300{i:03d}")], source="api" if i % 2 else "import") for i in range(20))
    )
    assert [r[0].status for r in results] == ["created"] * 20
    assert len(sources) == len(counting.calls) >= 2
    assert set(sources) == {"api", "import"}
