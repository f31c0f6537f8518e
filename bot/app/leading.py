"""Taking part in a leader election (:class:`store.leader.Leader`) for as long as the app runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from store.leader import Leader

log = logging.getLogger(__name__)


async def hold() -> None:
    """The leader's work: to hold the lock until cancelled (the scheduler's job asks the leader before each tick)."""
    await asyncio.Event().wait()


async def lead(leader: Leader, work: Callable[[], Awaitable[None]]) -> None:
    """Takes part in ``leader``'s election until cancelled. If it ends otherwise, /healthz reports it."""
    try:
        await leader.run(work)
    except Exception:
        log.exception("%s stopped: this process no longer takes part in the election; restart it", leader.name)
    else:
        log.error("%s stopped: this process no longer takes part in the election; restart it", leader.name)
