"""Access tokens shared by every bot process: one cache, one refresh at a time, never an unbounded loop.

WeCom (page 91039): cache the token (gettoken is itself rate limited), refresh it before ``expires_in`` runs out,
keep one per app, and refetch when an API call says it is invalid (40014 / 42001), since WeCom may revoke it early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class TokenLockTimeout(TimeoutError):
    """Waited the whole bounded time for another refresh to finish."""


class TokenStore(Protocol):
    """Where tokens live. ``expires_at`` is the time after which the token is no longer handed out (its real expiry
    less the refresh margin), on the clock of the TokenManager that set it."""

    async def get(self, key: str) -> tuple[str, float] | None: ...

    async def set(self, key: str, token: str, expires_at: float) -> None: ...

    async def delete(self, key: str, token: str | None = None) -> bool:
        """Drops the entry; with ``token``, only while the entry still holds that token (compare-and-delete)."""
        ...

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Held by one refresher at a time; waits a bounded time, then raises TokenLockTimeout."""
        ...


class MemoryTokenStore:
    """One process's tokens."""

    def __init__(self, *, lock_wait: float = 20.0) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.lock_wait = lock_wait

    async def get(self, key: str) -> tuple[str, float] | None:
        return self._tokens.get(key)

    async def set(self, key: str, token: str, expires_at: float) -> None:
        self._tokens[key] = (token, expires_at)

    async def delete(self, key: str, token: str | None = None) -> bool:
        entry = self._tokens.get(key)
        if entry is None or (token is not None and entry[0] != token):
            return False
        del self._tokens[key]
        return True

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with asyncio.timeout(self.lock_wait):
                await lock.acquire()
        except TimeoutError:
            raise TokenLockTimeout(f"token refresh lock {key!r} busy for {self.lock_wait}s") from None
        try:
            yield
        finally:
            lock.release()


