"""Tickets built by hand for what the messages render; the engines that write workbooks."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from bot.domain.clock import TZ
from bot.domain.lifecycle import TicketState
from bot.domain.records import Ticket
from bot.messages.xlsx import ENGINES, engines
from config.vocabulary import TicketKind

DISPATCHED_AT = datetime(2026, 11, 23, 8, 0, tzinfo=TZ)


@pytest.fixture
def make_ticket() -> Callable[..., Ticket]:
    """A ticket as the store would give it: a regular one, dispatched, with ``fields`` changed."""

    def make(**fields: Any) -> Ticket:
        base: dict[str, Any] = {
            "id": 1,
            "ticket_no": "2026112300001",
            "kind": TicketKind.REGULAR,
            "content": "反映路灯不亮",
            "state": TicketState.DISPATCHED,
            "cycle": 1,
            "dispatched_at": DISPATCHED_AT,
            "received_at": DISPATCHED_AT,
            "updated_at": DISPATCHED_AT,
            "source": "api",
            "payload_hash": "0" * 64,
        }
        return Ticket.of({**base, **fields})

    return make


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine that writes workbooks (bot.messages.xlsx)."""
    if request.param == "libxlsxwriter":
        _require_library()
    return str(request.param)


@pytest.fixture
def c_engine() -> str:
    """The C library's engine."""
    _require_library()
    return "libxlsxwriter"


def _require_library() -> None:
    """In CI a missing libxlsxwriter is a failure (make test installs it); elsewhere, a skip that says why."""
    if "libxlsxwriter" not in engines():
        message = "libxlsxwriter is not installed (apt-get install libxlsxwriter4)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
