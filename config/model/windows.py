"""When the bot works: the service window, quiet hours and the working-day calendar's overrides file."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from typing import Final, Self

from pydantic import model_validator

from config.model.fields import ClockTime, Model, in_window, minute_of_day

TIMEZONE: Final = "Asia/Shanghai"


class ServiceWindow(Model):
    """When tickets are pushed and worked on (受理时段); end may be 24:00, no wrap."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if minute_of_day(self.start) >= minute_of_day(self.end):
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    def contains(self, at: time | datetime) -> bool:
        return in_window(self.start, self.end, at)


class QuietHours(Model):
    """No non-urgent pushes or reminders (免打扰); may wrap midnight."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.start == "24:00":
            raise ValueError('start may not be 24:00; write "00:00"')
        if minute_of_day(self.start) == minute_of_day(self.end) % 1440:
            raise ValueError("start and end are the same time")
        return self

    def contains(self, at: time | datetime) -> bool:
        return in_window(self.start, self.end, at)


class CalendarSettings(Model):
    overrides_file: Path | None = None  # relative to the YAML file's folder
