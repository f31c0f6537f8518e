"""The outbox sender: delivers what was committed to the outbox, through one sender per channel.

Delivery is at least once, and a send whose fate is unknown is recorded as such. A send is *unsure* when the
sender says the request may have reached the receiver without its answer reaching us
(:attr:`DeliveryError.maybe_sent`: a connection reset after the request, a timeout, a gateway's 5xx), or when a
message is claimed that an earlier claim never released (its process died, or lost its database, between sending
and recording the result). Its row is flagged in the payload (:data:`UNSURE`), counted (``on_unsure``, the
``hotline_outbox_unsure_total`` metric) and sent again as a *resend* (:attr:`OutboundMessage.resend`): a receiver
that deduplicates (WeCom's duplicate check on app messages, the hotline platform's idempotency key) gets it plainly
and drops the copy; a sender whose receiver does not (a group chat) marks it visibly, so that nobody reads one
message as two (:mod:`notifiers.resend`). Transient failures are retried with exponential backoff; permanent ones are
dead-lettered with their reason, for an operator to see and replay. A message a sender does not attempt because
its destination is at its rate limit (:class:`Deferred`) simply waits for its slot: that is not a failed attempt,
so it neither counts towards ``max_attempts`` nor replaces the message's last error. Until that slot the worker
claims none of the destination's messages, queued or newly written, so a backlog to one destination costs a claim
and a deferral or two per free slot, not a claim and a deferral of every waiting message at every slot.

Answers to people waiting in a chat do not wait for a pass: whoever queues them may lease them to this process in
the same write and hand them to :meth:`OutboxWorker.send_now`, which sends them side by side at once. Should the
process die first, a live one takes them over within seconds (:meth:`OutboxWorker.take_over`), at the latest once
the lease runs out, and a pass sends them like any other message. Successful sends are recorded
together (one write for everything sent meanwhile, :class:`bot.services.groupcommit.GroupCommit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.domain.clock import Clock
from bot.services.groupcommit import GroupCommit
from store import outbox as outbox_repo
from store.core import Conn, Store
from store.liveness import Liveness
from store.models import outbox

log = logging.getLogger(__name__)


# the payload's flag of a message an earlier send of which may have arrived; the outbox keeps it from the senders
UNSURE = "_unsure"
NO_ANSWER, ABANDONED = "no_answer", "abandoned"  # why a send is unsure (the metric's ``reason``)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundMessage:
    id: int
    channel: str
    destination: str
    idempotency_key: str
    payload: Mapping[str, Any]
    attempts: int
    # an earlier send may have arrived: deduplicated receivers get it plainly, others marked as a resend
    resend: bool = False
    # when it was queued: its first send came no earlier (a duplicate check's window is counted from that send)
    queued_at: datetime | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> OutboundMessage:
        """The message of an outbox row, its :data:`UNSURE` flag turned into :attr:`resend`."""
        payload = dict(row["payload"])
        unsure = bool(payload.pop(UNSURE, False))
        return cls(
            id=row["id"],
            channel=row["channel"],
            destination=row["destination"],
            idempotency_key=row["idempotency_key"],
            payload=payload,
            attempts=row["attempts"],
            resend=unsure,
            queued_at=row.get("created_at"),
        )


class DeliveryError(Exception):
    """A failed attempt. ``permanent`` ones are not retried (e.g. the receiver rejects the payload); ``maybe_sent``
    ones may have reached the receiver (no answer came back): they are resent as unsure."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        maybe_sent: bool = False,
        code: str = "error",
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent
        self.code = code  # for the metric: WeCom's errcode, http_<status>, unreachable, malformed …


class Deferred(DeliveryError):
    """Not attempted: the destination is at its rate limit and has a slot in ``retry_after`` seconds."""

    retry_after: float

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after, code="paced")


class Sender(Protocol):
    """Sends one message. A sender may also have a ``ready`` property: while it is False, the worker leaves that
    channel's messages in the queue for a process (or a moment) that can send them."""

    async def send(self, message: OutboundMessage) -> None: ...


