"""A deadline engine for tests that tick it with a moved clock."""

from __future__ import annotations

from bot.domain.clock import Clock
from bot.domain.workcal import WorkCalendar
from bot.services.channels import Channels
from bot.services.deadline_engine import DeadlineEngine
from bot.services.duty import DutyService
from config.model import BotConfig
from notifiers.rows import EngineRows
from store.core import Store


def deadline_engine(
    store: Store, config: BotConfig, calendar: WorkCalendar, clock: Clock, *, channels: Channels | None = None
) -> DeadlineEngine:
    """The engine over the test's store, its messages addressed as a deployment with ``channels`` (default: the
    self-built app, so members can be told privately) would address them."""
    return DeadlineEngine(
        store,
        config,
        calendar,
        clock,
        duty=DutyService(store, config, clock),
        rows=EngineRows(config, channels or Channels(app=True)),
    )
