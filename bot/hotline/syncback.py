"""Sends state changes back to the hotline platform (outbox channel ``hotline``), signed like ingest."""

from __future__ import annotations

import json

import aiohttp

from bot.domain.clock import Clock
from bot.hotline.signing import IDEMPOTENCY_HEADER, signed_headers
from notifiers.outbox import DeliveryError, OutboundMessage

_RETRYABLE = {408, 425, 429}


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
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"hotline unreachable: {type(exc).__name__}: {exc}") from None
