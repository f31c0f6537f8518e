"""Repeat complaints (重复工单): which earlier tickets make a new one a repeat."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, model_validator

from config.model.fields import D, Model, NaturalDuration, Text

RepeatSignal = Literal["phone", "address"]
_SIGNALS: tuple[RepeatSignal, ...] = ("phone", "address")
MAX_WINDOW_DAYS = 366  # the migration computed the keys of the tickets of the last 366 days


class Repeats(Model):
    """A new ticket is a repeat (重复诉求) of the tickets dispatched within ``window`` before it that share a signal:

    * ``phone``: the same citizen phone, however written (+86, spaces, dashes; a landline with or without its area
      code); with ``phone_similarity`` above 0 their texts must also be that similar;
    * ``address``: the same place (the address without its flat: neighbours in one building count as one place)
      and a similar text: the character-bigram Jaccard similarity of category, title and text at least
      ``similarity``.

    ``ignore_phones``: numbers that are no citizen's (the office's own, a placeholder the platform writes for an
    anonymous caller); tickets never match by them. ``enabled: false`` marks nothing (the keys are still kept, so
    switching it on again finds the tickets in between)."""

    enabled: bool = True
    window: NaturalDuration = D("30d")
    signals: list[RepeatSignal] = Field(default_factory=lambda: list(_SIGNALS))
    similarity: float = Field(default=0.3, gt=0, le=1)
    phone_similarity: float = Field(default=0.0, ge=0, le=1)
    ignore_phones: list[Text] = []

    @model_validator(mode="after")
    def _sensible(self) -> Self:
        window = self.window.natural()
        if window < timedelta(hours=1) or window > timedelta(days=MAX_WINDOW_DAYS):
            raise ValueError(f"window {self.window}: between 1h and {MAX_WINDOW_DAYS}d")
        if len(set(self.signals)) != len(self.signals):
            raise ValueError("signals: each of phone, address at most once")
        return self
