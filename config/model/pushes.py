"""How new, re-dispatched and warning tickets reach the work groups: push rules, digests, the import's pushes."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, model_validator

from config.model.fields import D, Model, NaturalDuration
from config.vocabulary import PushAudience, PushKind


class PushRule(Model):
    """How a new ticket of one kind (or a warning ticket) reaches its unit's work group (``pushes.rules``).

    ``mode``: ``at_once`` (a card with buttons where the group's transport takes cards, markdown elsewhere),
    ``digest`` (gathered with the unit's other waiting tickets into one message per digest period), ``off``.
    ``urgent``: sent at once even outside the service window or in quiet hours, and then also privately to the duty
    officer; a rule that is not urgent waits for the window. ``mention``: who is @-mentioned in the group message.
    ``private``: who also gets it privately (the app's or the robot's 1:1 chat)."""

    mode: Literal["at_once", "digest", "off"] = "at_once"
    urgent: bool = True
    mention: list[PushAudience] = [PushAudience.TEAM, PushAudience.HEAD]
    private: list[PushAudience] = []


_AT_ONCE = PushRule()
DEFAULT_PUSH_RULES: dict[PushKind, PushRule] = {
    PushKind.REGULAR: PushRule(mode="digest", urgent=False, mention=[]),
    PushKind.URGENT: _AT_ONCE,
    PushKind.SEMI_URGENT: _AT_ONCE,
    PushKind.PHOTO: _AT_ONCE,
    PushKind.CITY_REVIEW: _AT_ONCE,
    PushKind.WARNING: PushRule(
        mention=[PushAudience.HANDLER, PushAudience.HEAD], private=[PushAudience.HEAD, PushAudience.DEPUTIES]
    ),
}


class DigestSettings(Model):
    """The per-unit digest of waiting tickets: one message per unit and period. Periods start at ``offset`` past
    local midnight and every ``every`` after it (by default :07 and :37, away from the :00 and :30 WeCom asks
    senders to avoid); a ticket queued in one period goes out at the start of the next, inside the service window
    and outside quiet hours. At most ``max_items`` tickets are listed; a digest of one ticket is that ticket's card."""

    every: NaturalDuration = D("30m")
    offset: NaturalDuration | None = D("7m")
    max_items: int = Field(default=20, ge=1, le=50)

    @model_validator(mode="after")
    def _sensible(self) -> Self:
        every = self.every.natural()
        if every < timedelta(minutes=5) or every > timedelta(days=1):
            raise ValueError(f"every {self.every}: between 5m and 24h")
        if self.offset is not None and self.offset.natural() >= every:
            raise ValueError(f"offset {self.offset} must be shorter than every {self.every}")
        return self


class ImportPushSettings(Model):
    """Which tickets an import (``run_bot.py import``) pushes: only those new to the bot, with a 派单时间 within
    ``recent`` before the import (an export of the platform's history pushes nothing); of those, at most
    ``at_once_max`` per import batch (1,000 rows) at once, the rest join their unit's digest."""

    recent: NaturalDuration = D("24h")
    at_once_max: int = Field(default=20, ge=0)


class Pushes(Model):
    """New, re-dispatched and warning tickets pushed into the work groups (see README, *Pushes*)."""

    rules: dict[PushKind, PushRule] = {}  # per kind, merged field by field over DEFAULT_PUSH_RULES
    digest: DigestSettings = Field(default_factory=DigestSettings)
    imports: ImportPushSettings = Field(default_factory=ImportPushSettings, alias="import")

    @model_validator(mode="after")
    def _warnings_not_digested(self) -> Self:
        warning = self.rules.get(PushKind.WARNING)
        if warning is not None and warning.mode == "digest":
            raise ValueError('rules.warning.mode: a warning ticket is pushed "at_once" or not at all ("off")')
        return self
