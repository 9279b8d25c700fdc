"""Deduplication on the real Redis: new, redelivered, duplicate, TTL, one round trip."""

from __future__ import annotations

import redis.asyncio as aioredis

from services.ingest.dedup import Deduplicator, Seen
from shared.redis import Keys


async def test_new_redelivered_duplicate_and_ttl(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    dedup = Deduplicator(redis_client, Keys(redis_prefix), ttl_s=120)
    first = await dedup.mark(
        [("police", "E1", "t/0/1"), ("douane", "E1", "t/1/1"), ("police", "E1", "t/0/9")]
    )
    # same batch: the second message with (police, E1) is a duplicate
    assert first == [Seen.NEW, Seen.NEW, Seen.DUPLICATE]
    again = await dedup.mark([("police", "E1", "t/0/1"), ("police", "E1", "t/2/5")])
    assert again == [Seen.REDELIVERED, Seen.DUPLICATE]
    ttl = await redis_client.ttl(dedup.key("police", "E1"))
    assert 0 < ttl <= 120
    assert await dedup.mark([]) == []
