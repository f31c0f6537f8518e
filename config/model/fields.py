"""Field types shared by the configuration models: ids, codes, clock times, durations, and the frozen base model."""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
)

from config.durations import Duration

Loc = tuple[str | int, ...]

D = Duration.parse

_USERID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_UNIT_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_MOBILE = re.compile(r"^1\d{10}$")
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def _check_userid(value: str) -> str:
    if not _USERID.match(value):
        raise ValueError(f'invalid userid "{value}": 1-64 letters, digits or _ . @ - (the WeCom account, not the name)')
    return value


def _check_unit_code(value: str) -> str:
    if not _UNIT_CODE.match(value):
        raise ValueError(f'invalid unit code "{value}": 1-32 letters, digits, _ or -')
    return value


def _check_mobile(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and not _MOBILE.match(value.strip()):
        raise ValueError(f'invalid mobile "{value}": 11 digits starting with 1')
    return value


def blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f'invalid URL "{value}": must start with http:// or https://')
    return value


def _parse_duration(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"invalid duration {value!r}: write e.g. 1wd (working days), 3d, 2h, 20m")
    return Duration.parse(str(value))


def parse_natural_duration(value: object) -> Duration:
    duration = _parse_duration(value)
    if duration.working_days:
        raise ValueError(f'invalid duration "{duration}": write natural time here, e.g. 12h or 1d, not working days')
    return duration


def _parse_clock(value: object) -> str:
    """'HH:MM' (00:00 .. 24:00), normalised to two-digit hours."""
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if not isinstance(value, str):
        raise ValueError(f'invalid time {value!r}: write "HH:MM" in quotes, e.g. "09:00"')
    match = _HHMM.match(value.strip())
    if not match:
        raise ValueError(f'invalid time "{value}": write "HH:MM", e.g. "09:00"')
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        raise ValueError(f'invalid time "{value}": hours 00-23, minutes 00-59 (24:00 = end of day)')
    return f"{hour:02d}:{minute:02d}"


def minute_of_day(hhmm: str) -> int:
    """'17:30' -> 1050; '24:00' -> 1440."""
    hour, minute = hhmm.split(":")
    return int(hour) * 60 + int(minute)


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
UserId = Annotated[str, AfterValidator(_check_userid)]
UnitCode = Annotated[str, AfterValidator(_check_unit_code)]
Mobile = Annotated[str, BeforeValidator(_check_mobile)]
OptionalText = Annotated[str | None, BeforeValidator(blank_to_none)]
HttpUrlText = Annotated[str, AfterValidator(_check_http_url)]
DurationField = Annotated[Duration, PlainValidator(_parse_duration), PlainSerializer(str, return_type=str)]
# natural time only (3d, 12h, 20m): a span on the wall clock, not working days
NaturalDuration = Annotated[Duration, PlainValidator(parse_natural_duration), PlainSerializer(str, return_type=str)]
ClockTime = Annotated[str, PlainValidator(_parse_clock)]
Weekday = Annotated[int, Field(ge=1, le=7)]


class Model(BaseModel):
    """Frozen, and unknown keys are errors (a typo is reported with its line)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def seconds_of_day(at: time | datetime) -> int:
    return at.hour * 3600 + at.minute * 60 + at.second


def in_window(start: str, end: str, at: time | datetime) -> bool:
    """Whether ``at`` falls in [start, end); wraps midnight when end <= start."""
    now = seconds_of_day(at)
    lo, hi = minute_of_day(start) * 60, minute_of_day(end) * 60
    if lo < hi:
        return lo <= now < hi
    return now >= lo or now < hi
