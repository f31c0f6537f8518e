"""退单 (returns): who signs a unit's return, how long the office has to review it, and when a ticket goes to the
center lead (签派) instead of being re-dispatched."""

from __future__ import annotations

from pydantic import Field

from config.model.fields import D, DurationField, Model

DEFAULT_REVIEW = D("1wd")
DEFAULT_RETURNS_BEFORE_ASSIGNMENT = 2
DEFAULT_MAX_REDISPATCHES = 1


class Returns(Model):
    """A unit that is not responsible returns a ticket with a reason and a suggested unit, signed by its head (seed
    004); the hotline office approves (and re-dispatches) or rejects it. While the office reviews, the unit's
    reminders and escalations hold, and the dispatchers are reminded to decide by ``review``."""

    # a handler's return goes to the unit's head first, and reaches the office once the head confirms it
    head_signoff: bool = True
    # how long the office has to decide (the dispatchers are reminded, then escalated, as for any deadline)
    review: DurationField = DEFAULT_REVIEW
    # a ticket returned this many times (by any units) goes to the center leads (签派) when the return is approved
    assignment_after_returns: int = Field(default=DEFAULT_RETURNS_BEFORE_ASSIGNMENT, ge=1, le=10)
    # how often the office may re-dispatch a returned ticket before it goes to the center leads
    max_redispatches: int = Field(default=DEFAULT_MAX_REDISPATCHES, ge=0, le=10)
