"""The long connection's intake: callback frames stored in the inbox, in order, before anything else happens.

Inbound frames are parsed exactly as callback-mode plaintext and persisted through
:meth:`bot.services.inbox.InboundProcessor.accept` (source ``wecom_aibot``, key ``aibot:msg:<msgid>``) before
anything else happens. Reading frames never waits for the store or a handler: they queue for a separate task (the
intake), so heartbeats and answers flow while a message is slow. A frame leaves the intake's queue only once it is
stored: one whose store was cut off stays at the head and is stored first by the next :meth:`start`. Losing the
leadership (:meth:`AibotLongConnection.run` cancelled) closes the socket but not the intake, so what was received
is still stored while the process runs; only :meth:`AibotLongConnection.close`, at shutdown, stops it (after a
grace period, logging what it leaves). A frame's req_id is remembered (by the event's dedup key) for replies:
:meth:`AibotLongConnection.req_id_for`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.domain.events import InboundEvent
from bot.services.sinks import describe
from bot.wecom.aibot_frames import Changes, msgid
from bot.wecom.parse import AIBOT_SOURCE, MalformedCallback, parse_aibot_json

log = logging.getLogger(__name__)

REQ_IDS_KEPT = 2000


class Inbox(Protocol):
    """:class:`bot.services.inbox.InboundProcessor`'s request path."""

    async def accept(
        self, source: str, event: InboundEvent, raw: str, *, received_at: datetime | None = None
    ) -> bool: ...


EventHook = Callable[[InboundEvent, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Received:
    req_id: str
    body: dict[str, Any]
    received_at: datetime


class Intake:
    """Frames received and not yet stored, oldest first; the head is the one being stored, and it leaves the queue
    only once stored (or found unreadable). A store that fails is retried with a capped backoff (``sleep``), as
    WeCom does not redeliver a frame the bot took. ``on_event`` runs, in a task of its own, for each event newly
    stored; ``changes`` is notified after every frame taken."""

    def __init__(
        self,
        *,
        bot_id: str,
        inbound: Inbox,
        changes: Changes,
        sleep: Callable[[float], Awaitable[None]],
        backoff_cap: float,
        on_event: EventHook | None = None,
    ) -> None:
        self.bot_id = bot_id
        self.inbound = inbound
        self.on_event = on_event
        self.backoff_cap = backoff_cap
        self.taken = 0  # callback frames taken in so far
        self._changes = changes
        self._sleep = sleep
        self._queue: deque[Received] = deque()
        self._task: asyncio.Task[None] | None = None
        self._hooks: set[asyncio.Task[None]] = set()
        self._req_ids: OrderedDict[str, str] = OrderedDict()  # event dedup key -> the frame's req_id

    @property
    def unstored(self) -> int:
        """Frames received and not yet stored (the one being stored included)."""
        return len(self._queue)

    def req_id_for(self, event: InboundEvent) -> str | None:
        return self._req_ids.get(event.dedup_key)

    def put(self, req_id: str, body: dict[str, Any], received_at: datetime) -> None:
        self._queue.append(Received(req_id, body, received_at))
        self._changes.notify()

    def start(self) -> None:
        """Stores what arrives (again, after :meth:`close`), the frames a previous run left unstored first."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="aibot-intake")

    async def close(self, grace: float) -> None:
        """Lets frames already received be stored (up to ``grace`` seconds), then stops. A frame still unstored is
        logged as an error and kept: a later :meth:`start` stores it first."""
        task, self._task = self._task, None  # a second close() meanwhile finds nothing to do
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changes.wait_until(lambda: not self._queue or task.done()), grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._queue:
                log.error(
                    "aibot %s: long connection closed with %d frames not persisted (WeCom does not send them again)",
                    self.bot_id,
                    len(self._queue),
                    extra={"msgids": [msgid(item.body) for item in self._queue]},
                )
        for hook in list(self._hooks):
            hook.cancel()

    async def _run(self) -> None:
        while True:
            await self._changes.wait_until(lambda: bool(self._queue))
            item = self._queue[0]  # stays at the head until stored: cancelled meanwhile, it is stored first next time
            try:
                await self._take(item)
            except Exception:
                log.exception("aibot %s: inbound frame failed", self.bot_id)
            self._queue.popleft()
            self.taken += 1
            self._changes.notify()

    async def _take(self, item: Received) -> None:
        raw = json.dumps(item.body, ensure_ascii=False, separators=(",", ":"))
        try:
            event = parse_aibot_json(raw.encode("utf-8"), received_at=item.received_at)
        except MalformedCallback as exc:
            log.warning("aibot %s: callback frame not readable, ignored: %s", self.bot_id, exc.message)
            return
        if item.req_id:
            self._remember(event, item.req_id)
        # WeCom does not redeliver a frame the bot took, so a frame is never given up while the process lives: the
        # store is retried with a capped backoff, and the frames behind it wait in order (heartbeats go on)
        attempt = 0
        while True:
            try:
                accepted = await self.inbound.accept(AIBOT_SOURCE, event, raw, received_at=item.received_at)
                break
            except Exception:
                attempt += 1
                log.log(
                    logging.ERROR if attempt % 10 == 0 else logging.WARNING,
                    "aibot %s: callback not stored (attempt %d), retrying: %s",
                    self.bot_id,
                    attempt,
                    describe(event),
                    exc_info=True,
                    extra={"dedup_key": event.dedup_key},
                )
                await self._sleep(min(self.backoff_cap, 0.5 * 2 ** (attempt - 1)))
        if accepted and self.on_event is not None:
            hook = asyncio.create_task(self._hook(self.on_event, event, item.req_id))
            self._hooks.add(hook)
            hook.add_done_callback(self._hooks.discard)

    async def _hook(self, on_event: EventHook, event: InboundEvent, req_id: str) -> None:
        try:
            await on_event(event, req_id)
        except Exception:
            log.exception("aibot %s: event hook failed for %s", self.bot_id, describe(event))

    def _remember(self, event: InboundEvent, req_id: str) -> None:
        self._req_ids[event.dedup_key] = req_id
        self._req_ids.move_to_end(event.dedup_key)
        while len(self._req_ids) > REQ_IDS_KEPT:
            self._req_ids.popitem(last=False)
