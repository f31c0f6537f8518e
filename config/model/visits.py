"""回访 (return visits): which results make a warning ticket (预警工单)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from config.model.fields import Model

VisitResultName = Literal["satisfied", "basically_satisfied", "dissatisfied", "unreachable"]
# the Chinese words the YAML may use instead
_LABELS = {"满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "dissatisfied", "联系不上": "unreachable"}


class Visits(Model):
    """The dispatchers' return visit: a result listed in ``warning_results`` makes the ticket a warning ticket
    (预警), announced at once and handled again by its unit (seed 004: a dissatisfied-leaning result)."""

    warning_results: list[VisitResultName] = ["dissatisfied"]

    @field_validator("warning_results", mode="before")
    @classmethod
    def _chinese(cls, value: object) -> object:
        if isinstance(value, list):
            return [_LABELS.get(v.strip(), v) if isinstance(v, str) else v for v in value]
        return value
