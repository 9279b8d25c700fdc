"""shared.resp.Pipelines (redis-py pipelines, raw replies) on the real Redis: a
single one and the local Redis Cluster (``redis_client`` runs on both)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import (
    AuthenticationError,
    NoScriptError,
    RedisClusterException,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.localstack import LocalStack, free_port
from shared.redis import create_redis, is_cluster
from shared.resp import Batch, Pipelines, pairs, pipelines_for, text, values
from tests.waiting import until

pytestmark = pytest.mark.integration


@pytest.fixture
async def pipes(redis_client: aioredis.Redis) -> AsyncIterator[Pipelines]:
    p = pipelines_for(redis_client)
    yield p
    await p.aclose()


def commands(prefix: str, sha: str) -> Batch:
    """Commands on keys of several hash tags (several nodes of a cluster)."""
    b = Batch()
    b.set(f"{prefix}:{{s}}", "v1", ex=60)
    b.append(("GET", f"{prefix}:{{s}}"))
    b.append(("GET", f"{prefix}:{{m}}"))
    b.hset(f"{prefix}:{{h}}", {"a": "1", "b": "é"})
    b.hgetall(f"{prefix}:{{h}}")
    b.zadd(f"{prefix}:{{z}}", {"m1": 1.5, "m2": 1800000000.25})
    b.zadd(f"{prefix}:{{z}}", {"m1": 9.0}, nx=True)
    b.append(("ZRANGE", f"{prefix}:{{z}}", 0, -1, "WITHSCORES"))
    b.evalsha(sha, [f"{prefix}:{{s}}"], ["x", 2])
    b.hdel(f"{prefix}:{{h}}", "a")
    b.delete(f"{prefix}:{{s}}")
    b.set_nx_get(f"{prefix}:{{n}}", "first", 60)
    b.set_nx_get(f"{prefix}:{{n}}", "second", 60)
    return b


async def test_replies_are_raw_resp2(
    redis_client: aioredis.Redis, redis_prefix: str, pipes: Pipelines
) -> None:
    script = redis_client.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
    await script(keys=[f"{redis_prefix}:{{s}}"], args=["a", 1])  # loaded (every master)
    got = await pipes.execute(commands(redis_prefix, script.sha))
    assert got == [
        b"OK",
        b"v1",
        None,
        2,
        [b"a", b"1", b"b", "é".encode()],
        2,
        0,  # NX: m1 kept its score
        [b"m1", b"1.5", b"m2", b"1800000000.25"],
        [f"{redis_prefix}:{{s}}".encode(), b"x", 3],
        1,
        1,
        None,  # set: there was nothing
        b"first",  # not set: the first value
    ]
    assert pairs(got[4]) == {"a": "1", "b": "é"} and values(got[4]) == [b"1", "é".encode()]


async def test_errors_raise_after_the_whole_pipeline_ran(
    redis_client: aioredis.Redis, redis_prefix: str, pipes: Pipelines
) -> None:
    after = f"{redis_prefix}:{{after}}"
    with pytest.raises(NoScriptError):
        await pipes.execute(
            [("EVALSHA", "0" * 40, 1, f"{redis_prefix}:{{x}}"), ("SET", after, "1")]
        )
    assert await redis_client.get(after) == b"1"
    await redis_client.set(f"{redis_prefix}:str", "x")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await pipes.execute([("HGETALL", f"{redis_prefix}:str")])
    assert await pipes.execute([("GET", f"{redis_prefix}:str")]) == [b"x"]


async def test_concurrent_callers_get_their_own_replies(
    redis_prefix: str, pipes: Pipelines
) -> None:
    async def one(i: int) -> list[object]:
        key = f"{redis_prefix}:{{n{i}}}"
        return await pipes.execute([("INCRBY", key, i), ("SET", key + "x", f"c{i}"), ("GET", key)])

    results = await asyncio.gather(*(one(i) for i in range(40)))
    assert results == [[i, b"OK", str(i).encode()] for i in range(40)]


async def test_a_cancelled_callers_replies_are_dropped(
    redis_prefix: str, pipes: Pipelines, redis_client: aioredis.Redis
) -> None:
    key = f"{redis_prefix}:{{q}}"
    slow = asyncio.create_task(pipes.execute([("BLPOP", key, "3")]))  # < socket timeout

    async def blocked() -> bool:
        if is_cluster(redis_client):
            infos = list((await redis_client.info("clients", target_nodes="primaries")).values())
        else:
            infos = [await redis_client.info("clients")]
        return any(int(i["blocked_clients"]) for i in infos)

    await until(blocked, 2.5, "the BLPOP blocks on the server")
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    await pipes.execute([("RPUSH", key, "v")])
    # a later caller gets its own replies, not the BLPOP's
    assert await pipes.execute([("LPOP", key), ("LLEN", key)]) == [b"v", 0]


async def test_a_timeout_raises_and_the_next_pipeline_works(redis_url: str, uid: str) -> None:
    client = create_redis(redis_url, timeout=0.1)
    pipes = pipelines_for(client)
    key = f"vigietest:{uid}:{{never}}"
    try:
        with pytest.raises(RedisTimeoutError):
            await pipes.execute([("BLPOP", key, "0.5")])
        # the late nil of the BLPOP is nobody's reply
        assert await pipes.execute([("RPUSH", key, "x"), ("LPOP", key)]) == [1, b"x"]
    finally:
        await pipes.aclose()
        await client.aclose()


async def test_a_cluster_refuses_a_script_call_on_keys_of_two_slots(
    redis_client: aioredis.Redis, redis_prefix: str, pipes: Pipelines
) -> None:
    """Before sending anything (a single Redis runs it: no such script)."""
    two = ("EVALSHA", "0" * 40, 2, f"{redis_prefix}:{{a}}", f"{redis_prefix}:{{b}}")
    refused = RedisClusterException if is_cluster(redis_client) else NoScriptError
    with pytest.raises(refused):
        await pipes.execute([two])


async def test_connections_the_server_killed_cost_one_batch_at_most(
    stack: LocalStack,
) -> None:
    """A lost connection fails its batch (the caller retries it) and drops every
    idle connection with it: the next batch runs on a new one."""
    client = create_redis(stack.redis_url)
    pipes = pipelines_for(client)
    admin = create_redis(stack.redis_url)
    try:
        ids = {
            r[0]
            for r in await asyncio.gather(*(pipes.execute([("CLIENT", "ID")]) for _ in range(3)))
        }
        assert len(ids) == 3  # three callers at once: three connections, now idle
        for i in ids:
            await admin.execute_command("CLIENT", "KILL", "ID", i)
        outcomes: list[object] = []
        for _ in range(2):
            try:
                outcomes.append((await pipes.execute([("CLIENT", "ID")]))[0])
            except RedisConnectionError:
                outcomes.append("lost")
        assert outcomes.count("lost") <= 1 and outcomes[-1] not in ids | {"lost"}
    finally:
        await pipes.aclose()
        await client.aclose()
        await admin.aclose()


@contextlib.contextmanager
def slammer() -> Iterator[tuple[int, list[int]]]:
    """A port whose server accepts connections and closes them at once; counts them."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    accepted: list[int] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = srv.accept()
                accepted.append(1)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield srv.getsockname()[1], accepted
    finally:
        srv.close()


