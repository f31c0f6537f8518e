"""A fresh SQLite ticket service per test, and the sandbox config, for the importer tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.domain.clock import FrozenClock
from bot.domain.workcal import WorkCalendar
from bot.services.tickets import TicketService
from config.loader import load_config
from config.model import BotConfig
from store.core import Store
from store.db import create_engine, migrate
from tests.hotline.importer.support import ROOT, at


@pytest.fixture(scope="module")
def config() -> BotConfig:
    return load_config(ROOT / "config" / "sandbox.yaml")


@pytest.fixture(scope="module")
def work_calendar() -> WorkCalendar:
    return WorkCalendar()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    await migrate(engine)
    yield Store(engine)
    await engine.dispose()


@pytest.fixture
def svc(store: Store, config: BotConfig, work_calendar: WorkCalendar) -> TicketService:
    return TicketService(store, config, work_calendar, FrozenClock(at(2026, 11, 23, 9)))
