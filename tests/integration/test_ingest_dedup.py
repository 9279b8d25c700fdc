"""Deduplication on the real Redis (a single one and a cluster): new,
redelivered, duplicate, TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from services.ingest.dedup import Deduplicator, Seen
from shared.redis import Keys
from shared.resp import Executor, pipelines_for


@pytest.fixture
async def pipes(redis_client: aioredis.Redis) -> AsyncIterator[Executor]:
    p = pipelines_for(redis_client)
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


async def test_a_batch_over_many_slots_gets_one_verdict_per_event_in_order(
    redis_prefix: str, pipes: Executor
) -> None:
    """On a cluster the batch's keys lie on every master: one verdict each, in order."""
    dedup = Deduplicator(pipes, Keys(redis_prefix), ttl_s=120)
    items = [(f"agency{i % 7}", f"E{i}", f"t/{i % 4}/{i}") for i in range(300)]
    assert await dedup.mark(items) == [Seen.NEW] * 300
    mixed = [(a, e, src if i % 2 else "t/9/9") for i, (a, e, src) in enumerate(items)]
    want = [Seen.REDELIVERED if i % 2 else Seen.DUPLICATE for i in range(300)]
    assert await dedup.mark(mixed) == want
