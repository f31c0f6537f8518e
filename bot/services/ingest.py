"""Group commit for hand-overs from the hotline (see :mod:`bot.services.groupcommit`).

Hand-overs that arrive while a transaction is in flight wait and are committed together in the next one; every
caller gets its answer only after the transaction holding its tickets has committed. A batch that fails is retried
hand-over by hand-over, so one bad hand-over fails alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.ticket import TicketInput
from bot.services.groupcommit import GroupCommit
from bot.services.tickets import TicketService, UpsertOutcome


@dataclass(frozen=True, slots=True)
class _Submission:
    inputs: Sequence[TicketInput]
    source: str


class IngestBatcher(GroupCommit[_Submission, list[UpsertOutcome]]):
    def __init__(self, service: TicketService, *, max_batch: int = 500) -> None:
        super().__init__(self._upsert, max_batch=max_batch, name="ingest-batcher")
        self.service = service

    async def submit_inputs(self, inputs: Sequence[TicketInput], *, source: str = "api") -> list[UpsertOutcome]:
        """Upserts one hand-over (committed with whatever else is waiting); its outcomes, in order."""
        return await self.submit(_Submission(list(inputs), source))

    def select(self, pending: Sequence[_Submission]) -> list[int]:
        """The next batch, in arrival order: one source, at most ``max_batch`` tickets (a bigger hand-over goes
        alone), and a ticket number at most once per batch (so each caller's outcome describes its own hand-over)
        and never ahead of an earlier hand-over of the same number."""
        chosen: list[int] = []
        taken: set[str] = set()
        blocked: set[str] = set()
        size = 0
        source = pending[0].source
        for i, submission in enumerate(pending):
            mine = {t.ticket_no for t in submission.inputs}
            fits = not chosen or size + len(submission.inputs) <= self.max_batch
            if fits and submission.source == source and not (mine & (taken | blocked)):
                chosen.append(i)
                taken |= mine
                size += len(submission.inputs)
            else:
                blocked |= mine
        return chosen

    async def _upsert(self, batch: Sequence[_Submission]) -> list[list[UpsertOutcome]]:
        outcomes = await self.service.upsert([t for s in batch for t in s.inputs], source=batch[0].source)
        results: list[list[UpsertOutcome]] = []
        start = 0
        for submission in batch:
            end = start + len(submission.inputs)
            results.append(outcomes[start:end])
            start = end
        return results
