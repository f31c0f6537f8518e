"""Group commit for hand-overs from the hotline.

Hand-overs that arrive while a transaction is in flight wait and are committed together in the next one,
so a burst costs a few transactions instead of one each. Every caller still gets its answer only after the
transaction holding its tickets has committed: nothing is acknowledged before it is persisted. A batch
that fails is retried submission by submission, so one bad hand-over fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.domain.ticket import TicketInput
from bot.services.tickets import TicketService, UpsertOutcome

log = logging.getLogger(__name__)


@dataclass
class _Submission:
    inputs: Sequence[TicketInput]
    source: str
    future: asyncio.Future[list[UpsertOutcome]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class IngestBatcher:
    def __init__(self, service: TicketService, *, max_batch: int = 500) -> None:
        self.service = service
        self.max_batch = max_batch
        self._pending: list[_Submission] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, inputs: Sequence[TicketInput], *, source: str = "api") -> list[UpsertOutcome]:
        submission = _Submission(list(inputs), source)
        self._pending.append(submission)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="ingest-batcher")
        # the commit goes ahead even if this caller goes away; a retry then finds the ticket unchanged
        return await asyncio.shield(submission.future)

    def _take(self) -> list[_Submission]:
        """The next batch, in arrival order. A ticket number appears at most once per batch (so each caller's
        outcome describes its own hand-over), and never ahead of an earlier hand-over of the same number."""
        batch: list[_Submission] = []
        rest: list[_Submission] = []
        taken: set[str] = set()
        blocked: set[str] = set()
        size = 0
        for submission in self._pending:
            mine = {t.ticket_no for t in submission.inputs}
            fits = not batch or size + len(submission.inputs) <= self.max_batch
            if fits and not (mine & taken) and not (mine & blocked):
                batch.append(submission)
                taken |= mine
                size += len(submission.inputs)
            else:
                rest.append(submission)
                blocked |= mine
        self._pending = rest
        return batch

    async def _drain(self) -> None:
        while self._pending:
            batch = self._take()
            by_source: dict[str, list[_Submission]] = {}
            for submission in batch:
                by_source.setdefault(submission.source, []).append(submission)
            for source, group in by_source.items():
                await self._commit(source, group)

    async def _commit(self, source: str, group: list[_Submission]) -> None:
        try:
            outcomes = await self.service.upsert([t for s in group for t in s.inputs], source=source)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0], exc=exc)
                return
            log.warning("batched hand-over failed; retrying one by one", exc_info=True)
            for submission in group:
                await self._commit(source, [submission])
            return
        start = 0
        for submission in group:
            end = start + len(submission.inputs)
            _settle(submission, result=outcomes[start:end])
            start = end

    async def close(self) -> None:
        if self._task is not None:
            await self._task


def _settle(
    submission: _Submission, *, result: list[UpsertOutcome] | None = None, exc: BaseException | None = None
) -> None:
    if submission.future.done():
        return
    if exc is not None:
        submission.future.set_exception(exc)
    else:
        submission.future.set_result(result or [])