def backoff(attempts: int, *, base: float = 2.0, cap: float = 600.0, jitter: float = 0.1) -> float:
    """Seconds before attempt ``attempts + 1``: 2, 4, 8 … capped at ten minutes, with a little jitter."""
    delay: float = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay * (1 + random.uniform(-jitter, jitter))  # noqa: S311 - jitter, not security


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        clock: Clock,
        *,
        owner: str,
        batch: int = 10,
        lease: timedelta = timedelta(minutes=5),
        max_attempts: int | None = None,
        on_unsure: Callable[[str, str], None] | None = None,
        on_sent: Callable[[str], None] | None = None,
        on_error: Callable[[str, str], None] | None = None,
        liveness: Liveness | None = None,
        takeover_every: float = 2.0,
    ) -> None:
        # one pass sends its batch one message at a time: the lease must outlast the whole batch even when
        # every send runs into its timeout (10 × 10 s here), or another process would claim and send again
        self.store = store
        self.senders = dict(senders)
        self.clock = clock
        self.owner = owner
        self.batch = batch
        self.lease = lease
        self.max_attempts = max_attempts
        self.on_unsure = on_unsure  # (channel, reason) of every unsure send: the metric
        self.on_sent = on_sent  # (channel) of every message sent, and (channel, code) of every failed attempt
        self.on_error = on_error
        self.liveness = liveness  # tells when a process holding messages has died: see take_over()
        self.takeover_every = takeover_every
        self._wake = asyncio.Event()
        self._stopping = False
        self._sent = GroupCommit[int, None](self._record_sent, name="outbox-sent")
        self._direct: set[asyncio.Task[None]] = set()
        # destinations found at their rate limit, until their next slot: their messages are left unclaimed till then
        self._paced: dict[tuple[str, str], datetime] = {}

    def wake(self) -> None:
        """Something was just queued: look now rather than at the next poll."""
        self._wake.set()

    def can_send_now(self, channel: str) -> bool:
        """Whether a message on ``channel`` could be handed to :meth:`send_now` (its sender is here and ready)."""
        sender = self.senders.get(channel)
        return sender is not None and getattr(sender, "ready", True) and not self._stopping

    def lease_until(self) -> datetime:
        """The lease a message queued for :meth:`send_now` is written with."""
        return self.clock.now() + self.lease

    def send_now(self, messages: Sequence[OutboundMessage]) -> None:
        """Sends ``messages`` (committed, leased to :attr:`owner`) side by side, without waiting for a pass; the
        result of each is recorded as a pass records it. Returns at once."""
        for message in messages:
            task = asyncio.create_task(self._deliver(message), name=f"outbox-send-{message.id}")
            self._direct.add(task)
            task.add_done_callback(self._direct.discard)

    async def drain(self) -> None:
        """Waits for what :meth:`send_now` was given and for the records of what was sent."""
        while self._direct:
            await asyncio.wait(list(self._direct))
        await self._sent.close()

    async def run_once(self) -> int:
        """Claims and sends what is due now; returns how many messages were attempted."""
        if not self.senders:
            return 0
        channels = [name for name, sender in self.senders.items() if getattr(sender, "ready", True)]
        if not channels:
            return 0
        now = self.clock.now()
        for destination in [d for d, until in self._paced.items() if until <= now]:
            del self._paced[destination]  # its slot has come
        paced = list(self._paced)
        async with self.store.reading() as conn:  # most passes find nothing: look before taking the write lock
            if not await outbox_repo.anything_due(conn, now=now, channels=channels, paced=paced):
                return 0
            claimed_before = await outbox_repo.unreleased_due(conn, now=now, channels=channels)
        async with self.store.transaction() as conn:
            claimed = await outbox_repo.claim_due(
                conn,
                owner=self.owner,
                now=now,
                lease_until=now + self.lease,
                limit=self.batch,
                channels=channels,
                paced=paced,
            )
            rows, abandoned = await self._flag_abandoned(conn, claimed, claimed_before)
        for row in abandoned:
            self._unsure(row["channel"], row["id"], ABANDONED)
        # once a destination is at its limit, the batch's other messages to it are not tried: they wait with it
        held: list[tuple[int, datetime]] = []
        for row in rows:
            until = self._paced.get((row["channel"], row["destination"]))
            if until is not None:
                held.append((row["id"], until))
                continue
            await self._deliver(OutboundMessage.of(row))
        if held:
            async with self.store.transaction() as conn:
                for message_id, until in held:
                    await outbox_repo.defer(conn, message_id, owner=self.owner, until=until)
        return len(rows)

    @staticmethod
    async def _flag_abandoned(
        conn: Conn, rows: Sequence[Mapping[Any, Any]], claimed_before: set[int]
    ) -> tuple[list[Mapping[Any, Any]], list[Mapping[Any, Any]]]:
        """``rows`` (just claimed), those an earlier claim never released flagged :data:`UNSURE` (whoever held them
        is gone, or its lease ran out, and may have sent them before it could record it); and those."""
        found: list[Mapping[Any, Any]] = []
        abandoned: list[Mapping[Any, Any]] = []
        for row in rows:
            if row["id"] in claimed_before:
                row = {**row, "payload": {**row["payload"], UNSURE: True}}
                abandoned.append(row)
            found.append(row)
        if abandoned:
            await outbox_repo.flag_unsure(conn, {row["id"]: row["payload"] for row in abandoned})
        return found, abandoned

    def _unsure(self, channel: str, message_id: int, reason: str) -> None:
        log.warning(
            "send unsure (%s): the message may have arrived; it is sent again, marked where the channel does not "
            "deduplicate",
            reason,
            extra={"channel": channel, "outbox_id": message_id},
        )
        if self.on_unsure is not None:
            self.on_unsure(channel, reason)

    async def _deliver(self, message: OutboundMessage) -> None:
        """Sends ``message`` and records the outcome. Deferred (its destination at its limit): it waits for the
        destination's next slot, and so do the destination's other messages (:attr:`_paced`)."""
        error: DeliveryError | None = None
        try:
            await self.senders[message.channel].send(message)
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # a bug in a sender must not stop the queue
            log.exception("sender failed", extra={"channel": message.channel, "outbox_id": message.id})
            error = DeliveryError(f"{type(exc).__name__}: {exc}", code="sender_bug")
        now = self.clock.now()
        if error is None:
            if self.on_sent is not None:
                self.on_sent(message.channel)
            try:
                await self._sent.submit(message.id)
            except Exception:  # the lease runs out and the message is sent again: at least once, as after a crash
                log.exception("could not record a sent message", extra={"outbox_id": message.id})
            return
        async with self.store.transaction() as conn:
            if isinstance(error, Deferred):
                until = now + timedelta(seconds=error.retry_after)
                await outbox_repo.defer(conn, message.id, owner=self.owner, until=until)
                # the destination's other messages, queued or still to come, are not claimed before its slot
                self._paced[(message.channel, message.destination)] = until
                log.debug("delivery deferred: %s", error, extra={"channel": message.channel, "outbox_id": message.id})
                return
            if self.on_error is not None:
                self.on_error(message.channel, error.code)
            attempts = message.attempts + 1
            exhausted = self.max_attempts is not None and attempts >= self.max_attempts
            retry_at: datetime | None = None
            if not (error.permanent or exhausted):
                retry_at = now + timedelta(seconds=error.retry_after or backoff(attempts))
            flagged = None
            if error.maybe_sent:
                flagged = {**message.payload, UNSURE: True}
                self._unsure(message.channel, message.id, NO_ANSWER)
            await outbox_repo.mark_failed(
                conn, message.id, owner=self.owner, error=str(error), retry_at=retry_at, payload=flagged
            )
        log.warning(
            "delivery failed" + ("; dead-lettered" if retry_at is None else "; will retry"),
            extra={"channel": message.channel, "outbox_id": message.id, "attempts": attempts, "error": str(error)},
        )

    async def _record_sent(self, ids: Sequence[int]) -> list[None]:
        at, owner = self.clock.now(), self.owner
        async with self.store.transaction() as conn:
            await outbox_repo.mark_sent(conn, ids, owner=owner, at=at)
        return [None] * len(ids)

    async def run_forever(self, *, poll_interval: float = 1.0) -> None:
        """Passes until :meth:`stop`: a pass under way is finished first, and so are the sends :meth:`send_now` was
        given (nothing cut off mid-send)."""
        self._stopping = False
        await self._take_over_logged(at_start=True)
        loop = asyncio.get_running_loop()
        next_takeover = loop.time()
        while not self._stopping:
            if loop.time() >= next_takeover:
                next_takeover = loop.time() + self.takeover_every
                await self._take_over_logged()
            try:
                worked = await self.run_once()
            except Exception as exc:
                if not self._unreachable(exc):
                    log.exception("outbox pass failed; retrying")
                worked = 0
            if worked:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_interval)
            self._wake.clear()
        await self.drain()

    # -- taking over a dead process's messages -------------------------------------------------------------------

    async def take_over(self, *, at_start: bool = False) -> int:
        """Frees the messages leased to processes that have died, for this pass to claim without waiting for their
        lease: on PostgreSQL those whose liveness lock is gone (:meth:`Liveness.release_dead`), on SQLite at
        ``at_start`` every other owner's (the previous run's). How many were freed."""
        if self.liveness is None:
            return 0
        if at_start and not self.liveness.postgresql:
            return await self.liveness.release_others(self.store, outbox)
        return await self.liveness.release_dead(self.store, outbox, self.clock.now())

    async def _take_over_logged(self, *, at_start: bool = False) -> None:
        try:
            await self.take_over(at_start=at_start)
        except Exception as exc:
            if not self._unreachable(exc):
                log.exception("outbox: the look for messages of dead processes failed; trying again")

    def _unreachable(self, exc: Exception) -> bool:
        """Whether ``exc`` is the database being away (:meth:`DatabaseWatch.known`); if so the outage is logged once
        (by the liveness's watch), not at every pass."""
        return self.liveness is not None and self.liveness.database.known(exc)

    def stop(self) -> None:
        """Asks :meth:`run_forever` to return once the pass under way is done."""
        self._stopping = True
        self._wake.set()