# compare-and-delete: only the owner of the lock (or the holder of the same token) removes the key
_RELEASE_LOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_DELETE_IF_TOKEN = (
    "if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisTokenStore:
    """Tokens in Redis, shared by every bot process.

    A token is a hash ``{prefix}{key}`` (``token``, ``expires_at``) whose TTL ends when it stops being handed out.
    The refresh lock is ``{prefix}{key}:lock``, taken with ``SET NX PX`` under a random owner value and released by
    a Lua compare-and-delete, so a refresher whose lock already expired cannot release someone else's. Waiters poll
    every ``poll`` seconds for at most ``lock_wait`` seconds; ``lock_ttl`` frees the lock of a process that died.

    While Redis cannot be asked, the process goes on with its own copy (every token read or written is kept in a
    :class:`MemoryTokenStore` too) and its own refresh lock: sends do not stop for an outage, and a process without
    a copy fetches one (WeCom hands out the same token while it is valid).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "hotline-bot:wecom:",
        clock: Callable[[], float] = time.time,
        lock_ttl: float = 15.0,
        lock_wait: float = 20.0,
        poll: float = 0.05,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self.poll = poll
        self.local = MemoryTokenStore(lock_wait=lock_wait)  # this process's copy, used while Redis is away
        self._away = False

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def _unavailable(self, exc: Exception) -> None:
        if not self._away:
            log.warning(
                "wecom tokens: Redis cannot be asked (%s); this process uses its own copy until it is back",
                exc,
            )
            self._away = True

    def _answered(self) -> None:
        if self._away:
            log.info("wecom tokens: Redis answers again; the shared tokens apply")
            self._away = False

    async def get(self, key: str) -> tuple[str, float] | None:
        try:
            entry = await self._get(key)
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return await self.local.get(key)
        self._answered()
        if entry is None:
            await self.local.delete(key)
        else:
            await self.local.set(key, *entry)
        return entry

    async def _get(self, key: str) -> tuple[str, float] | None:
        entry = await self.redis.hgetall(self._key(key))  # type: ignore[misc]
        if not entry:
            return None
        fields = {_text(k): _text(v) for k, v in entry.items()}
        try:
            return fields["token"], float(fields["expires_at"])
        except (KeyError, ValueError):
            return None

    async def set(self, key: str, token: str, expires_at: float) -> None:
        await self.local.set(key, token, expires_at)
        try:
            await self._set(key, token, expires_at)
        except (RedisError, OSError) as exc:
            self._unavailable(exc)

    async def _set(self, key: str, token: str, expires_at: float) -> None:
        ttl_ms = math.ceil((expires_at - self.clock()) * 1000)
        name = self._key(key)
        if ttl_ms <= 0:
            await self.redis.delete(name)
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping={"token": token, "expires_at": repr(expires_at)})
            pipe.pexpire(name, ttl_ms)
            await pipe.execute()

    async def delete(self, key: str, token: str | None = None) -> bool:
        local = await self.local.delete(key, token)
        name = self._key(key)
        try:
            if token is None:
                return bool(await self.redis.delete(name))
            return bool(await self.redis.eval(_DELETE_IF_TOKEN, 1, name, token))  # type: ignore[misc]
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return local

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        name = self._key(key) + ":lock"
        owner = secrets.token_hex(16)
        ttl_ms = max(1, math.ceil(self.lock_ttl * 1000))
        tries = max(1, math.ceil(self.lock_wait / self.poll))
        taken: bool | None = False  # None: Redis could not be asked
        try:
            for attempt in range(tries):
                if await self.redis.set(name, owner, nx=True, px=ttl_ms):
                    taken = True
                    break
                if attempt < tries - 1:
                    await asyncio.sleep(self.poll)
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            taken = None
        if taken is False:
            raise TokenLockTimeout(f"token refresh lock {name!r} busy for {self.lock_wait}s")
        if taken is None:
            async with self.local.lock(key):  # one refresh at a time in this process, at least
                yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(RedisError, OSError):  # the lock's TTL frees it
                await self.redis.eval(_RELEASE_LOCK, 1, name, owner)  # type: ignore[misc]


class TokenManager:
    """Hands out a cached token, refreshing it ``refresh_margin`` seconds before it expires.

    One refresh at a time: a per-process asyncio lock lets one coroutine go to the store's lock (so a burst of sends
    causes one fetch), and the store's lock lets one process fetch. Whoever gets a lock re-reads the cache first,
    so waiters end up with the token the winner fetched.
    """

    def __init__(
        self,
        store: TokenStore,
        fetch: Callable[[], Awaitable[tuple[str, int]]],
        *,
        key: str,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 300,
    ) -> None:
        self.store = store
        self.fetch = fetch
        self.key = key
        self.clock = clock
        self.refresh_margin = refresh_margin
        self._local = asyncio.Lock()
        self.fetches = 0

    async def _fresh(self) -> str | None:
        entry = await self.store.get(self.key)
        if entry is not None and self.clock() < entry[1]:
            return entry[0]
        return None

    async def get(self) -> str:
        token = await self._fresh()
        if token is not None:
            return token
        async with self._local:
            token = await self._fresh()
            if token is not None:
                return token
            async with self.store.lock(self.key):
                token = await self._fresh()
                if token is not None:
                    return token
                return await self._fetch_and_store()

    async def _fetch_and_store(self) -> str:
        fetched_at = self.clock()
        token, expires_in = await self.fetch()
        self.fetches += 1
        # a short-lived token (WeCom may hand back the current one with its remaining lifetime (?)) is used for half
        # of its life rather than not at all
        margin = min(self.refresh_margin, expires_in / 2)
        await self.store.set(self.key, token, fetched_at + expires_in - margin)
        log.info("wecom access token refreshed", extra={"token_key": self.key, "expires_in": expires_in})
        return token

    async def invalidate(self, token: str) -> None:
        """After 40014 / 42001: forget ``token`` unless another caller has already replaced it."""
        if await self.store.delete(self.key, token):
            log.info("wecom access token dropped as invalid", extra={"token_key": self.key})
