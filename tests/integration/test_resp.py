"""Notify's shared-connection Redis pipelines against the real Redis, and against
redis-py's own pipelines on the same commands (the fallback for TLS/Unix)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import (
    AuthenticationError,
    NoScriptError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.localstack import LocalStack, free_port
from shared.resp import Batch, Pipelines, PoolPipelines, pairs, pipelines_for, text, values

pytestmark = pytest.mark.integration


@pytest.fixture
async def pipes(redis_client: aioredis.Redis) -> AsyncIterator[Pipelines]:
    p = Pipelines.for_client(redis_client)
    assert p is not None
    yield p
    await p.aclose()


def commands(prefix: str, sha: str) -> Batch:
    b = Batch()
    b.set(f"{prefix}:s", "v1", ex=60)
    b.append(("GET", f"{prefix}:s"))
    b.append(("GET", f"{prefix}:missing"))
    b.hset(f"{prefix}:h", {"a": "1", "b": "é"})
    b.hgetall(f"{prefix}:h")
    b.zadd(f"{prefix}:z", {"m1": 1.5, "m2": 1800000000.25})
    b.zadd(f"{prefix}:z", {"m1": 9.0}, nx=True)
    b.append(("ZRANGE", f"{prefix}:z", 0, -1, "WITHSCORES"))
    b.evalsha(sha, [f"{prefix}:s"], ["x", 2])
    b.hdel(f"{prefix}:h", "a")
    b.delete(f"{prefix}:s", f"{prefix}:nothing")
    return b


async def test_replies_are_redis_pys_raw_replies(
    redis_client: aioredis.Redis, redis_prefix: str, pipes: Pipelines
) -> None:
    script = redis_client.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
    await script(keys=["k"], args=["a", 1])  # loaded
    ours = await pipes.execute(commands(f"{redis_prefix}:1", script.sha))
    theirs = await PoolPipelines(redis_client).execute(commands(f"{redis_prefix}:2", script.sha))
    # the same replies but for the key names the script echoes, and the shapes
    # RESP3 gives a hash and a scored range (redis-py may speak RESP3)
    same = [0, 1, 2, 3, 5, 6, 9, 10]
    assert [ours[i] for i in same] == [theirs[i] for i in same]
    assert pairs(ours[4]) == pairs(theirs[4]) == {"a": "1", "b": "é"}
    assert values(ours[4]) == values(theirs[4]) == [b"1", "é".encode()]
    assert ours[8][1:] == theirs[8][1:] == [b"x", 3]
    assert ours[9:] == [1, 1]
    assert ours[:8] == [
        b"OK",
        b"v1",
        None,
        2,
        [b"a", b"1", b"b", "é".encode()],
        2,
        0,  # NX: m1 kept its score
        [b"m1", b"1.5", b"m2", b"1800000000.25"],
    ]


async def test_errors_raise_after_the_whole_pipeline_ran(
    redis_client: aioredis.Redis, redis_prefix: str, pipes: Pipelines
) -> None:
    with pytest.raises(NoScriptError):
        await pipes.execute([("EVALSHA", "0" * 40, 0), ("SET", f"{redis_prefix}:after", "1")])
    assert await redis_client.get(f"{redis_prefix}:after") == b"1"
    await redis_client.set(f"{redis_prefix}:str", "x")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await pipes.execute([("HGETALL", f"{redis_prefix}:str")])
    assert await pipes.execute([("ECHO", "still fine")]) == [b"still fine"]


async def test_concurrent_callers_share_one_connection_and_get_their_own_replies(
    redis_prefix: str, pipes: Pipelines
) -> None:
    async def one(i: int) -> list[object]:
        return await pipes.execute(
            [("CLIENT", "ID"), ("INCRBY", f"{redis_prefix}:n{i}", i), ("ECHO", f"caller {i}")]
        )

    results = await asyncio.gather(*(one(i) for i in range(40)))
    assert len({r[0] for r in results}) == 1  # one connection
    assert [r[1:] for r in results] == [[i, f"caller {i}".encode()] for i in range(40)]


async def test_a_cancelled_callers_replies_are_dropped(redis_prefix: str, pipes: Pipelines) -> None:
    slow = asyncio.create_task(pipes.execute([("BLPOP", f"{redis_prefix}:empty", "0.3")]))
    await asyncio.sleep(0.05)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    # queued behind the BLPOP on the same connection: gets its own replies, not the nil
    assert await pipes.execute([("ECHO", "next"), ("PING",)]) == [b"next", b"PONG"]


async def test_a_killed_connection_is_replaced_and_the_pipeline_retried(
    redis_client: aioredis.Redis, pipes: Pipelines
) -> None:
    [first] = await pipes.execute([("CLIENT", "ID")])
    await redis_client.execute_command("CLIENT", "KILL", "ID", first)
    await asyncio.sleep(0.05)
    [second] = await pipes.execute([("CLIENT", "ID")])
    assert second != first


async def test_a_connection_lost_before_the_callers_turn_is_retried_at_once(
    pipes: Pipelines,
) -> None:
    """Lost between the connect and the caller's request (the caller waited for
    the connect): the request fails and is retried on a new connection at once,
    not written to a closed transport and waited for until the timeout."""
    connect = pipes._connect
    lost = []

    async def connect_then_lose() -> Any:
        conn = await connect()
        if not lost:
            lost.append(conn)
            conn.close(RedisConnectionError("Connection closed by server."))
        return conn

    pipes._connect = connect_then_lose  # type: ignore[method-assign]
    t0 = time.monotonic()
    assert await pipes.execute([("ECHO", "x")]) == [b"x"]
    assert lost and pipes._conn is not lost[0]
    assert time.monotonic() - t0 < pipes.timeout / 2


async def test_a_timeout_closes_the_connection(redis_client: aioredis.Redis) -> None:
    kw = redis_client.connection_pool.connection_kwargs
    pipes = Pipelines(kw["host"], kw["port"], timeout=0.1, retries=0)
    try:
        [first] = await pipes.execute([("CLIENT", "ID")])
        with pytest.raises(RedisTimeoutError):
            await pipes.execute([("BLPOP", "vigietest:resp:never", "0.5")])
        # a new connection: the late nil of the BLPOP is nobody's reply
        [second, echo] = await pipes.execute([("CLIENT", "ID"), ("ECHO", "x")])
        assert second != first and echo == b"x"
    finally:
        await pipes.aclose()


async def test_unreachable_server_raises_connection_error() -> None:
    pipes = Pipelines("127.0.0.1", free_port(), retries=1)
    with pytest.raises(RedisConnectionError):
        await pipes.execute([("PING",)])


async def test_database_and_credentials_from_the_url(stack: LocalStack, uid: str) -> None:
    admin = aioredis.Redis.from_url(stack.redis_url)
    user = f"vigietest-{uid}"
    await admin.execute_command("ACL", "SETUSER", user, "on", ">s3cret", "~*", "+@all")
    url = stack.redis_url.replace("redis://", f"redis://{user}:s3cret@").rsplit("/", 1)[0]
    client = aioredis.Redis.from_url(f"{url}/2")
    wrong = aioredis.Redis.from_url(f"{url.replace('s3cret', 'nope')}/2")
    pipes = pipelines_for(client)
    bad = pipelines_for(wrong)
    try:
        assert isinstance(pipes, Pipelines) and pipes.db == 2
        await pipes.execute([("SET", f"vigietest:{uid}:db", "2", "EX", 60)])
        assert await client.get(f"vigietest:{uid}:db") == b"2"  # database 2
        assert await admin.get(f"vigietest:{uid}:db") is None  # not database 0
        with pytest.raises(AuthenticationError):
            await bad.execute([("PING",)])
    finally:
        await client.delete(f"vigietest:{uid}:db")
        await admin.execute_command("ACL", "DELUSER", user)
        await pipes.aclose()
        await bad.aclose()
        for c in (client, wrong, admin):
            await c.aclose()


def test_tls_and_unix_socket_clients_keep_redis_py() -> None:
    for url in ("rediss://127.0.0.1:6390/0", "unix:///tmp/vigie-redis.sock"):
        client = aioredis.Redis.from_url(url)
        assert Pipelines.for_client(client) is None
        assert isinstance(pipelines_for(client), PoolPipelines)


def test_pairs_and_text_take_decoded_replies_too() -> None:
    """Raw (bytes) or decoded (a client with ``decode_responses``) replies alike."""
    want = {"a": "1"}
    assert pairs([b"a", b"1"]) == pairs({b"a": b"1"}) == pairs(["a", "1"]) == want
    assert pairs({"a": "1"}) == want
    assert text(b"x") == text("x") == "x" and text(3) == "3"
