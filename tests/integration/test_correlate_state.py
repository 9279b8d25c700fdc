"""Correlate's Redis state on the real Redis: the batched scripts decide exactly
what the one-op-per-round-trip baseline and the in-memory reference decide.

On the benchmark's stream (every kind of the default pack, hot and cold groups,
out-of-order events), the same events in the same batches through

* :class:`RedisState` (a few script calls per batch, one round trip),
* :class:`RedisState` with ``naive=True`` (one round trip per op),
* :class:`MemoryState` (the pure-Python reference the unit tests use)

raise the same alerts with the same evidence; replaying the stream raises none.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.correlate.engine import Engine
from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import load_dir
from services.correlate.state import (
    CALL_MAX_OPS,
    MemoryState,
    RedisState,
    WindowOp,
    _first_key,
    key_slot_of,
    plan_calls,
)
from shared.localstack import LocalStack
from shared.models import NormalizedEvent
from shared.redis import Keys
from vigie.bench.correlate import make_events

EVENTS = [NormalizedEvent.model_validate_json(v) for v in make_events(1500)]
LATENESS_MS = 7 * 86_400_000


def _engine(state: Any, prefix: str) -> Engine:
    return Engine(load_dir(DEFAULT_DIR), state, Keys(prefix), LATENESS_MS, clock=lambda: 0)


async def _alerts(engine: Engine, batch: int = 120) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for i in range(0, len(EVENTS), batch):
        outcome = await engine.process(EVENTS[i : i + batch])
        out += [(a.alert_id, tuple(e.event_id for e in a.evidence)) for a, _ in outcome.alerts]
    return sorted(out)


async def test_batched_naive_and_memory_state_agree(
    stack: LocalStack, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    batched = RedisState(redis_client)
    naive = RedisState(redis_client, naive=True)
    e_batched = _engine(batched, f"{redis_prefix}:b")
    reference = await _alerts(_engine(MemoryState(), "mem"))
    assert len(reference) > 50  # the stream raises alerts of several rules
    assert len({a for a, _ in reference}) == len(reference)

    got = await _alerts(e_batched)
    assert got == reference
    assert await _alerts(_engine(naive, f"{redis_prefix}:n")) == reference

    per_batch = [sum(len(e_batched.plan(ev)) for ev in EVENTS[i : i + 120]) for i in (0, 600)]
    assert min(per_batch) > CALL_MAX_OPS  # a batch takes several script calls
    # absence ops go to the absence store, not through apply
    ops = sum(1 for ev in EVENTS for p in e_batched.plan(ev) if p.rule.kind != "absence")
    # apply + claim per batch (+ loading each script the first time)
    assert batched.round_trips <= 2 * -(-len(EVENTS) // 120) + 2
    assert naive.round_trips >= ops

    # a replay (same events again) raises nothing, and the Redis writes stay bounded
    assert await _alerts(e_batched) == []
    keys = [k async for k in redis_client.scan_iter(match=f"{redis_prefix}:b*", count=1000)]
    assert len(keys) > 1000
    assert all([await redis_client.pttl(k) > 0 for k in keys[:300]])  # every key expires


async def test_a_lost_script_is_loaded_again(
    stack: LocalStack, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """A Redis restarted or failed over has no script cache: NOSCRIPT reloads once."""
    state = RedisState(redis_client)
    engine = _engine(state, f"{redis_prefix}:s")
    state._apply.sha = "0" * 40  # as if the server had forgotten it
    state._claim.sha = "0" * 40
    first = await engine.process(EVENTS[:200])
    assert first.alerts
    assert state._apply.sha != "0" * 40 and state._claim.sha != "0" * 40
    assert state.round_trips == 4  # apply + load, claim + load


def test_cluster_calls_hold_one_slot_each() -> None:
    """On a cluster, a batch's ops are split per hash slot (order kept within a slot)."""
    engine = _engine(MemoryState(), f"p{uuid.uuid4().hex[:4]}")
    ops = [p.op for ev in EVENTS[:400] for p in engine.plan(ev) if p.rule.kind != "absence"]
    calls = plan_calls(ops, key_slot_of)
    assert sorted(i for c in calls for i in c) == list(range(len(ops)))
    for call in calls:
        assert len({key_slot_of(_first_key(ops[i])) for i in call}) == 1
        assert call == sorted(call) and len(call) <= CALL_MAX_OPS
    single = plan_calls(ops)
    assert [i for c in single for i in c] == list(range(len(ops)))
    assert len(single) == -(-len(ops) // CALL_MAX_OPS)


async def test_answers_stream_in_op_order_and_an_error_leaves_no_stale_connection(
    stack: LocalStack, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """Each op's answer reaches the sink as it arrives, in op order, across script
    calls; a failing call raises, and the next batch runs on a clean connection."""
    state = RedisState(redis_client)
    engine = _engine(state, f"{redis_prefix}:o")
    ops = [p.op for ev in EVENTS[:300] for p in engine.plan(ev) if p.rule.kind != "absence"]
    assert len(ops) > 2 * CALL_MAX_OPS
    got: list[tuple[int, list[Any]]] = []
    answers = await state.apply(ops, lambda i, seen: got.append((i, seen)))
    assert [i for i, _ in got] == list(range(len(ops)))
    assert [seen for _, seen in got] == answers

    # a key of the wrong type makes the second call fail (WRONGTYPE inside the script)
    bad = ops[CALL_MAX_OPS + 3]
    key = bad.hash_key if isinstance(bad, WindowOp) else bad.geo_key
    await redis_client.delete(key)
    await redis_client.set(key, "not a hash")
    try:
        with pytest.raises(ResponseError):
            await state.apply(ops)
    finally:
        await redis_client.delete(key)
    # the connection that failed was dropped: the same batch runs again, idempotently
    again = await state.apply(ops)
    assert len(again) == len(ops)
    assert await state.apply(ops) == again
