"""shared.redis: cluster URLs, and clients that never retry by themselves."""

from __future__ import annotations

import pytest
from redis.asyncio.cluster import RedisCluster

from shared.redis import RedisUnreachable, check_redis, cluster_seed, create_redis, is_cluster


def test_cluster_urls_name_a_seed_node() -> None:
    assert cluster_seed("redis+cluster://u:p@10.0.0.1:6379") == "redis://u:p@10.0.0.1:6379"
    assert cluster_seed("rediss+cluster://r.example:6380") == "rediss://r.example:6380"
    assert cluster_seed("redis://127.0.0.1:6379/0") is None
    assert cluster_seed("unix:///tmp/r.sock") is None


async def test_a_cluster_url_gives_a_cluster_client_and_neither_retries() -> None:
    cluster = create_redis("redis+cluster://127.0.0.1:1")
    single = create_redis("redis://127.0.0.1:1/0")
    assert isinstance(cluster, RedisCluster) and is_cluster(cluster)
    assert not is_cluster(single)
    assert cluster.retry.get_retries() == 0  # type: ignore[attr-defined]
    assert single.connection_pool.connection_kwargs["retry"].get_retries() == 0
    await cluster.aclose()
    await single.aclose()


async def test_an_unreachable_cluster_is_one_line() -> None:
    with pytest.raises(RedisUnreachable, match=r"^cannot reach Redis at redis\+cluster://\*\*\*@"):
        await check_redis("redis+cluster://u:secret@127.0.0.1:1", timeout=0.5)
