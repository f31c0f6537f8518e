"""Fixtures of the hotline API's tests: the bot's app on the test's database, served to an aiohttp test client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.domain.clock import FrozenClock
from config.model import BotConfig
from config.settings import Settings

Client = TestClient[Any, Any]


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    settings_for: Callable[..., Settings],
    sandbox_config: BotConfig,
    clock: FrozenClock,
) -> Client:
    """The app with the sandbox config and no workers (nothing sent), on the test's clock."""
    app = create_app(settings_for(database_url), sandbox_config, clock=clock, run_workers=False)
    return await aiohttp_client(app)
