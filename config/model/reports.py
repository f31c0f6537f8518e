"""The reports (docs/reports.md): when the weekly data, the periodic 通报 and the heads' morning brief go out, the
targets the charts draw, the satisfaction weights and the unit score's weights."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from config.model.fields import ClockTime, Model

Answer = Literal["satisfied", "basically_satisfied", "dissatisfied"]
DEFAULT_SATISFACTION_WEIGHTS: dict[Answer, float] = {"satisfied": 1.0, "basically_satisfied": 1.0, "dissatisfied": 0.0}
RateKey = Literal["accept", "first_contact", "contact_20m", "handle", "reply", "solved", "satisfaction"]


def _share(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"a share between 0 and 1 (0.95 = 95%), not {value}")
    return value


# a target or a satisfaction weight: checked key by key, so that every one amiss is told at once
Share = Annotated[float, AfterValidator(_share)]
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_WEEKDAY_WORDS = dict(zip(("周一", "周二", "周三", "周四", "周五", "周六", "周日"), _WEEKDAYS, strict=True))

# the default unit score (no source gives a formula; other cities weigh 响应 / 解决 / 满意 30 / 35 / 35): 响应 is the
# three on-time rates, 10 each
DEFAULT_SCORE_WEIGHTS: dict[RateKey, float] = {
    "accept": 10,
    "first_contact": 10,
    "handle": 10,
    "solved": 35,
    "satisfaction": 35,
}
DEFAULT_TARGETS: dict[RateKey, float] = {
    "accept": 1.0,
    "first_contact": 1.0,
    "contact_20m": 1.0,
    "handle": 1.0,
    "reply": 1.0,
    "solved": 0.85,
    "satisfaction": 0.9,
}


class Weekly(Model):
    """The week's data (每周三): Monday to Sunday of the week before, to the office's group and to each unit head."""

    enabled: bool = True
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "wed"
    at: ClockTime = "09:07"

    @field_validator("weekday", mode="before")
    @classmethod
    def _chinese(cls, value: object) -> object:
        return _WEEKDAY_WORDS.get(value.strip(), value.strip().lower()) if isinstance(value, str) else value

    @property
    def weekday_index(self) -> int:
        return _WEEKDAYS[self.weekday]


class Bulletin(Model):
    """The 通报: on the first working day after each period, at ``at``, the six items of the sub-district's report
    with a chart and the workbook, to the office's group (the workbook also to the center leads)."""

    enabled: bool = True
    period: Literal["month", "bimonth", "quarter"] = "bimonth"
    at: ClockTime = "09:37"
    chart_rate: RateKey = "handle"  # the rate the chart's bars and trend show


class Brief(Model):
    """The heads' morning brief, privately, on working days: due today, overdue, warnings, accept misses."""

    enabled: bool = True
    at: ClockTime = "08:37"


class Reports(Model):
    weekly: Weekly = Field(default_factory=Weekly)
    bulletin: Bulletin = Field(default_factory=Bulletin)
    brief: Brief = Field(default_factory=Brief)
    # the line a chart draws for each rate, as a share (0.95 = 95 %)
    targets: dict[RateKey, Share] = Field(default_factory=lambda: dict(DEFAULT_TARGETS))
    # 满意率's numerator weighs each answer; 联系不上 is never counted
    satisfaction_weights: dict[Answer, Share] = Field(default_factory=lambda: dict(DEFAULT_SATISFACTION_WEIGHTS))
    # the unit score: 100 × the weighted mean of these rates (a rate with no denominator is left out); given, it
    # replaces the whole set
    score_weights: dict[RateKey, float] = Field(default_factory=lambda: dict(DEFAULT_SCORE_WEIGHTS))

    @field_validator("targets", "satisfaction_weights", mode="before")
    @classmethod
    def _over_defaults(cls, value: object, info: ValidationInfo) -> object:
        """A target or weight left out keeps its default (``score_weights`` given replaces the whole set: the rates
        it names are the score's)."""
        defaults = DEFAULT_TARGETS if info.field_name == "targets" else DEFAULT_SATISFACTION_WEIGHTS
        return {**defaults, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if any(w < 0 for w in self.score_weights.values()) or not any(w > 0 for w in self.score_weights.values()):
            raise ValueError("reports.score_weights: weights of 0 or more, at least one above 0")
        return self
