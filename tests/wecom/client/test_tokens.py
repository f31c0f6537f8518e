"""TokenManager over the memory store and over the real Redis: one fetch at a time, refresh margin, stale drops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from bot.domain.clock import FrozenClock
from bot.wecom.errors import Busy
from bot.wecom.tokens import MemoryTokenStore, RedisTokenStore, TokenLockTimeout, TokenManager
from store.redis import create_redis
from tests.conftest import REDIS_URL

Wall = Callable[[], float]  # the suite's clock in seconds (tests.wecom.conftest.wall)


class Fetcher:
    """WeCom's gettoken: a new token each time, optionally held until released, counted."""

    def __init__(self, expires_in: int = 7200) -> None:
        self.calls = 0
        self.expires_in = expires_in
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self) -> tuple[str, int]:
        self.calls += 1
        self.started.set()
        n = self.calls
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), 5)
        return f"token-{n}", self.expires_in


async def test_concurrent_gets_on_an_empty_cache_fetch_once(wall: Wall) -> None:
    fetch = Fetcher()
    manager = TokenManager(MemoryTokenStore(), fetch, key="app", clock=wall)
    fetch.gate = asyncio.Event()
    waiting = [asyncio.create_task(manager.get()) for _ in range(20)]
    await asyncio.sleep(0)
    fetch.gate.set()
    assert set(await asyncio.gather(*waiting)) == {"token-1"}
    assert fetch.calls == 1


async def test_refresh_margin_and_short_lived_tokens(clock: FrozenClock, wall: Wall) -> None:
    fetch, store = Fetcher(), MemoryTokenStore()
    manager = TokenManager(store, fetch, key="app", clock=wall, refresh_margin=300)
    assert await manager.get() == "token-1"
    assert await store.get("app") == ("token-1", wall() + 7200 - 300)
    clock.advance(seconds=6899)
    assert await manager.get() == "token-1"
    clock.advance(seconds=1)
    assert await manager.get() == "token-2"
    # a token with less life than the margin is still used for half of it, not refetched on every call
    fetch.expires_in = 100
    clock.advance(seconds=7200)
    assert await manager.get() == "token-3"
    clock.advance(seconds=49)
    assert await manager.get() == "token-3"
    clock.advance(seconds=1)
    assert await manager.get() == "token-4"


async def test_invalidate_drops_only_the_token_it_names(wall: Wall) -> None:
    store = MemoryTokenStore()
    manager = TokenManager(store, Fetcher(), key="app", clock=wall)
    assert await manager.get() == "token-1"
    await store.set("app", "token-from-another-process", wall() + 1000)
    await manager.invalidate("token-1")  # stale: someone already replaced it
    assert await manager.get() == "token-from-another-process"
    await manager.invalidate("token-from-another-process")
    assert await manager.get() == "token-2"


async def test_a_failed_fetch_releases_the_lock_and_caches_nothing(wall: Wall) -> None:
    calls = 0

    async def flaky() -> tuple[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Busy(-1, "system busy", "gettoken")
        return "token-ok", 7200

    store = MemoryTokenStore()
    manager = TokenManager(store, flaky, key="app", clock=wall)
    with pytest.raises(Busy):
        await manager.get()
    assert await store.get("app") is None
    assert await manager.get() == "token-ok"


async def test_memory_lock_wait_is_bounded() -> None:
    store = MemoryTokenStore(lock_wait=0.02)
    async with store.lock("app"):
        with pytest.raises(TokenLockTimeout):
            async with store.lock("app"):
                pass


# --- Redis ------------------------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_two_processes_racing_on_an_empty_cache_fetch_once(redis: tuple[Redis, str], wall: Wall) -> None:
    _, prefix = redis
    fetch = Fetcher()
    fetch.gate = asyncio.Event()
    first, second = create_redis(REDIS_URL), create_redis(REDIS_URL)  # two processes, two connections
    try:
        managers = [
            TokenManager(RedisTokenStore(r, prefix=prefix, clock=wall, poll=0.01), fetch, key="app", clock=wall)
            for r in (first, second)
        ]
        tasks = [asyncio.create_task(m.get()) for m in managers for _ in range(5)]
        await asyncio.wait_for(fetch.started.wait(), 5)
        await asyncio.sleep(0.03)  # the other process is polling the lock now
        fetch.gate.set()
        assert set(await asyncio.gather(*tasks)) == {"token-1"}
        assert fetch.calls == 1
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.redis
async def test_redis_entry_has_a_ttl_and_invalidate_drops_only_the_stale_token(
    redis: tuple[Redis, str], wall: Wall
) -> None:
    client, prefix = redis
    store = RedisTokenStore(client, prefix=prefix, clock=wall)
    process_a = TokenManager(store, Fetcher(), key="app", clock=wall)
    assert await process_a.get() == "token-1"
    ttl = await client.pttl(f"{prefix}app")
    assert 6_890_000 < ttl <= 6_900_000
    # process B refreshed meanwhile
    await RedisTokenStore(client, prefix=prefix, clock=wall).set("app", "token-B", wall() + 6900)
    await process_a.invalidate("token-1")
    assert await store.get("app") == ("token-B", wall() + 6900)
    await process_a.invalidate("token-B")
    assert await store.get("app") is None
    # an entry already past its time is not stored at all
    await store.set("app", "token-old", wall() - 1)
    assert await store.get("app") is None


@pytest.mark.redis
async def test_redis_lock_is_released_only_by_its_owner(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    store = RedisTokenStore(client, prefix=prefix, poll=0.01, lock_wait=0.05)
    lock_key = f"{prefix}app:lock"
    lock_a = store.lock("app")
    await lock_a.__aenter__()
    owner_a = await client.get(lock_key)
    assert owner_a
    with pytest.raises(TokenLockTimeout):  # a second refresher waits a bounded time
        async with store.lock("app"):
            pass
    await client.delete(lock_key)  # as if A's lock had expired (lock_ttl) while A was still working
    lock_b = store.lock("app")
    await lock_b.__aenter__()
    owner_b = await client.get(lock_key)
    assert owner_b
    assert owner_b != owner_a
    await lock_a.__aexit__(None, None, None)  # A finishes late: it must not release B's lock
    assert await client.get(lock_key) == owner_b
    await lock_b.__aexit__(None, None, None)
    assert await client.get(lock_key) is None
