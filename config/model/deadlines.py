"""Deadlines per ticket kind, the 三个二 deadlines and extensions (延期), with their defaults."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from config.durations import Duration
from config.model.fields import D, DurationField, Model, Text
from config.vocabulary import DeadlineName, TicketKind

_SPECIAL_POLICY: dict[DeadlineName, Duration] = {
    DeadlineName.ACCEPT: D("1wd"),
    DeadlineName.FIRST_CONTACT: D("1wd"),
    DeadlineName.RETURN_WINDOW: D("2wd"),
    DeadlineName.HANDLE: D("3wd"),
    DeadlineName.HANDLE_INTERNAL: D("2wd"),
    DeadlineName.REHANDLE: D("3wd"),
}

DEFAULT_POLICIES: dict[TicketKind, dict[DeadlineName, Duration]] = {
    TicketKind.REGULAR: {
        DeadlineName.ACCEPT: D("1wd"),
        DeadlineName.FIRST_CONTACT: D("1wd"),
        DeadlineName.RETURN_WINDOW: D("2wd"),
        DeadlineName.HANDLE: D("5wd"),
        DeadlineName.REHANDLE: D("3wd"),
    },
    TicketKind.URGENT: dict(_SPECIAL_POLICY),
    TicketKind.SEMI_URGENT: dict(_SPECIAL_POLICY),
    TicketKind.CITY_REVIEW: dict(_SPECIAL_POLICY),
    TicketKind.PHOTO: {**_SPECIAL_POLICY, DeadlineName.HANDLE: D("3d")},
}

DEFAULT_THREE_TWOS: dict[DeadlineName, Duration] = {
    DeadlineName.CONTACT_20M: D("20m"),
    DeadlineName.ON_SITE_2H: D("2h"),
    DeadlineName.SOLVE_24H: D("24h"),
    DeadlineName.OPINION_5D: D("5d"),
}

# 延期 (extension): working days when a request names none, at most per request, approved extensions per ticket
DEFAULT_EXTENSION_DAYS = 3
MAX_EXTENSION_DAYS = 10
MAX_EXTENSIONS = 1


class ThreeTwos(Model):
    """三个二: 20 minutes contact, 2 hours on site, 24 hours solved, 5 days opinion for hard cases."""

    categories: list[Text] = []  # empty = off
    contact_20m: DurationField = DEFAULT_THREE_TWOS[DeadlineName.CONTACT_20M]
    on_site_2h: DurationField = DEFAULT_THREE_TWOS[DeadlineName.ON_SITE_2H]
    solve_24h: DurationField = DEFAULT_THREE_TWOS[DeadlineName.SOLVE_24H]
    opinion_5d: DurationField = DEFAULT_THREE_TWOS[DeadlineName.OPINION_5D]

    def durations(self) -> dict[DeadlineName, Duration]:
        return {
            DeadlineName.CONTACT_20M: self.contact_20m,
            DeadlineName.ON_SITE_2H: self.on_site_2h,
            DeadlineName.SOLVE_24H: self.solve_24h,
            DeadlineName.OPINION_5D: self.opinion_5d,
        }


class Extension(Model):
    """延期: a unit asks for more working days on a ticket's handling deadline; its head or the office decides."""

    default_days: int = Field(default=DEFAULT_EXTENSION_DAYS, ge=1)  # when the request names no number
    max_days: int = Field(default=MAX_EXTENSION_DAYS, ge=1, le=60)  # at most, per request
    max_approved: int = Field(default=MAX_EXTENSIONS, ge=0)  # approved extensions per ticket; 0: no extensions

    @model_validator(mode="after")
    def _default_within_max(self) -> Self:
        if self.default_days > self.max_days:
            raise ValueError(f"default_days ({self.default_days}) is more than max_days ({self.max_days})")
        return self


class Deadlines(Model):
    # per kind: merged over DEFAULT_POLICIES; a name set to null removes that deadline
    policies: dict[TicketKind, dict[DeadlineName, DurationField | None]] = {}
    three_twos: ThreeTwos = Field(default_factory=ThreeTwos)
    extension: Extension = Field(default_factory=Extension)
