"""Durations as operators write them: ``1wd`` (working days), ``3d``, ``24h``, ``20m``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Unit = Literal["wd", "d", "h", "m"]
_PATTERN = re.compile(r"^\s*(\d+)\s*(wd|d|h|m)\s*$")
_UNIT_LABEL = {"wd": "个工作日", "d": "个自然日", "h": "小时", "m": "分钟"}


@dataclass(frozen=True, slots=True)
class Duration:
    value: int
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(
                f'invalid duration "{text}": write a whole number and a unit, '
                "e.g. 1wd (working days), 3d (natural days), 2h, 20m"
            )
        value = int(match.group(1))
        if value <= 0:
            raise ValueError(f'invalid duration "{text}": must be greater than zero')
        unit: Unit = match.group(2)  # type: ignore[assignment]
        return cls(value, unit)

    @property
    def working_days(self) -> bool:
        return self.unit == "wd"

    def natural(self) -> timedelta:
        """The natural length; only for non-working-day units."""
        if self.unit == "wd":
            raise ValueError("a working-day duration has no fixed natural length")
        return {
            "d": timedelta(days=self.value),
            "h": timedelta(hours=self.value),
            "m": timedelta(minutes=self.value),
        }[self.unit]

    def __str__(self) -> str:
        return f"{self.value}{self.unit}"

    def label(self) -> str:
        return f"{self.value}{_UNIT_LABEL[self.unit]}"
