"""Shared fixtures.

Three tiers: ``tests/unit`` (pure logic, no broker, no Redis), ``tests/integration``
(the real local broker and a real Redis, started once per session), and the
end-to-end tests inside ``tests/integration`` that run the three services as
processes. Each integration test gets its own topic prefix and Redis key
prefix, so tests never see each other's data, and never flush a database.

Redis comes in two modes (``redis_mode``): the session's single Redis, and a
local Redis Cluster (three masters, three replicas) started the first time a
test asks for it. Every test that uses ``redis_client`` runs on both; a test
that starts the services (``make_pipeline``) runs on the single Redis unless
it parametrises ``redis_mode`` itself
(``@pytest.mark.parametrize("redis_mode", REDIS_MODES)``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis

from shared.localstack import LocalStack, redis_binary
from shared.redis import cluster_seed, create_redis
from shared.rediscluster import LocalRedisCluster
from vigie.stack import Pipeline

# Tansu's memory engine refuses idempotent producers (InitProducerId): a worker
# a test starts outside LocalStack.env() must not ask for one (the Kafka
# stack's env() turns it back on).
os.environ.setdefault("VIGIE_KAFKA_IDEMPOTENCE", "false")

#: The brokers a contract-level test marked ``@pytest.mark.brokers`` runs on:
#: the session's stack (Tansu unless VIGIE_LOCAL_BROKER says otherwise) and a
#: 3-node Apache Kafka cluster started once, on first use.
BROKERS = ["tansu", "kafka"]

#: The Redis modes the Redis-touching tests run on.
REDIS_MODES = ["single", "cluster"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests on ``redis_client`` run on each Redis mode (pipeline tests opt in)."""
    names = metafunc.fixturenames
    explicit = any(
        "redis_mode" in m.args[0] for m in metafunc.definition.iter_markers("parametrize")
    )
    if "redis_client" in names and "make_pipeline" not in names and not explicit:
        metafunc.parametrize("redis_mode", REDIS_MODES)
    if metafunc.definition.get_closest_marker("brokers") and "broker" in names:
        metafunc.parametrize("broker", BROKERS)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "brokers: run on each local broker (Tansu, and a 3-node Apache Kafka cluster)"
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local broker and Redis, once for the whole session."""
    with LocalStack(workdir=tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.fixture(scope="session")
def kafka_stack(
    tmp_path_factory: pytest.TempPathFactory, stack: LocalStack
) -> Iterator[LocalStack]:
    """A 3-node KRaft cluster (and the session's Redis), once for the session."""
    s = LocalStack(workdir=tmp_path_factory.mktemp("kafka"), broker="kafka")
    s.redis_url = stack.redis_url  # the Redis stays the session's: only the broker differs
    try:
        s.start_broker()
        yield s
    finally:
        s.stop()


@pytest.fixture
def broker() -> str:
    """``tansu`` unless the test is marked ``brokers`` (then each of :data:`BROKERS`)."""
    return "tansu"


@pytest.fixture
def broker_stack(broker: str, request: pytest.FixtureRequest) -> LocalStack:
    """The stack of the test's broker: the session's, or the Kafka cluster's."""
    s: LocalStack = request.getfixturevalue("kafka_stack" if broker == "kafka" else "stack")
    return s


@pytest.fixture(scope="session")
def redis_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalRedisCluster]:
    """A local Redis Cluster, once for the session (started on first use)."""
    with LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"), redis_binary()) as c:
        yield c


@pytest.fixture
def redis_mode() -> str:
    """``single`` unless the test is parametrised (see the module docstring)."""
    return "single"


@pytest.fixture
def redis_url(redis_mode: str, stack: LocalStack, request: pytest.FixtureRequest) -> str:
    """The URL of the test's Redis: the session's single one, or the cluster's."""
    if redis_mode == "cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    return stack.redis_url


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic_prefix(uid: str) -> str:
    """A throwaway topic namespace: ``test-<uid>.``."""
    return f"test-{uid}."


@pytest.fixture
def redis_prefix(uid: str) -> str:
    return f"vigietest:{uid}"


@pytest.fixture
async def redis_client(redis_url: str, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A client (:func:`shared.redis.create_redis`) on the test's Redis; the test's
    keys are deleted afterwards (on a cluster, scanned on every master)."""
    client = create_redis(redis_url)
    yield client
    async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def redis_sync(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client on the test's Redis (for callbacks run in other threads)."""
    seed = cluster_seed(redis_url)
    client = redis.RedisCluster.from_url(seed) if seed else redis.Redis.from_url(redis_url)
    yield cast(redis.Redis, client)
    client.close()


@pytest.fixture
def make_pipeline(
    broker_stack: LocalStack, tmp_path: Path, topic_prefix: str, redis_prefix: str, redis_url: str
) -> Iterator[Callable[..., Pipeline]]:
    """Start the three services (as processes) on the test's broker (``broker_stack``)
    and the test's Redis (``redis_url``)."""
    stack = broker_stack
    started: list[Pipeline] = []

    def make(**kwargs: Any) -> Pipeline:
        kwargs.setdefault("topic_prefix", topic_prefix)
        kwargs.setdefault("redis_prefix", redis_prefix)
        kwargs["extra_env"] = {"VIGIE_REDIS_URL": redis_url, **kwargs.get("extra_env", {})}
        p = Pipeline(workdir=tmp_path / f"pipeline{len(started)}", stack=stack, **kwargs)
        started.append(p)
        p.start()
        return p

    yield make
    for p in started:
        p.stop()
