"""Per-destination send limits, as sliding windows: at most ``count`` sends in any ``per_seconds``-long span.

A sliding window is stricter than WeCom's own counting whatever it is (calendar minutes or a window of its own), so
a sender that keeps to it keeps to WeCom's rule. ``acquire`` checks and counts in one step: 0.0 means "go now, the
send is counted"; anything else is the seconds until a slot frees, and nothing was counted.

``MemoryRateLimiter`` serves one process. ``RedisRateLimiter`` is shared by every bot process: one sorted set of
send times per key, every window counted in it, checked and written by one Lua script, so two processes cannot
both take the last slot. ``FallbackRateLimiter`` uses the shared one and, while Redis cannot be asked, a share of
each limit held in the process, so that sends go on through a Redis outage. Time is passed in (``now``, epoch
seconds), so tests move it; in production every process's clock must be NTP-synced, since each one judges the
others' sends by its own clock (senders leave a second of slack for that).
"""

from __future__ import annotations

import bisect
import logging
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    count: int
    per_seconds: float

    def __post_init__(self) -> None:
        if self.count < 1 or not self.per_seconds > 0:
            raise ValueError(f"a limit needs a positive count and window, got {self.count}/{self.per_seconds}s")


class LimiterUnavailable(Exception):
    """The shared limiter could not be asked (Redis down): do not send unpaced, try again later."""


