"""What the inbox hands its events to, and how an event is named: in logs (masked) and as the inbox's key."""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from bot.domain.events import CardClick, EnterChat, InboundEvent, OtherEvent, TextMessage, dedup_key
from bot.domain.masking import mask_text

log = logging.getLogger(__name__)

_KEY_MAX = 200  # inbox.dedup_key is VARCHAR(200)


PayloadReader = Callable[[str, str, datetime], InboundEvent]
"""``(source, payload, received_at)`` → the event of a stored row, as the adapter read it when it arrived; a
payload it cannot read raises :class:`ValueError`."""


class EventSink(Protocol):
    """Where accepted events go: the command router (issue 4), or :class:`RecordingSink` until then."""

    async def handle(self, event: InboundEvent) -> None: ...


def describe(event: InboundEvent) -> str:
    """One line for logs, without what a text says of a citizen (:func:`loggable`)."""
    match event:
        case TextMessage():
            where = f"group {event.chat_id}" if event.chat_type == "group" else "1:1"
            return f"text from {event.sender.userid} ({where}): {loggable(event.text)}"
        case CardClick():
            return f"card click {event.event_key!r} on task {event.task_id} by {event.sender.userid}"
        case EnterChat():
            return f"{event.sender.userid} opened the chat"
        case OtherEvent():
            who = event.sender.userid if event.sender else "?"
            return f"{event.kind} from {who}"


def loggable(text: str) -> str:
    """A member's text as a log may show it: the command word and the plain ASCII words (ticket numbers, days),
    masked; any other word (a reason, a result, a name, an address) as "…". ``/退单 0123 市民李建国称不归我们管``
    is logged as ``/退单 0123 …``."""
    words = text.split()
    kept = [w if w.isascii() or (w.startswith("/") and len(w) <= 6) else "…" for w in words]
    return mask_text(" ".join(w for i, w in enumerate(kept) if w != "…" or i == 0 or kept[i - 1] != "…"))


class RecordingSink:
    """Logs each event (masked) and keeps the last ``keep`` in memory, for tests and the sandbox; the command
    router (:class:`handlers.router.CommandRouter`) is one, and then runs the event."""

    def __init__(self, keep: int = 100) -> None:
        self._events: deque[InboundEvent] = deque(maxlen=keep)

    @property
    def events(self) -> list[InboundEvent]:
        return list(self._events)

    async def handle(self, event: InboundEvent) -> None:
        self._events.append(event)
        if log.isEnabledFor(logging.INFO):  # describe() masks the text: not for nothing
            log.info("wecom %s %s", event.source, describe(event), extra={"dedup_key": dedup_key(event)})


def inbox_key(event: InboundEvent) -> str:
    """The event's dedup key, hashed when it would not fit the column (a card's task id and key are caller-chosen)."""
    key = dedup_key(event)
    if len(key) <= _KEY_MAX:
        return key
    return f"{event.source}:sha256:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"