async def test_nothing_retries_inside_a_pipeline() -> None:
    """One try per execute: the services' shared.retry is the only retry layer."""
    with slammer() as (port, accepted):
        client = create_redis(f"redis://127.0.0.1:{port}/0", timeout=1.0)
        pipes = pipelines_for(client)
        with pytest.raises(RedisConnectionError):
            await pipes.execute([("PING",)])
        assert len(accepted) == 1
        await client.aclose()


async def test_unreachable_server_raises_connection_error() -> None:
    client = create_redis(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RedisConnectionError):
        await pipelines_for(client).execute([("PING",)])
    await client.aclose()


async def test_database_and_credentials_from_the_url(stack: LocalStack, uid: str) -> None:
    admin = create_redis(stack.redis_url)
    user = f"vigietest-{uid}"
    await admin.execute_command("ACL", "SETUSER", user, "on", ">s3cret", "~*", "+@all")
    url = stack.redis_url.replace("redis://", f"redis://{user}:s3cret@").rsplit("/", 1)[0]
    client = create_redis(f"{url}/2")
    wrong = create_redis(f"{url.replace('s3cret', 'nope')}/2")
    pipes, bad = pipelines_for(client), pipelines_for(wrong)
    try:
        await pipes.execute([("SET", f"vigietest:{uid}:db", "2", "EX", 60)])
        assert await client.get(f"vigietest:{uid}:db") == b"2"  # database 2
        assert await admin.get(f"vigietest:{uid}:db") is None  # not database 0
        with pytest.raises(AuthenticationError):
            await bad.execute([("PING",)])
    finally:
        await client.delete(f"vigietest:{uid}:db")
        await admin.execute_command("ACL", "DELUSER", user)
        for c in (client, wrong, admin):
            await c.aclose()


def test_pairs_and_text_take_decoded_replies_too() -> None:
    """Raw (bytes) or decoded (a client with ``decode_responses``) replies alike."""
    want = {"a": "1"}
    assert pairs([b"a", b"1"]) == pairs({b"a": b"1"}) == pairs(["a", "1"]) == want
    assert pairs({"a": "1"}) == want
    assert text(b"x") == text("x") == "x" and text(3) == "3"
