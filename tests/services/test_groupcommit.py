"""The group-commit mechanism on its own: batching, order, and what a failure does to a batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bot.services.groupcommit import GroupCommit


class Recorder:
    def __init__(self, fail: BaseException | None = None, bad: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.bad = bad

    async def commit(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0)  # a commit takes a turn of the loop: others queue up meanwhile
        if self.fail is not None:
            raise self.fail
        if self.bad in items:
            raise ValueError(f"item {self.bad} refused")
        return [i * 10 for i in items]


async def test_items_waiting_share_a_commit_and_each_gets_its_own_result() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.commit, max_batch=4)
    results = await asyncio.gather(*(group.submit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert [len(b) for b in recorder.batches] == [4, 4, 2]  # all waiting together, max_batch at a time
    assert [i for b in recorder.batches for i in b] == list(range(10))  # in arrival order
    assert group.idle


async def test_a_refused_item_fails_alone() -> None:
    recorder = Recorder(bad=3)
    group = GroupCommit(recorder.commit)
    results = await asyncio.gather(*(group.submit(i) for i in range(6)), return_exceptions=True)
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 10, 20, 40, 50]
    assert recorder.batches == [[0, 1, 2, 3, 4, 5], [0], [1], [2], [3], [4], [5]]  # split to find the bad one


@pytest.mark.parametrize("error", [ConnectionRefusedError("db down"), TimeoutError()])
async def test_an_unreachable_database_fails_the_batch_at_once(error: BaseException) -> None:
    recorder = Recorder(fail=error)
    group = GroupCommit(recorder.commit)
    results = await asyncio.gather(*(group.submit(i) for i in range(6)), return_exceptions=True)
    assert all(isinstance(r, type(error)) for r in results)
    assert recorder.batches == [[0, 1, 2, 3, 4, 5]]  # one attempt, no item-by-item retries


async def test_a_caller_that_gives_up_does_not_stop_the_commit() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.commit)
    first = asyncio.create_task(group.submit(1))
    second = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0)  # both queued, the commit under way
    first.cancel()
    assert await second == 20
    with pytest.raises(asyncio.CancelledError):
        await first
    await group.close()
    assert recorder.batches == [[1, 2]]  # the cancelled caller's item was written with the others
    assert group.idle
