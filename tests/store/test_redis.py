"""The Redis client."""

from __future__ import annotations

from store.redis import create_redis
from tests.conftest import REDIS_HOST, REDIS_PORT, REDIS_URL, require_service


async def test_redis_round_trip() -> None:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    client = create_redis(REDIS_URL)
    try:
        assert await client.ping()
        await client.set("hotline-bot:test", "值", ex=5)
        assert await client.get("hotline-bot:test") == "值"
        await client.delete("hotline-bot:test")
    finally:
        await client.aclose()
