"""State changes back to the hotline platform: the outbox rows (:class:`HotlineSync`, the ticket service's
``sync_back``, in the change's transaction) and their sender (outbox channel ``hotline``), signed like ingest."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from bot.domain.clock import Clock
from bot.domain.records import HistoryEntry
from bot.hotline.signing import IDEMPOTENCY_HEADER, signed_headers
from config.durations import Duration
from notifiers.outbox import DeliveryError, OutboundMessage
from notifiers.rows import Row, row

SYNC_CHANNEL = "hotline"
SYNC_PRIORITY = 5
_RETRYABLE = {408, 425, 429}


class HotlineSync:
    """Each history entry of a state change as an outbox row for the platform's sync URL: what happened to which
    ticket, by whom, when. Keyed by the entry (sent once); ordered per ticket."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, entries: Sequence[HistoryEntry]) -> list[Row]:
        rows = []
        for entry in entries:
            at = entry.at
            payload = {
                "event_id": entry.id,
                "ticket_no": entry.ticket_no,
                "action": entry.action,
                "from_state": entry.from_state,
                "to_state": entry.to_state,
                "actor": entry.actor,
                "at": at.isoformat(),
                "note": entry.note,
                "data": _jsonable(entry.data),
            }
            key = f"hotline-sync:{entry.id}"
            order = entry.ticket_no
            rows.append(row(SYNC_CHANNEL, self.url, key, payload, at=at, priority=SYNC_PRIORITY, ordering_key=order))
        return rows


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, timedelta):
            out[key] = value.total_seconds()
        elif isinstance(value, Duration):
            out[key] = str(value)
        else:
            out[key] = value
    return out


class HotlineSyncSender:
    def __init__(self, session: aiohttp.ClientSession, secret: str, clock: Clock, *, timeout: float = 10) -> None:
        self.session = session
        self.secret = secret
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, message: OutboundMessage) -> None:
        body = json.dumps(message.payload, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: message.idempotency_key,
            **signed_headers(self.secret, int(self.clock.now().timestamp()), body),
        }
        try:
            async with self.session.post(
                message.destination, data=body, headers=headers, timeout=self.timeout
            ) as response:
                if 200 <= response.status < 300:
                    return
                text = (await response.text())[:300]
                retry_after = response.headers.get("Retry-After")
                permanent = 400 <= response.status < 500 and response.status not in _RETRYABLE
                raise DeliveryError(
                    f"hotline answered {response.status}: {text}",
                    permanent=permanent,
                    retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
                    code=f"http_{response.status}",
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"hotline unreachable: {type(exc).__name__}: {exc}", code="unreachable") from None
