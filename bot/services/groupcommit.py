"""Group commit: writes that arrive while a transaction is in flight wait and are committed together in the next.

A burst of concurrent requests then costs a few transactions (a few fsyncs on SQLite, a few round trips on
PostgreSQL) instead of one each. Every caller still gets its answer only after the transaction holding its item has
committed, so nothing is acknowledged before it is persisted. A batch that fails is retried item by item, so one bad
item fails alone and the others still commit; but not when the database itself is out of reach (a connection
error, a timeout): then every item of the batch fails at once, instead of each waiting for its own timeout.

:class:`GroupCommit` is the mechanism; what a batch may hold (:meth:`GroupCommit.select`) and how it is written
(the ``commit`` function, one result per item, in order) are the caller's. The hotline hand-overs
(:class:`bot.services.ingest.IngestBatcher`) and WeCom's inbound callbacks (:mod:`bot.services.inbox`) both use it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from store.liveness import unreachable  # the database away: the whole batch fails alike

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

CommitFn = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


class GroupCommit(Generic[T, R]):
    """Batches items for ``commit``; at most one commit in flight per instance, batches in arrival order."""

    def __init__(self, commit: CommitFn[T, R], *, max_batch: int = 500, name: str = "group-commit") -> None:
        self._commit_fn = commit
        self.max_batch = max_batch
        self.name = name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Commits ``item`` (with whatever else is waiting) and returns its result, or raises its error. The
        commit goes ahead even if the caller is cancelled: a caller that gave up may find its item written."""
        # no shield needed: the commit is the drain task's, so a cancelled caller only cancels its own future, which
        # the commit then leaves alone (_settle)
        return await self.submit_nowait(item)

    def submit_nowait(self, item: T) -> asyncio.Future[R]:
        """Queues ``item``; the future settles once its transaction has committed (or failed)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            # a context of its own: it serves every caller, and its log lines are none's (bot.logging.bound)
            self._task = asyncio.create_task(self._drain(), name=self.name, context=contextvars.Context())
        return future

    @property
    def idle(self) -> bool:
        return not self._pending and (self._task is None or self._task.done())

    def select(self, pending: Sequence[T]) -> list[int]:
        """The indexes into ``pending`` (oldest first) of the next batch; never empty. By default the oldest
        ``max_batch`` items; override to keep apart items that must not share a transaction."""
        return list(range(min(len(pending), self.max_batch)))

    async def _drain(self) -> None:
        while self._pending:
            chosen = self.select([item for item, _ in self._pending])
            if not chosen:  # a select that takes nothing would spin: take the oldest
                chosen = [0]
            taken = set(chosen)
            batch = [self._pending[i] for i in chosen]
            self._pending = [entry for i, entry in enumerate(self._pending) if i not in taken]
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._commit_fn([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
        except Exception as exc:
            if len(batch) == 1 or unreachable(exc):
                for _, future in batch:
                    _settle(future, exc=exc)
                return
            log.warning("%s: a batch of %d failed; retrying one by one", self.name, len(batch), exc_info=True)
            for entry in batch:
                await self._commit([entry])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)

    async def close(self) -> None:
        """Waits until everything submitted so far is committed."""
        while self._task is not None and not self._task.done():
            await asyncio.wait([self._task])


def _settle(future: asyncio.Future[R], *, result: R | None = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
