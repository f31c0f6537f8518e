"""Inbound callbacks: persisted before WeCom gets its answer, processed after it.

WeCom waits 5 s for an answer and then retries, so the HTTP handler only verifies, decrypts, parses and calls
:meth:`InboundProcessor.accept`, which writes the decrypted payload to the inbox (status ``pending``) and returns
once that is committed. Callbacks arriving together share a transaction (group commit,
:mod:`bot.services.groupcommit`), so a burst costs a few commits, not one each. The row's (source, dedup key) is
unique: a retry finds it and is answered without being processed again.

The event then goes to the :class:`EventSink` from a background task, and the row is marked ``done`` or
``failed``. Each sender's events are handled one at a time in the order accepted; different senders' side by side
(``concurrency`` at most), so one member's slow command does not hold up the others. The marks join the inserts'
transactions (one writer lane: SQLite has a single writer, and a mark is one more row in a statement already being
committed); the next event does not wait for its predecessor's mark.

Nothing accepted is lost: every row is leased to the process that accepted it (``lease``, 5 minutes by default),
the lease is renewed every third of it while the row waits or is handled, and it ends when the row is marked (a
mark only counts from the lease's holder). A row still ``pending`` when its process stops (crash, deploy) is
taken over by :meth:`InboundProcessor.recover` once its lease has run out, in whichever process comes first: every
process recovers at start and then every ``recover_every`` seconds, so a dead process's messages are processed
even if it never comes back. With a :class:`store.liveness.Liveness` (PostgreSQL), the rows of a process that died
are taken over within seconds, without waiting for their lease (:meth:`InboundProcessor.take_over`). The event is
re-created from the stored plaintext. On SQLite (one process by design) every row held by another owner is a
previous run's, and is recovered at once. Delivery to the sink is therefore at least once: an event whose
handling was cut short, before its row was marked, is handed over again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.clock import Clock
from bot.domain.events import InboundEvent, dedup_key
from bot.domain.masking import mask_text
from bot.logging import bound
from bot.services.groupcommit import GroupCommit
from bot.services.sinks import EventSink, PayloadReader, inbox_key
from store import inbox as inbox_repo
from store.core import Row, Store
from store.liveness import Liveness, process_id
from store.models import inbox

log = logging.getLogger(__name__)

_ERROR_MAX = 2000


def _lane(job: _Job) -> str:
    """Whose events must keep their order: the sender's (an event without one, or unreadable, goes alone)."""
    sender = getattr(job.event, "sender", None)
    return f"{job.event.source}:{sender.userid}" if job.event is not None and sender else f"row:{job.inbox_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Row:
    """An inbox row to insert; its result is the new id, or None for a duplicate."""

    source: str
    dedup_key: str
    payload: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class _Mark:
    """A processed row's outcome to record; its result is None."""

    inbox_id: int
    error: str | None


@dataclass(frozen=True, slots=True)
class _Job:
    inbox_id: int
    event: InboundEvent | None  # None: the stored payload could not be parsed again
    error: str | None = None


