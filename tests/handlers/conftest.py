"""Fixtures of the handlers' tests: a command router over the test's store and the sandbox config."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.domain.clock import FrozenClock
from bot.services.channels import Channels
from bot.services.ratelimit import Limit, RateLimiter
from bot.services.tickets import TicketService
from config.model import BotConfig
from handlers.router import CommandRouter
from tests.routers import command_router

MakeRouter = Callable[..., CommandRouter]


@pytest.fixture
def make_router(service: TicketService, sandbox_config: BotConfig, clock: FrozenClock) -> MakeRouter:
    """A command router; by default the sandbox config with the app configured (private messages possible) and the
    router's own flood limiter and limits."""

    def make(
        *,
        config: BotConfig | None = None,
        channels: Channels | None = None,
        limiter: RateLimiter | None = None,
        limits: tuple[Limit, ...] | None = None,
    ) -> CommandRouter:
        return command_router(
            service=service,
            config=config if config is not None else sandbox_config,
            clock=clock,
            channels=channels if channels is not None else Channels(app=True),
            limiter=limiter,
            limits=limits,
        )

    return make


@pytest.fixture
def router(make_router: MakeRouter) -> CommandRouter:
    return make_router()
