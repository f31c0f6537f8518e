"""A ticket as the hotline hands it over, normalised: what the service stores and routes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from bot.domain.history import TicketHistory
from config.vocabulary import TicketKind


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketInput:
    ticket_no: str
    content: str
    kind: TicketKind = TicketKind.REGULAR
    dispatched_at: datetime | None = None  # None: when the bot receives it
    title: str | None = None
    address: str | None = None
    citizen_name: str | None = None
    citizen_phone: str | None = None
    request_type: str | None = None
    category: str | None = None
    area: str | None = None
    unit_label: str | None = None  # 承办单位 as the hotline names it (code or name)
    hotline_deadline: datetime | None = None
    is_repeat: bool = False
    is_media: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # what an export row says happened to it on the platform (an import's only; None for a hand-over)
    history: TicketHistory | None = None

    def payload_hash(self) -> str:
        """Identical hand-overs hash the same: a repeat is recognised and changes nothing. (A hand-over without
        history hashes as it did before there was any.)"""
        data: list[Any] = [getattr(self, f.name) for f in _FIELDS if f.name != "history"]
        if self.history is not None:
            data.append(self.history.key())
        return hashlib.sha256(json.dumps(data, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()


_FIELDS = fields(TicketInput)

# fields an update from the hotline may change in place (the rest go through the lifecycle)
UPDATABLE_FIELDS = (
    "content",
    "title",
    "address",
    "citizen_name",
    "citizen_phone",
    "request_type",
    "category",
    "area",
    "hotline_deadline",
    "is_repeat",
    "is_media",
    "kind",
)
