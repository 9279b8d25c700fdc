"""RedisState.claim retried after a call that raised once its scripts had run
(on a cluster: another node failed mid-batch) still raises its alerts."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.correlate.state import Claim, RedisState

pytestmark = pytest.mark.integration


async def test_a_claim_retried_after_a_failed_call_is_still_ours(
    redis_client: aioredis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = [
        Claim(f"{redis_prefix}:{{a{i}}}:f", f"{redis_prefix}:{{a{i}}}:s", 1000, 0, 60_000, f"a{i}")
        for i in range(6)
    ]
    state = RedisState(redis_client)
    real = state._calls

    async def ran_then_lost(*args: Any) -> None:
        await real(*args)
        raise RedisConnectionError("lost after the claims ran")

    monkeypatch.setattr(state, "_calls", ran_then_lost)
    with pytest.raises(RedisConnectionError):
        await state.claim(claims)
    monkeypatch.setattr(state, "_calls", real)
    assert await state.claim(claims) == [True] * 6  # the retry: still ours
    assert await state.claim(claims) == [False] * 6  # then raised, like any claim
    assert await RedisState(redis_client).claim(claims) == [False] * 6  # and for others
