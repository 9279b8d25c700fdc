"""Shared fixtures.

Three tiers: ``tests/unit`` (pure logic, no broker, no Redis), ``tests/integration``
(the real local broker and a real Redis, started once per session), and the
end-to-end tests inside ``tests/integration`` that run the three services as
processes. Each integration test gets its own topic prefix and Redis key
prefix, so tests never see each other's data, and never flush a database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from shared.localstack import LocalStack
from vigie.stack import Pipeline


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local broker and Redis, once for the whole session."""
    with LocalStack(workdir=tmp_path_factory.mktemp("stack")) as s:
        yield s


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
async def redis_client(stack: LocalStack, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A client on the session's Redis; the test's keys are deleted afterwards."""
    client = aioredis.Redis.from_url(stack.redis_url)
    yield client
    async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def make_pipeline(
    stack: LocalStack, tmp_path: Path, topic_prefix: str, redis_prefix: str
) -> Iterator[Callable[..., Pipeline]]:
    """Start the three services (as processes) on the session's stack."""
    started: list[Pipeline] = []

    def make(**kwargs: Any) -> Pipeline:
        kwargs.setdefault("topic_prefix", topic_prefix)
        kwargs.setdefault("redis_prefix", redis_prefix)
        p = Pipeline(workdir=tmp_path / f"pipeline{len(started)}", stack=stack, **kwargs)
        started.append(p)
        p.start()
        return p

    yield make
    for p in started:
        p.stop()
