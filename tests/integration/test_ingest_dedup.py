"""Deduplication on the real Redis: new, redelivered, duplicate, TTL, on both
pipeline paths (the shared connection, and redis-py's pool for TLS/Unix)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from services.ingest.dedup import Deduplicator, Seen
from shared.redis import Keys
from shared.resp import Executor, Pipelines, PoolPipelines


@pytest.fixture(params=["shared", "pool"])
async def pipes(
    request: pytest.FixtureRequest, redis_client: aioredis.Redis
) -> AsyncIterator[Executor]:
    if request.param == "pool":
        yield PoolPipelines(redis_client)
        return
    p = Pipelines.for_client(redis_client)
    assert p is not None
    yield p
    await p.aclose()


async def test_new_redelivered_duplicate_and_ttl(
    redis_client: aioredis.Redis, redis_prefix: str, pipes: Executor
) -> None:
    dedup = Deduplicator(pipes, Keys(redis_prefix), ttl_s=120)
    first = await dedup.mark(
        [("police", "E1", "t/0/1"), ("douane", "E1", "t/1/1"), ("police", "E1", "t/0/9")]
    )
    # same batch: the second message with (police, E1) is a duplicate
    assert first == [Seen.NEW, Seen.NEW, Seen.DUPLICATE]
    again = await dedup.mark([("police", "E1", "t/0/1"), ("police", "E1", "t/2/5")])
    assert again == [Seen.REDELIVERED, Seen.DUPLICATE]
    # the first message's coordinates stay: a duplicate never overwrites them
    assert await redis_client.get(dedup.key("police", "E1")) == b"t/0/1"
    ttl = await redis_client.ttl(dedup.key("police", "E1"))
    assert 0 < ttl <= 120
    assert await dedup.mark([]) == []
