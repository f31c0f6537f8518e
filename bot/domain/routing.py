"""Routing a ticket to the unit responsible for it, by the configured rules."""

from __future__ import annotations

from dataclasses import dataclass

from config.model import BotConfig
from config.vocabulary import TicketKind


@dataclass(frozen=True, slots=True)
class RouteDecision:
    unit_code: str
    reason: str  # "hotline" (the platform named the unit), "rule:N" (routing[N] matched), "fallback"


class Router:
    def __init__(self, config: BotConfig) -> None:
        self.config = config

    def route(
        self,
        *,
        unit_label: str | None,
        category: str | None,
        area: str | None,
        content: str,
        kind: TicketKind,
    ) -> RouteDecision:
        if unit_label:
            unit = self.config.unit_for_label(unit_label)
            if unit is not None:
                return RouteDecision(unit.code, "hotline")
        for index, rule in enumerate(self.config.routing):
            if rule.matches(category=category, area=area, content=content, kind=kind):
                return RouteDecision(rule.unit, f"rule:{index}")
        return RouteDecision(self.config.office.unit, "fallback")
