"""A fresh ticket service per test on each database (the ``store`` of tests/conftest.py: SQLite and PostgreSQL),
and the sandbox config, for the importer tests."""

from __future__ import annotations

import pytest

from bot.domain.clock import FrozenClock
from bot.domain.workcal import WorkCalendar
from bot.services.tickets import TicketService
from config.loader import load_config
from config.model import BotConfig
from store.core import Store
from tests.hotline.importer.support import ROOT, at


@pytest.fixture(scope="module")
def config() -> BotConfig:
    return load_config(ROOT / "config" / "sandbox.yaml")


@pytest.fixture(scope="module")
def work_calendar() -> WorkCalendar:
    return WorkCalendar()


@pytest.fixture
def svc(store: Store, config: BotConfig, work_calendar: WorkCalendar) -> TicketService:
    return TicketService(store, config, work_calendar, FrozenClock(at(2026, 11, 23, 9)))
