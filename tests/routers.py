"""The command router as the app wires it: its replies written to the outbox by :class:`notifiers.replies.ReplyOutbox`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.services.channels import Channels
from bot.services.tickets import TicketService
from handlers.router import CommandRouter
from notifiers.outbox import OutboxWorker
from notifiers.replies import ReplyOutbox


def command_router(
    *,
    service: TicketService,
    channels: Channels,
    outbox: Callable[[], OutboxWorker | None] | None = None,
    wake: Callable[[], None] | None = None,
    **kwargs: Any,
) -> CommandRouter:
    send = ReplyOutbox(service.store, channels, wake=wake, outbox=outbox)
    return CommandRouter(service=service, channels=channels, send=send, **kwargs)