class InboundProcessor:
    """Persist-then-ack, process-after-ack.

    :meth:`accept` records the callback (source, dedup key, raw plaintext) as a ``pending`` inbox row in its own
    transaction, before the HTTP answer, and returns False for a duplicate. Accepted events are handed to the sink
    by a background task, in order, one at a time; each row is then marked done (or failed, with the error).
    :meth:`recover` does the same for rows of ``sources`` left pending by an earlier process. :meth:`drain` waits
    until everything accepted so far is processed (tests call it instead of sleeping).
    """

    def __init__(
        self,
        store: Store,
        sink: EventSink,
        clock: Clock,
        *,
        sources: Collection[str],
        read: PayloadReader,
        handle_timeout: float = 60.0,
        recover_batch: int = 500,
        owner: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        recover_every: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        concurrency: int = 8,
        liveness: Liveness | None = None,
        takeover_every: float = 2.0,
    ) -> None:
        self.store = store
        self.sink = sink
        self.clock = clock
        self.sources = tuple(sources)
        self.read = read  # the adapter's reading of a stored payload (the composition root chooses it)
        self.handle_timeout = handle_timeout
        self.recover_batch = recover_batch
        self.owner = owner or process_id()
        self.lease = lease
        self.recover_every = recover_every
        self.liveness = liveness  # tells when a process holding rows has died (PostgreSQL): see take_over()
        self.takeover_every = takeover_every
        self._sleep = sleep
        # one lane per sender: a member's events are handled one at a time, in the order accepted; different
        # members' side by side, at most ``concurrency`` at once (two acting on one ticket meet its optimistic lock).
        # Worker tasks (at most ``concurrency``) take the ready lanes in turn; a lane is ready, or held by one
        # worker, or idle, so its events never overlap. A worker ends when nothing is ready (no idle task is left).
        self._lanes: dict[str, deque[_Job]] = {}
        self._ready: deque[str] = deque()  # lanes with a queued event and no worker on them
        self._active: set[str] = set()  # lanes ready or held by a worker
        self._workers: set[asyncio.Task[None]] = set()
        self._concurrency = concurrency
        self._handling = 0  # workers inside an event's handling
        self._claimed: set[int] = set()  # rows queued or being processed here
        self._finished_watch: list[set[int]] = []  # rows finished while a recovery was reading
        self._recovery: asyncio.Task[int] | None = None  # the recovery at start
        self._periodic: asyncio.Task[None] | None = None  # the ones after it
        self._renewer: asyncio.Task[None] | None = None  # keeps the leases of the rows held here
        self._lost: set[int] = set()  # rows queued here whose lease another process took over: not handled here
        self._waiters: list[tuple[set[int], asyncio.Future[None]]] = []  # recoveries waiting for their rows
        self._closed = False
        self._writes = GroupCommit[_Row | _Mark, "int | None"](self._write, name="wecom-inbox")

    # -- the request path ---------------------------------------------------------------------------------------

    async def accept(self, source: str, event: InboundEvent, raw: str, *, received_at: datetime | None = None) -> bool:
        """Persists the callback and schedules its processing; False when the same (source, key) was accepted
        before (WeCom's retry). After :meth:`close`, new rows are still persisted and left for the next start."""
        at = received_at if received_at is not None else self.clock.now()
        inbox_id = await self._writes.submit(
            _Row(source=source, dedup_key=inbox_key(event), payload=raw, received_at=at)
        )
        if inbox_id is None:
            log.info("wecom %s duplicate callback ignored", source, extra={"dedup_key": dedup_key(event)})
            return False
        # the line that ties the request (its request_id) to the handling's lines (their event_id), wherever it runs
        log.info("wecom %s callback accepted", source, extra={"event_id": inbox_id, "dedup_key": dedup_key(event)})
        self._enqueue([_Job(inbox_id, event)])
        return True

    async def _write(self, batch: Sequence[_Row | _Mark]) -> list[int | None]:
        """One transaction: the batch's new rows, then its marks; results in the batch's order."""
        rows = [w for w in batch if isinstance(w, _Row)]
        marks = [(w.inbox_id, w.error) for w in batch if isinstance(w, _Mark)]
        values = [
            {"source": r.source, "dedup_key": r.dedup_key, "payload": r.payload, "received_at": r.received_at}
            for r in rows
        ]
        now = self.clock.now()
        owner, until = self.owner, now + self.lease
        async with self.store.transaction() as conn:
            inserted = await inbox_repo.write_inbound(conn, values, marks, owner=owner, lease_until=until, at=now)
        ids = iter(inserted)
        return [next(ids) if isinstance(w, _Row) else None for w in batch]

    # -- processing ---------------------------------------------------------------------------------------------

    def _enqueue(self, jobs: Sequence[_Job]) -> set[int]:
        """Queues the jobs not already held here; their ids."""
        fresh = [job for job in jobs if job.inbox_id not in self._claimed]
        if self._closed or not fresh:
            return set()
        self._claimed.update(job.inbox_id for job in fresh)
        for job in fresh:
            lane = _lane(job)
            queue = self._lanes.get(lane)
            if queue is None:
                queue = self._lanes[lane] = deque()
            queue.append(job)
            if lane not in self._active:
                self._active.add(lane)
                self._ready.append(lane)
        self._start_workers()
        return {job.inbox_id for job in fresh}

    def _start_workers(self) -> None:
        """A worker for each ready lane that no worker about to look at the queue will take, within the limit."""
        while len(self._workers) < self._concurrency and len(self._ready) > len(self._workers) - self._handling:
            # started by a request, it serves the others too: a context of its own (bot.logging.bound)
            worker = asyncio.create_task(self._work(), name="wecom-inbound-worker", context=contextvars.Context())
            self._workers.add(worker)

    async def _work(self) -> None:
        """Handles the ready lanes' next events, one lane at a time, until none is ready."""
        worker = asyncio.current_task()
        assert worker is not None
        try:
            while self._ready:
                lane = self._ready.popleft()
                queue = self._lanes[lane]
                job = queue.popleft()
                self._handling += 1
                try:
                    if job.inbox_id in self._lost:
                        log.warning("wecom inbound %s: taken over by another process; not handled here", job.inbox_id)
                        self._release(job.inbox_id)
                    else:
                        await self._process(job)
                finally:
                    self._handling -= 1
                    if queue:
                        self._ready.append(lane)  # its next, after the other ready lanes' (cancelled: left queued)
                    else:
                        del self._lanes[lane]
                        self._active.discard(lane)
                # the loop's other tasks (the requests) go before the next event: an event handled without waiting
                # for anything (a flooding member's, refused by the limiter) holds up nothing else
                await asyncio.sleep(0)
        finally:
            # off the count at once, not in a done callback a loop step later: a lane made ready meanwhile would
            # otherwise count on this worker and wait for the next event to start one
            self._workers.discard(worker)
            if self._ready and not self._closed:
                self._start_workers()  # a worker that ended abnormally leaves no lane behind

    def _busy(self) -> list[asyncio.Task[None]]:
        return [task for task in self._workers if not task.done()]

    async def _process(self, job: _Job) -> None:
        with bound(event_id=job.inbox_id):
            await self._process_bound(job)

    async def _process_bound(self, job: _Job) -> None:
        error = job.error
        try:
            if job.event is not None:
                try:
                    await self._handle(job.event)
                except Exception as exc:
                    # the handler's own OSError is its failure, unless the database does not answer either; its
                    # TimeoutError is the handle timeout's
                    liveness = None if isinstance(exc, TimeoutError) else self.liveness
                    if liveness is not None and await liveness.database.confirms(exc):
                        self._handle_again(job)
                        return
                    log.exception("wecom inbound %s failed", job.inbox_id)
                    error = mask_text(f"{type(exc).__name__}: {exc}")[:_ERROR_MAX]
        except BaseException:
            self._release(job.inbox_id)  # cancelled: the row stays pending for the next start
            raise
        # the row is released once its mark is committed: until then a recovery could read it as pending
        marked = self._writes.submit_nowait(_Mark(job.inbox_id, error))
        marked.add_done_callback(lambda future: self._marked(job.inbox_id, future))

    def _handle_again(self, job: _Job) -> None:
        """The handling met the database away (not the handler's fault): the row stays pending, not marked failed,
        and is handled again in :attr:`takeover_every` seconds."""
        self._release(job.inbox_id)
        asyncio.get_running_loop().call_later(self.takeover_every, self._enqueue, [job])

    async def _handle(self, event: InboundEvent) -> None:
        """The sink's handling of ``event``, cut short with a :class:`TimeoutError` once it has run
        :attr:`handle_timeout` seconds. A handler that swallows the cancellation carries on, and leaves none
        pending on the worker."""
        limit = asyncio.timeout(self.handle_timeout)
        try:
            async with limit:
                await self.sink.handle(event)
        except TimeoutError:
            if limit.expired():
                raise TimeoutError(f"not handled within {self.handle_timeout:g} s") from None
            raise

    def _marked(self, inbox_id: int, future: asyncio.Future[int | None]) -> None:
        exc = None if future.cancelled() else future.exception()
        if isinstance(exc, Exception) and not self._unreachable(exc):
            # the row stays pending: once its lease runs out, a recovery (here or in another process) takes it
            log.error("wecom inbound %s: could not record the outcome", inbox_id, exc_info=exc)
        self._release(inbox_id)

    def _release(self, inbox_id: int) -> None:
        self._claimed.discard(inbox_id)
        self._lost.discard(inbox_id)
        for finished in self._finished_watch:
            finished.add(inbox_id)
        for waiting, done in self._waiters:
            waiting.discard(inbox_id)
            if not waiting and not done.done():
                done.set_result(None)

    async def _released(self, ids: set[int]) -> None:
        """Until every row of ``ids`` is handled and its outcome recorded (or given up)."""
        waiting = ids & self._claimed
        if not waiting:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (waiting, done)
        self._waiters.append(entry)
        try:
            await done
        finally:
            self._waiters.remove(entry)

    async def renew_leases(self) -> int:
        """Extends the lease of every row held here; a row whose lease another process has taken (this process was
        cut off longer than the lease) is dropped from the queue. Returns how many leases were renewed."""
        held = sorted(self._claimed)
        if not held:
            return 0
        until = self.clock.now() + self.lease
        async with self.store.transaction() as conn:
            kept = await inbox_repo.renew_inbound_leases(conn, held, owner=self.owner, until=until)
        lost = {i for i in held if i not in kept and i in self._claimed}
        if lost:
            log.warning("wecom inbound: %d rows were taken over by another process", len(lost))
            self._lost |= lost
        return len(kept)

    async def _renew_periodically(self) -> None:
        while not self._closed:
            await self._sleep(self.lease.total_seconds() / 3)
            try:
                await self.renew_leases()
            except Exception:
                log.warning("wecom inbound: could not renew leases; trying again", exc_info=True)

    async def drain(self) -> None:
        """Returns once every event accepted so far, and every row the start-up recovery found, is processed."""
        recovery = self._recovery
        if recovery is not None and recovery is not asyncio.current_task():
            await asyncio.wait([recovery])
        await self._drain_queue()

    async def _drain_queue(self) -> None:
        """Until the queue is processed and every outcome recorded."""
        while True:
            if busy := self._busy():
                await asyncio.wait(busy)
            elif not self._writes.idle:
                await self._writes.close()
            else:
                return

    # -- recovery -----------------------------------------------------------------------------------------------

    async def recover(self) -> int:
        """Takes over and processes the rows of :attr:`sources` whose process is gone (their lease ran out; on
        SQLite, any other owner's), oldest first; returns how many."""
        total = 0
        finished: set[int] = set()
        self._finished_watch.append(finished)
        try:
            while not self._closed:
                now = self.clock.now()
                async with self.store.transaction() as conn:
                    rows = await inbox_repo.claim_pending_inbound(
                        conn,
                        self.sources,
                        owner=self.owner,
                        now=now,
                        lease_until=now + self.lease,
                        any_other_owner=self.store.single_process,
                        limit=self.recover_batch,
                    )
                # skip rows queued here, and rows finished while the query ran (it may have read them as pending)
                jobs = [self._job(row) for row in rows if row["id"] not in finished]
                queued = self._enqueue(jobs)
                if not queued:
                    break
                total += len(queued)
                finished.update(job.inbox_id for job in jobs)  # a row that stays pending is not retried in a loop
                await self._released(queued)  # its own rows only: new callbacks keep coming meanwhile
        finally:
            self._finished_watch.remove(finished)
        if total:
            log.info("wecom inbound: recovered %d pending callbacks", total)
        return total

    def _job(self, row: Row) -> _Job:
        try:
            return _Job(row["id"], self.read(row["source"], row["payload"], row["received_at"]))
        except ValueError as exc:
            return _Job(row["id"], None, error=f"stored payload unreadable: {exc}"[:_ERROR_MAX])

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts recovering pending rows in the background (requests are served meanwhile): now, then every
        :attr:`recover_every` seconds."""
        if self._recovery is None:
            self._recovery = asyncio.create_task(self._recover_logged(), name="wecom-inbound-recovery")
            self._periodic = asyncio.create_task(self._recover_periodically(), name="wecom-inbound-recovery-loop")
            self._renewer = asyncio.create_task(self._renew_periodically(), name="wecom-inbound-leases")

    async def _recover_periodically(self) -> None:
        """Every :attr:`takeover_every` seconds a look for rows of processes that died (with a :attr:`liveness`),
        recovered at once; every :attr:`recover_every` seconds a recovery of rows whose lease ran out."""
        if self._recovery is not None:
            await asyncio.wait([self._recovery])
        step = self.recover_every if self.liveness is None else min(self.takeover_every, self.recover_every)
        waited = 0.0
        while not self._closed:
            await self._sleep(step)
            waited += step
            if waited >= self.recover_every:
                waited = 0.0
                await self._recover_logged()
            elif self.liveness is not None:
                await self._take_over_logged()

    async def take_over(self) -> int:
        """Recovers at once the rows leased to processes that have died (PostgreSQL, :meth:`Liveness.release_dead`:
        their liveness lock gone), without waiting for their lease; how many rows were recovered."""
        if self.liveness is None or self._closed:
            return 0
        if not await self.liveness.release_dead(self.store, inbox, self.clock.now()):
            return 0
        return await self.recover()

    async def _take_over_logged(self) -> int:
        try:
            return await self.take_over()
        except Exception as exc:
            if not self._unreachable(exc):
                log.exception("wecom inbound: the look for rows of dead processes failed; trying again")
            return 0

    def _unreachable(self, exc: Exception) -> bool:
        """Whether ``exc`` is the database being away (:meth:`DatabaseWatch.known`); if so the outage is logged once
        (by the liveness's watch), not at every pass."""
        return self.liveness is not None and self.liveness.database.known(exc)

    async def _recover_logged(self) -> int:
        try:
            return await self.recover()
        except Exception as exc:
            if not self._unreachable(exc):
                log.exception("wecom inbound: recovery failed; pending rows wait for the next pass")
            return 0

    async def close(self, *, grace: float = 5.0) -> None:
        """Stops taking work, lets what is queued finish for up to ``grace`` seconds, then cancels the rest
        (rows not marked stay pending and are recovered on the next start)."""
        self._closed = True
        for loop in (self._periodic, self._renewer):
            if loop is not None:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
        tasks = [task for task in (self._recovery, *self._busy()) if task is not None and not task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # the outcomes already decided, and callbacks accepted meanwhile, are still written
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._writes.close()