class RateLimiter(Protocol):
    async def acquire(self, key: str, limits: Sequence[Limit], now: float) -> float:
        """0.0: go now (and the send is counted); otherwise seconds to wait (nothing counted)."""
        ...

    async def acquire_all(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> float:
        """``acquire`` for several keys at once, all or nothing (a message to several members): a member who must
        wait does not use up the others' slots on a send that does not happen."""
        ...

    async def record(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> None:
        """Count a send at ``now`` whatever the limits say: one that took long may have reached WeCom that late."""
        ...


def _wait(log: Sequence[float], limits: Sequence[Limit], now: float) -> float:
    """Seconds until ``log`` (one key's sends, in order) leaves room for one more under every limit; 0.0 now."""
    wait = 0.0
    for limit in limits:
        in_window = len(log) - bisect.bisect_right(log, now - limit.per_seconds)
        if in_window >= limit.count:
            # the send that has to leave this window before there is room again
            wait = max(wait, log[len(log) - limit.count] + limit.per_seconds - now)
    return wait


class MemoryRateLimiter:
    """A sliding-window log per key, in this process. A key is always asked with the same limits (keys name their
    channel); sends older than the longest window are forgotten."""

    def __init__(self) -> None:
        self._logs: dict[str, list[float]] = {}

    def _log(self, key: str, limits: Sequence[Limit], now: float) -> list[float]:
        log = self._logs.setdefault(key, [])
        longest = max(limit.per_seconds for limit in limits)
        del log[: bisect.bisect_right(log, now - longest)]
        return log

    async def acquire(self, key: str, limits: Sequence[Limit], now: float) -> float:
        if not limits:
            return 0.0
        log = self._log(key, limits, now)
        wait = _wait(log, limits, now)
        if wait <= 0:
            bisect.insort(log, now)  # the log was trimmed just now: record() would do it again
        return wait

    async def acquire_all(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> float:
        if not keys or not limits:
            return 0.0
        wait = self.wait_all(keys, limits, now)
        if wait > 0:
            return wait
        await self.record(keys, limits, now)
        return 0.0

    def wait_all(
        self, keys: Sequence[str], limits: Sequence[Limit], now: float, *, only: Sequence[Limit] | None = None
    ) -> float:
        """What :meth:`acquire_all` would answer, without counting anything; with ``only``, as if the key's limits
        were those alone (the log is kept for all of ``limits``)."""
        if not keys or not limits:
            return 0.0
        checked = limits if only is None else only
        return max(_wait(self._log(key, limits, now), checked, now) for key in keys)

    async def record(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> None:
        if not limits:
            return
        for key in dict.fromkeys(keys):
            bisect.insort(self._log(key, limits, now), now)


# KEYS: one sorted set per key (score = send time). ARGV: now, the send's member id, force (1: count it whatever the
# limits say), then the count and window seconds of each limit. Returns the seconds to wait as a string (a Lua number
# would come back cut to an integer), "0" when the send was counted. Bounds are formatted with %.17g: Lua's own
# number-to-string keeps 14 digits, a tenth of a millisecond off at today's epoch seconds.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local member = ARGV[2]
local force = ARGV[3] == '1'
local limits = {}
local longest = 0
for j = 4, #ARGV, 2 do
  local limit = {count = tonumber(ARGV[j]), per = tonumber(ARGV[j + 1])}
  table.insert(limits, limit)
  if limit.per > longest then longest = limit.per end
end
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.17g', now - longest))
  for _, limit in ipairs(limits) do
    local since = string.format('(%.17g', now - limit.per)
    local n = redis.call('ZCOUNT', key, since, '+inf')
    if n >= limit.count then
      local leaving = redis.call('ZRANGEBYSCORE', key, since, '+inf', 'WITHSCORES', 'LIMIT', n - limit.count, 1)
      local w = tonumber(leaving[2]) + limit.per - now
      if w > wait then wait = w end
    end
  end
end
if wait > 0 and not force then
  return string.format('%.17g', wait)
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, string.format('%.17g', now), member)
  redis.call('PEXPIRE', key, math.ceil(longest * 1000) + 1000)
end
return '0'
"""


class RedisRateLimiter:
    """The same sliding windows in Redis, shared by every process that uses the same ``prefix``.

    A key is the sorted set ``{prefix}{key}`` of its sends (score = time), counted per window by the script; its TTL
    runs out a window after its last send, so idle destinations cost nothing. A message's keys are checked and
    counted in one script call: on Redis Cluster they must share a slot (put a hash tag such as ``{wecom}`` in the
    prefix).
    """

    def __init__(self, redis: Redis, *, prefix: str = "hotline-bot:rate:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(_ACQUIRE)

    async def acquire(self, key: str, limits: Sequence[Limit], now: float) -> float:
        return await self.acquire_all([key], limits, now)

    async def acquire_all(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> float:
        return await self._run(keys, limits, now, force=False)

    async def record(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> None:
        await self._run(keys, limits, now, force=True)

    async def _run(self, keys: Sequence[str], limits: Sequence[Limit], now: float, *, force: bool) -> float:
        if not keys or not limits:
            return 0.0
        names = [f"{self.prefix}{key}" for key in dict.fromkeys(keys)]
        args: list[str | int] = [repr(float(now)), secrets.token_hex(8), "1" if force else "0"]
        for limit in limits:
            args += [limit.count, repr(float(limit.per_seconds))]
        try:
            answer = await self._script(keys=names, args=args)
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(f"{type(exc).__name__}: {exc}") from None
        wait = float(answer.decode() if isinstance(answer, bytes) else answer)
        return wait if wait > 0 and math.isfinite(wait) else 0.0


class FallbackRateLimiter:
    """``shared`` (Redis), and while it cannot be asked this process's own windows, each limit divided by the number
    of live bot processes (``processes()``, :attr:`store.liveness.Liveness.processes`): every process doing the same,
    together they still keep to the limit. Sends go on at that pace, with no failed attempt and no backoff.

    Every send is also counted here, so that the local windows know this process's recent sends the moment Redis
    goes away; the sends counted only here during an outage are counted in Redis when it is back, before anything
    else is asked. Redis is asked again ``retry`` seconds after it failed (by one caller at a time; the others go on
    locally meanwhile): the shared limits apply again within seconds of its return, and until the outage's sends
    have left their windows this process also keeps to its share, since the other processes' outage sends reach
    Redis only when they next ask. What remains inexact is the first window of an outage: the sends of the other
    processes just before it are known only to Redis.
    """

    def __init__(self, shared: RateLimiter, processes: Callable[[], int] = lambda: 1, *, retry: float = 2.0) -> None:
        self.shared = shared
        self.local = MemoryRateLimiter()
        self.processes = processes
        self.retry = retry
        self._down_until: float | None = None  # Redis failed: asked again from this time (epoch seconds)
        self._asking = False  # one caller asks Redis whether it is back; the others go on locally
        self._unsynced: list[tuple[tuple[str, ...], tuple[Limit, ...], float]] = []  # sends counted only here
        self._last_here = -math.inf  # the last send counted only here: in a window holding it the share applies

    @property
    def degraded(self) -> bool:
        """Whether the limits are this process's own for now (Redis could not be asked)."""
        return self._down_until is not None

    def _share(self, limits: Sequence[Limit]) -> list[Limit]:
        n = max(1, self.processes())
        return [Limit(max(1, limit.count // n), limit.per_seconds) for limit in limits]

    async def acquire(self, key: str, limits: Sequence[Limit], now: float) -> float:
        return await self.acquire_all([key], limits, now)

    async def acquire_all(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> float:
        if not keys or not limits:
            return 0.0
        share = self._share(limits)
        recent = [limit for limit in share if now < self._last_here + limit.per_seconds]
        if recent and (wait := self.local.wait_all(keys, share, now, only=recent)) > 0:
            return wait
        probing = self.degraded
        if self._may_ask(now):
            try:
                await self._sync(now)
                wait = await self.shared.acquire_all(keys, limits, now)
            except LimiterUnavailable as exc:
                self._failed(now, exc)
            else:
                self._answered()
                if wait <= 0:
                    await self.local.record(keys, limits, now)
                return wait
            finally:
                if probing:
                    self._asking = False
        wait = await self.local.acquire_all(keys, share, now)
        if wait <= 0:
            self._counted_here(keys, limits, now)
        return wait

    def _counted_here(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> None:
        self._unsynced.append((tuple(keys), tuple(limits), now))
        self._last_here = max(self._last_here, now)

    async def record(self, keys: Sequence[str], limits: Sequence[Limit], now: float) -> None:
        if not keys or not limits:
            return
        await self.local.record(keys, limits, now)
        probing = self.degraded
        if self._may_ask(now):
            try:
                await self._sync(now)
                await self.shared.record(keys, limits, now)
            except LimiterUnavailable as exc:
                self._failed(now, exc)
            else:
                self._answered()
                return
            finally:
                if probing:
                    self._asking = False
        self._counted_here(keys, limits, now)

    def _may_ask(self, now: float) -> bool:
        if self._down_until is None:
            return True
        if self._asking or now < self._down_until:
            return False
        self._asking = True
        return True

    async def _sync(self, now: float) -> None:
        """Counts in Redis the sends counted only here, those still inside their longest window."""
        while self._unsynced:
            keys, limits, at = self._unsynced[0]
            if at > now - max(limit.per_seconds for limit in limits):
                await self.shared.record(keys, limits, at)
            self._unsynced.pop(0)

    def _failed(self, now: float, exc: LimiterUnavailable) -> None:
        if self._down_until is None:
            log.warning(
                "rate limits: Redis cannot be asked (%s); sending under this process's share (1/%d) of each limit "
                "until it is back",
                exc,
                max(1, self.processes()),
            )
        self._down_until = now + self.retry

    def _answered(self) -> None:
        if self._down_until is not None:
            log.info("rate limits: Redis answers again; the shared limits apply")
            self._down_until = None
